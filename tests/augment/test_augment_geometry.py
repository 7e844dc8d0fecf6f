"""Geometric augmentations: exact definitions, slow references, and targets that move with the image."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.augment import (
    Affine,
    Compose,
    ElasticWarp,
    HorizontalFlip,
    RandomCrop,
    RandomResizedCrop,
    Sample,
    SanitizeBoxes,
    VerticalFlip,
    build_transform,
    list_ops,
)
from cnnkit.augment import functional as AF


def _sample(h=20, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Sample(
        torch.rand(3, h, w, generator=g),
        boxes=torch.tensor([[2.0, 3.0, 9.0, 11.0], [10.0, 1.0, 20.0, 6.0]]),
        masks=torch.randint(0, 4, (h, w), generator=g),
        landmarks=torch.tensor([[3.5, 4.5], [12.25, 7.75], [0.0, 0.0]]),
        labels=torch.tensor([1, 2]),
    )


def test_hflip_reverses_the_width_axis_and_twice_is_identity():
    s = _sample()
    f = AF.hflip(s)
    assert torch.equal(f.image, s.image[..., torch.arange(23, -1, -1)])
    assert torch.equal(f.masks, s.masks[..., torch.arange(23, -1, -1)])
    for b, fb in zip(s.boxes.tolist(), f.boxes.tolist(), strict=True):
        assert fb == [24 - b[2], b[1], 24 - b[0], b[3]]
    assert torch.equal(f.landmarks[:, 0], 24 - s.landmarks[:, 0])
    ff = AF.hflip(f)
    for name in ("image", "masks", "boxes", "landmarks", "labels"):
        assert torch.equal(getattr(ff, name), getattr(s, name)), name


def test_vflip_reverses_the_height_axis():
    s = _sample()
    f = AF.vflip(s)
    assert torch.equal(f.image, s.image.flip(-2)) and torch.equal(AF.vflip(f).boxes, s.boxes)
    assert torch.equal(f.landmarks[:, 1], 20 - s.landmarks[:, 1])


def test_flip_transforms_follow_their_coin():
    s = _sample()
    t = HorizontalFlip(p=0.5)
    rng = np.random.default_rng(0)
    results = [t.sample(rng, s.size) for _ in range(200)]
    assert 60 < sum(r is not None for r in results) < 140
    assert torch.equal(VerticalFlip(p=1.0)(s).image, s.image.flip(-2))


def test_rotate_90_is_rot90():
    x = torch.rand(2, 9, 9)
    s = Sample(x, masks=torch.randint(0, 9, (9, 9)), landmarks=torch.tensor([[1.5, 2.5]]))
    matrix = AF.affine_matrix((9, 9), angle=90)
    bilinear = AF.warp_affine(s, matrix)
    nearest = AF.warp_affine(s, matrix, interpolation="nearest")
    ref = torch.rot90(x, 1, dims=(-2, -1))  # counter-clockwise
    assert torch.allclose(bilinear.image, ref, atol=1e-5)
    assert torch.equal(nearest.image, ref) and torch.equal(nearest.masks, torch.rot90(s.masks, 1, dims=(-2, -1)))
    # pixel (row 2, col 1) goes to (row 9-1-1, col 2) under rot90: its centre (1.5, 2.5) -> (2.5, 7.5)
    assert torch.allclose(bilinear.landmarks, torch.tensor([[2.5, 7.5]]))
    # through the random transform with a fixed angle
    assert torch.allclose(Affine(degrees=(90, 90))(x), ref, atol=1e-5)


def _slow_warp(image: torch.Tensor, matrix: np.ndarray, fill=0.0) -> torch.Tensor:
    """Reference: every output pixel centre mapped back by the inverse matrix, bilinear, `fill` outside."""
    c, h, w = image.shape
    inv = np.linalg.inv(matrix)
    out = torch.empty_like(image)
    img = image.numpy()
    for r in range(h):
        for col in range(w):
            x, y, _ = inv @ np.array([col + 0.5, r + 0.5, 1.0])
            x, y = x - 0.5, y - 0.5  # to array indices
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            val = np.zeros(c)
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    v = img[:, yy, xx] if 0 <= yy < h and 0 <= xx < w else np.full(c, fill)
                    val += wy * wx * v
            out[:, r, col] = torch.from_numpy(val)
    return out


@pytest.mark.parametrize("fill", [0.0, 0.5])
def test_warp_affine_matches_slow_reference(fill):
    x = torch.rand(2, 7, 9, dtype=torch.float64).float()
    matrix = AF.affine_matrix((7, 9), angle=23, translate=(1.3, -0.7), scale=1.1, shear=(8, -4))
    got = AF.warp_affine(Sample(x), matrix, fill=fill).image
    assert torch.allclose(got, _slow_warp(x, matrix, fill), atol=1e-4)


def test_affine_matrix_is_rotation_about_the_centre():
    m = AF.affine_matrix((10, 16), angle=30, scale=2.0)
    centre = np.array([8.0, 5.0, 1.0])
    assert np.allclose(m @ centre, centre)
    a = np.deg2rad(30)
    # a point to the right of the centre turns up-and-right on screen (y points down)
    assert np.allclose(m @ (centre + [1, 0, 0]), centre + [2 * np.cos(a), -2 * np.sin(a), 0])


def test_crop_equals_the_slice_at_the_sampled_offset():
    s = _sample(30, 40)
    t = RandomCrop((12, 17))
    params = t.sample_params(np.random.default_rng(3), s.size)
    out = t.apply(s, params)
    top, left = params["top"], params["left"]
    assert torch.equal(out.image, s.image[:, top : top + 12, left : left + 17])
    assert torch.equal(out.masks, s.masks[top : top + 12, left : left + 17])
    assert torch.allclose(out.landmarks, s.landmarks - torch.tensor([left, top]))
    # with padding: the slice of the zero-padded image
    tp = RandomCrop(None, padding=4)
    for seed in range(5):
        p = tp.sample_params(np.random.default_rng(seed), s.size)
        padded = F.pad(s.image, (4, 4, 4, 4))
        ref = padded[:, p["top"] + 4 : p["top"] + 4 + 30, p["left"] + 4 : p["left"] + 4 + 40]
        assert torch.equal(tp.apply(s, p).image, ref)


def test_resized_crop_is_crop_then_resize():
    s = _sample(30, 40)
    t = RandomResizedCrop(16, scale=(0.2, 0.6))
    p = t.sample_params(np.random.default_rng(1), s.size)
    out = t.apply(s, p)
    window = s.image[:, p["top"] : p["top"] + p["height"], p["left"] : p["left"] + p["width"]]
    ref = F.interpolate(window[None], size=(16, 16), mode="bilinear", align_corners=False,
                        antialias=p["height"] > 16 or p["width"] > 16)[0]
    assert out.image.shape == (3, 16, 16) and torch.allclose(out.image, ref)
    scale = torch.tensor([16 / p["width"], 16 / p["height"]])
    assert torch.allclose(out.landmarks, (s.landmarks - torch.tensor([p["left"], p["top"]])) * scale)


def _square_scene(size=64, lo=24, hi=36):
    """A dark image with one bright square; its box, mask and centre landmark."""
    x = torch.full((3, size, size), 0.1)
    x[:, lo:hi, lo:hi] = 0.9
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[lo:hi, lo:hi] = 7
    c = (lo + hi) / 2
    return Sample(x, boxes=torch.tensor([[lo, lo, hi, hi]], dtype=torch.float32), masks=mask,
                  landmarks=torch.tensor([[c, c], [lo + 1.5, lo + 1.5]]), labels=torch.tensor([3]))


def _bright_box(image):
    ys, xs = torch.nonzero(image.mean(0) > 0.5, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def _iou(a, b):
    lt, rb = torch.maximum(a[:2], b[:2]), torch.minimum(a[2:], b[2:])
    inter = (rb - lt).clamp(min=0).prod()
    return inter / ((a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter)


GEOMETRIC = ["flip", "vflip", "crop", "resized_crop", "rotate=40", "shear=25", "translate=0.2", "scale=0.4",
             "affine=2", "elastic=0.04", "rotate=30,shear=10,translate=0.1"]


@pytest.mark.parametrize("spec", GEOMETRIC)
def test_targets_move_with_the_image(spec):
    aug = build_transform(spec.replace("flip", "flip=1"), image_size=64, seed=0)
    checked = 0
    for seed in range(6):
        aug.reseed(seed)
        out = aug(_square_scene())
        bright = out.image.mean(0) > 0.5
        if bright.sum() < 30:  # the square was cropped away: nothing to check
            continue
        checked += 1
        # the landmarks still sit on the bright square
        for x, y in out.landmarks.tolist():
            r, c = int(np.floor(y)), int(np.floor(x))
            assert 0 <= r < 64 and 0 <= c < 64 and bright[r, c], (spec, seed, x, y)
        # the box still covers the square, and tightly (elastic: sampled edges, a little looser)
        assert _iou(out.boxes[0], _bright_box(out.image)) > (0.8 if "elastic" not in spec else 0.7), (spec, seed)
        # the mask moved alike
        m = out.masks == 7
        assert (m & bright).sum() / (m | bright).sum() > 0.85, (spec, seed)
        assert torch.equal(out.labels, torch.tensor([3]))
    assert checked >= 3


def test_fused_affines_equal_one_matrix_and_sequential_targets():
    s = _sample(32, 32)
    ops = [Affine(degrees=20), Affine(shear=10), Affine(translate=0.1)]
    fused = Compose(ops, seed=4)(s)
    rng = np.random.default_rng(4)
    params = [t.sample_params(rng, s.size) for t in ops]
    matrix = params[2]["matrix"] @ params[1]["matrix"] @ params[0]["matrix"]
    one = AF.warp_affine(s, matrix)
    assert torch.allclose(fused.image, one.image) and torch.equal(fused.masks, one.masks)
    seq = s
    for t, p in zip(ops, params, strict=True):
        seq = t.apply(seq, p)
    assert torch.allclose(fused.landmarks, seq.landmarks, atol=1e-4)


def _slow_displacement_warp(image, field):
    c, h, w = image.shape
    out = torch.empty_like(image)
    for r in range(h):
        for col in range(w):
            x = col + 0.5 + float(field[0, r, col])
            y = r + 0.5 + float(field[1, r, col])
            M = np.array([[1, 0, x - (col + 0.5)], [0, 1, y - (r + 0.5)], [0, 0, 1.0]])
            out[:, r, col] = _slow_warp(image, np.linalg.inv(M))[:, r, col]
    return out


def test_elastic_warp_matches_reference_and_inverts_landmarks():
    x = torch.rand(2, 8, 10)
    t = ElasticWarp(magnitude=0.1, spacing=0.5)
    field = t.sample_params(np.random.default_rng(0), (8, 10))["field"]
    assert field.shape == (2, 8, 10) and field.abs().max() > 0.1
    got = AF.warp_displacement(Sample(x), field).image
    assert torch.allclose(got, _slow_displacement_warp(x, field), atol=1e-4)
    # a landmark q lands at p with p + d(p) = q: the output pixel at p reads the input at q
    q = torch.tensor([[3.2, 4.1], [7.5, 2.5]])
    p = AF.invert_displacement(field, q)
    assert torch.allclose(p + AF._field_at(field, p), q, atol=1e-3)


def test_sanitize_drops_boxes_cropped_away_with_their_labels():
    s = Sample(torch.rand(3, 20, 20), boxes=[[0, 0, 5, 5], [15, 15, 19, 19]], labels=[1, 2],
               landmarks=torch.rand(2, 3, 2))
    out = SanitizeBoxes()(AF.crop(s, 10, 10, 10, 10))
    assert out.boxes.tolist() == [[5.0, 5.0, 9.0, 9.0]] and out.labels.tolist() == [2]
    assert out.landmarks.shape == (1, 3, 2)


@pytest.mark.parametrize("op", [o for o in list_ops() if o not in ("identity",)])
def test_same_seed_same_output_other_seed_other_output(op):
    spec = {"flip": "flip=1", "vflip": "vflip=1"}.get(op, op)
    x = torch.rand(3, 24, 24)
    a = build_transform(spec, image_size=24, seed=1)
    b = build_transform(spec, image_size=24, seed=1)
    c = build_transform(spec, image_size=24, seed=2)
    ya, yb = a(x), b(x)
    assert torch.equal(ya, yb)
    if op in ("flip", "vflip"):  # no random parameter beyond the coin
        return
    assert not torch.equal(ya, c(x))
    assert not torch.equal(ya, a(x))  # the generator moves on: the next call differs


def test_fast_grids_equal_torch_kernels():
    theta = AF._theta(AF.affine_matrix((30, 20), angle=17, shear=(5, 3), translate=(4, -2)), (30, 20), (25, 35))
    ref = F.affine_grid(torch.tensor(theta, dtype=torch.float32)[None], [1, 1, 25, 35], align_corners=False)
    assert torch.allclose(AF.affine_grid(theta, (25, 35)), ref, atol=1e-6)
    coarse = torch.randn(2, 5, 7)
    ref = F.interpolate(coarse[None], size=(40, 33), mode="bicubic", align_corners=True)[0]
    assert torch.allclose(AF.upsample_bicubic(coarse, (40, 33)), ref, atol=1e-5)


@pytest.mark.parametrize("size", [(13, 17), (40, 33), (9, 50)])
def test_resize_equals_interpolate_both_ways(size):
    x = torch.rand(3, 13, 17)
    out = AF.resize(Sample(x), size).image
    ref = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False,
                        antialias=size[0] < 13 or size[1] < 17)[0]
    assert torch.allclose(out, ref, atol=1e-5)
