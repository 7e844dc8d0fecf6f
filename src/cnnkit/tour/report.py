"""A small HTML report: sections of text, tables and pictures written beside `index.html`."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit.io import atomic_write, save_figure, save_image


@dataclass
class TourContext:
    """What every tour section gets."""

    out_dir: Path  # the report folder; pictures go beside index.html
    seed: int = 0  # every random choice in the tour derives from this
    quick: bool = False  # smaller workloads, for tests of the tour itself


@dataclass
class Section:
    """One section of the report, filled by a tour module's `build`."""

    title: str
    slug: str
    out_dir: Path
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def text(self, text: str) -> None:
        """A paragraph of plain text (escaped)."""
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def html(self, fragment: str) -> None:
        """Raw HTML, for the rare case text and tables do not fit."""
        self.parts.append(fragment)

    def code(self, text: str) -> None:
        """Pre-formatted text: a command and its output, a summary table."""
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, rows: list[list], headers: list[str], caption: str | None = None) -> None:
        """A table; numbers are right-aligned, integers get thousands separators."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = []
        for row in rows:
            cells = []
            for v in row:
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                    cells.append(f'<td class="num">{int(v):,}</td>')
                elif isinstance(v, (float, np.floating)):
                    cells.append(f'<td class="num">{float(v):.4g}</td>')
                else:
                    cells.append(f"<td>{html.escape(str(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def figure(self, fig, name: str, caption: str = "") -> Path:
        """Save a matplotlib figure as `<slug>-<name>.png` and show it."""
        return self._picture(save_figure(self.out_dir / self._file(name), fig), caption)

    def image(self, array: np.ndarray, name: str, caption: str = "") -> Path:
        """Save an image array (uint8, or float in [0, 1]) and show it."""
        return self._picture(save_image(self.out_dir / self._file(name), array), caption)

    def _file(self, name: str) -> str:
        return f"{self.slug}-{_slug(name)}.png"

    def _picture(self, path: Path, caption: str) -> Path:
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="{html.escape(path.name)}" alt="{html.escape(caption)}">{cap}</figure>')
        return path


class Report:
    """The whole report: its sections, written as one `index.html`."""

    def __init__(self, out_dir: Path, title: str = "cnnkit tour"):
        self.out_dir = Path(out_dir)
        self.title = title
        self.sections: list[Section] = []

    def new_section(self, title: str) -> Section:
        section = Section(title=title, slug=_slug(title), out_dir=self.out_dir)
        self.sections.append(section)
        return section

    def write(self) -> Path:
        toc = "".join(
            f'<li><a href="#{s.slug}">{html.escape(s.title)}</a>{" (failed)" if s.error else ""}</li>'
            for s in self.sections
        )
        blocks = []
        for s in self.sections:
            status = f'<p class="error">This section failed: {html.escape(s.error)}</p>' if s.error else ""
            blocks.append(
                f'<section id="{s.slug}"><h2>{html.escape(s.title)}</h2>'
                f'<p class="meta">{s.seconds:.1f} s</p>{status}{"".join(s.parts)}</section>'
            )
        page = _PAGE.format(title=html.escape(self.title), toc=toc, body="\n".join(blocks))
        path = self.out_dir / "index.html"
        with atomic_write(path, "w") as f:
            f.write(page)
        return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
h2 {{ border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; }}
th {{ background: #f3f3f3; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
caption {{ caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }}
figure {{ display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }}
figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 13px; color: #555; max-width: 520px; }}
pre {{ background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 13px; }}
.meta {{ color: #888; font-size: 12px; }} .error {{ color: #b00; font-weight: 600; }}
</style></head><body>
<h1>{title}</h1>
<p>Every capability of cnnkit, run on built-in data. Re-create it with <code>cnnkit tour</code>.</p>
<ol>{toc}</ol>
{body}
</body></html>
"""
