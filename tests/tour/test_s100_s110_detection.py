"""(slow) Tour sections 100 (localisation, landmarks, sliding windows) and 110 (YOLO) in quick mode: they run, and their
prose quotes the numbers of the run."""

from __future__ import annotations

import re

import pytest

from cnnkit.tour.report import Section, TourContext

pytestmark = pytest.mark.slow  # about 20 s of CPU for the two sections: outside the default suite's budget


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from cnnkit.tour.sections import s100_localization, s110_yolo

    out = {}
    for name, module in (("s100", s100_localization), ("s110", s110_yolo)):
        folder = tmp_path_factory.mktemp(name)
        section = Section(module.TITLE, name, folder)
        module.build(section, TourContext(out_dir=folder, seed=0, quick=True))
        out[name] = "\n".join(section.parts)
    return out


def test_s100_reports_localisation_landmarks_and_the_measured_speed_up(reports):
    html = reports["s100"]
    iou = re.search(r"mean IoU (\d\.\d+)", html).group(1)
    assert f"({float(iou):.2f})" in html  # the closing text quotes the table's IoU
    ratio = float(re.search(r"speed-up</td><td>(\d+\.\d)x", html).group(1))
    assert f"is {ratio:.0f}x faster here" in html
    assert html.count("<img") == 3


def test_s110_reports_map_and_shows_the_nms_steps(reports):
    html = reports["s110"]
    m50 = re.search(r"mAP@\.5 (\d\.\d\d)", html).group(1)
    assert re.search(r"<td>0\.\d{3}</td><td>" + m50[:3], html)  # the table and the prose agree
    for name in ("kmeans", "grid", "before-nms", "after-nms", "detections", "pr"):
        assert f"s110-{name}.png" in html
