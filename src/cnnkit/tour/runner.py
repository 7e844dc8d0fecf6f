"""Runs the tour's sections in order and writes the report."""

from __future__ import annotations

import importlib
import pkgutil
import time
import traceback
from pathlib import Path
from types import ModuleType

from tqdm.auto import tqdm

import cnnkit.tour.sections
from cnnkit.errors import UnknownNameError
from cnnkit.tour.report import Report, TourContext


def discover_sections() -> list[ModuleType]:
    """Every section module, in report order."""
    modules = [
        importlib.import_module(f"cnnkit.tour.sections.{info.name}")
        for info in pkgutil.iter_modules(cnnkit.tour.sections.__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda m: (m.ORDER, m.__name__))


def section_name(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def run_tour(out_dir: str | Path = "report", *, only: list[str] | None = None, quick: bool = False,
             seed: int = 0) -> tuple[Path, list[str]]:
    """Run the sections (all, or those named in `only`) and write `out_dir/index.html`.

    A section that fails is shown as failed in the report and the others still run.

    Returns:
        The path of index.html and the names of the sections that failed.
    """
    modules = discover_sections()
    if only:
        known = {section_name(m): m for m in modules}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise UnknownNameError(f"unknown tour section(s) {', '.join(unknown)}; known: {', '.join(known)}")
        modules = [known[n] for n in only]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = TourContext(out_dir=out, seed=seed, quick=quick)
    report = Report(out)
    failed = []
    bar = tqdm(modules, desc="tour", unit="section")
    for module in bar:
        bar.set_postfix_str(section_name(module))
        section = report.new_section(module.TITLE)
        start = time.perf_counter()
        try:
            module.build(section, ctx)
        except Exception as e:  # keep going: one broken section should not hide the others
            section.error = f"{type(e).__name__}: {e}"
            section.code(traceback.format_exc())
            failed.append(section_name(module))
        section.seconds = time.perf_counter() - start
        report.write()  # after every section, so a long tour can be watched as it goes
    return report.write(), failed
