"""(slow) Tour section 115 (region proposals and the detector comparison) in quick mode: it runs, the prose quotes
the table's numbers, and a second run reuses the cached models."""

from __future__ import annotations

import re

import pytest

from cnnkit.tour.report import Section, TourContext

pytestmark = pytest.mark.slow  # selective search and five small trainings: about a minute of CPU


def _run(folder):
    from cnnkit.tour.sections import s115_rcnn

    section = Section(s115_rcnn.TITLE, "s115", folder)
    s115_rcnn.build(section, TourContext(out_dir=folder, seed=0, quick=True))
    return "\n".join(section.parts)


def test_s115_quotes_its_table_and_caches_models(tmp_path):
    html = _run(tmp_path)
    assert html.count("<img") == 2 and (tmp_path / "s115_rcnn_models.pt").exists()
    ratio = re.search(r"<td>R-CNN</td>.*?<td>(\d+\.\d)x</td>", html).group(1)
    assert f"R-CNN takes {float(ratio):.0f}x" in html
    rows = re.findall(r"<tr><td>([^<]+)</td><td>[^<]+</td><td class=\"num\">([\d.]+)</td>", html)
    best = max(rows, key=lambda r: float(r[1]))
    assert f"the best here is {best[0]} at mAP@0.5 {float(best[1]):.2f}" in html
    again = _run(tmp_path)
    train_seconds = re.compile(r"<td>[\d.]+x</td><td class=\"num\">([\d.]+)</td>")
    assert train_seconds.findall(again) == train_seconds.findall(html)   # the cached models, not new ones
