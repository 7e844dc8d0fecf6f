"""Top patches per unit: windows sized by cnnkit.shapes, and nothing outside them changes the unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import InputError
from cnnkit.shapes import receptive_field
from cnnkit.style.features import FeatureExtractor, InputNorm, layer_geometry
from cnnkit.viz.units import sample_crops, strongest_units, top_patches, window

NORM = InputNorm()


def dataset(n=12, size=20, seed=0):
    return [im for im in np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)]


@pytest.mark.parametrize("layer, specs", [
    ("features.1", [(3, 1)]),
    ("features.4", [(3, 1), (2, 2), (3, 1)]),
    ("features.7", [(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)]),
])
def test_patches_are_the_receptive_field_and_only_it_matters(tiny_vgg, layer, specs):
    images = dataset()
    r, j = receptive_field(specs)[-1]
    found = top_patches(tiny_vgg, layer, images, units=[0, 3], k=4, norm=NORM)
    fe = FeatureExtractor(tiny_vgg, [layer], NORM)
    for unit, patches in found.items():
        values = [p.activation for p in patches]
        assert values == sorted(values, reverse=True) and len({p.image for p in patches}) == len(patches)
        for p in patches:
            top, bottom, left, right = p.box
            assert (bottom - top, right - left) == (r, r) and p.pixels.shape == (r, r, 3)
            if r <= 20:  # a window that fits: only units that see no padding are chosen
                assert top >= 0 and left >= 0 and bottom <= 20 and right <= 20
            img = images[p.image]
            # the patch is the image inside the box (gray outside it)
            y0, x0 = max(top, 0), max(left, 0)
            np.testing.assert_array_equal(p.pixels[y0 - top:min(bottom, 20) - top, x0 - left:min(right, 20) - left],
                                          img[y0:bottom, x0:right])
            # scramble every pixel outside the box: the unit's activation does not move
            noise = np.random.default_rng(p.image).integers(0, 256, img.shape, dtype=np.uint8)
            mask = np.zeros(img.shape[:2], bool)
            mask[max(top, 0):bottom, max(left, 0):right] = True
            changed = np.where(mask[..., None], img, noise)
            x = torch.from_numpy(np.stack([img, changed])).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                a = fe(x)[layer][:, unit, p.position[0], p.position[1]]
            assert float(a[0]) == pytest.approx(p.activation, rel=1e-5, abs=1e-6)
            assert float(a[1]) == pytest.approx(float(a[0]), rel=1e-4, abs=1e-5)


def test_window_places_the_unit_by_its_jump_and_offset():
    # a 2x2/2 pool after two same-padded 3x3 convs: r 6, j 2, unit 0 centred at 0.5
    assert window((0, 0), (6, 2, 0.5)) == (-2, 4, -2, 4)
    assert window((3, 1), (6, 2, 0.5)) == (4, 10, 0, 6)


def test_errors_and_helpers(tiny_vgg):
    images = dataset(4)
    with pytest.raises(InputError, match="out of range"):
        top_patches(tiny_vgg, "features.1", images, units=[99], norm=NORM)
    with pytest.raises(InputError, match="one size"):
        top_patches(tiny_vgg, "features.1", [images[0], images[1][:10]], norm=NORM)
    assert len(strongest_units(tiny_vgg, "features.4", images, n=3, norm=NORM)) == 3
    crops = sample_crops([np.zeros((30, 40, 3), np.uint8), np.zeros((25, 25), np.uint8)], 5, 16, seed=0)
    assert len(crops) == 5 and all(c.shape == (16, 16, 3) for c in crops)
    assert layer_geometry(tiny_vgg, "features.7")[:2] == receptive_field([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)])[-1]
