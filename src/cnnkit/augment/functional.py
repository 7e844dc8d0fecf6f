"""Deterministic kernels: each takes a Sample and exact parameters and moves the image and its targets alike.

No randomness here; the transforms in `cnnkit.augment.transforms` sample the parameters. All geometry uses
continuous pixel coordinates (pixel (r, c) has its centre at (c + 0.5, r + 0.5)), which is also the frame of
`grid_sample(align_corners=False)`, so images, masks, boxes and landmarks agree to float precision.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cnnkit.augment.sample import Sample

# ---------------------------------------------------------------------------------------------- 8-bit images
# uint8 images go through OpenCV (8-bit SIMD kernels, 3-5x faster than float resampling); OpenCV puts pixel centres
# at integer coordinates, cnnkit at +0.5, hence the half-pixel shifts below.


def as_float(image: Tensor) -> Tensor:
    """A uint8 image (C, H, W) as float in [0, 1]; a float image unchanged."""
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image


def _hwc(image: Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, C) array OpenCV can read: free when the tensor is a CHW view of HWC memory (or a
    crop of one: OpenCV follows the row stride), a copy otherwise."""
    arr = image.permute(1, 2, 0).numpy()
    item = arr.itemsize
    if arr.strides[2] == item and arr.strides[1] == arr.shape[2] * item and arr.strides[0] > 0:
        return arr
    return np.ascontiguousarray(arr)


def _chw(array: np.ndarray) -> Tensor:
    """(H, W) or (H, W, C) array -> (C, H, W) tensor (a view of the HWC memory)."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1)


def _fill_u8(fill: float) -> int:
    return int(round(min(max(fill, 0.0), 1.0) * 255.0))


def _cv_ok(image: Tensor) -> bool:
    return image.dtype == torch.uint8 and image.shape[0] <= 4


def _half_pixel(matrix: np.ndarray) -> np.ndarray:
    """cnnkit's pixel matrix (centres at +0.5) as OpenCV's (2, 3) (centres at integers)."""
    to_cnnkit = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    to_cv = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    return (to_cv @ matrix @ to_cnnkit)[:2]

# ---------------------------------------------------------------------------------------------- points and boxes


def affine_points(points: Tensor, matrix: np.ndarray) -> Tensor:
    """Apply a 3x3 (or 2x3) affine matrix to points (..., 2)."""
    m = torch.as_tensor(np.asarray(matrix, dtype=np.float64)[:2], dtype=torch.float64)
    p = points.to(torch.float64)
    out = p @ m[:, :2].T + m[:, 2]
    return out.to(points.dtype)


def box_corners(boxes: Tensor) -> Tensor:
    """The 4 corners (N, 4, 2) of boxes (N, 4) xyxy."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                        torch.stack([x1, y2], -1), torch.stack([x2, y2], -1)], dim=-2)


def points_to_boxes(points: Tensor) -> Tensor:
    """Bounding boxes (N, 4) of point sets (N, P, 2)."""
    if points.shape[0] == 0:
        return points.new_zeros((0, 4))
    return torch.cat([points.amin(dim=-2), points.amax(dim=-2)], dim=-1)


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip boxes (N, 4) xyxy to an image of size (H, W)."""
    h, w = size
    x = boxes[:, 0::2].clamp(0, w)
    y = boxes[:, 1::2].clamp(0, h)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=-1)


# ---------------------------------------------------------------------------------------------- flips


def hflip(sample: Sample) -> Sample:
    """Mirror left-right: the width axis reversed, x -> W - x for boxes and landmarks."""
    _, w = sample.size
    boxes = landmarks = None
    if sample.boxes is not None:
        b = sample.boxes
        boxes = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=-1)
    if sample.landmarks is not None:
        landmarks = sample.landmarks.clone()
        landmarks[..., 0] = w - landmarks[..., 0]
    if _cv_ok(sample.image):
        import cv2

        image = _chw(cv2.flip(_hwc(sample.image), 1))  # 2x faster than torch.flip on 8-bit images
    else:
        image = sample.image.flip(-1)
    return sample.replace(
        image=image,
        masks=None if sample.masks is None else sample.masks.flip(-1),
        boxes=boxes,
        landmarks=landmarks,
    )


def vflip(sample: Sample) -> Sample:
    """Mirror top-bottom: the height axis reversed, y -> H - y."""
    h, _ = sample.size
    boxes = landmarks = None
    if sample.boxes is not None:
        b = sample.boxes
        boxes = torch.stack([b[:, 0], h - b[:, 3], b[:, 2], h - b[:, 1]], dim=-1)
    if sample.landmarks is not None:
        landmarks = sample.landmarks.clone()
        landmarks[..., 1] = h - landmarks[..., 1]
    return sample.replace(
        image=sample.image.flip(-2),
        masks=None if sample.masks is None else sample.masks.flip(-2),
        boxes=boxes,
        landmarks=landmarks,
    )


# ---------------------------------------------------------------------------------------------- crops


def _crop_array(x: Tensor, top: int, left: int, height: int, width: int, fill: float) -> Tensor:
    """x[..., top:top+height, left:left+width], with `fill` where the window leaves x."""
    h, w = x.shape[-2:]
    if top >= 0 and left >= 0 and top + height <= h and left + width <= w:
        return x[..., top : top + height, left : left + width]  # a view: nothing is copied
    if x.dtype == torch.uint8 and isinstance(fill, float):
        fill = _fill_u8(fill)
    out = x.new_full((*x.shape[:-2], height, width), fill)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, h), min(left + width, w)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = x[..., y0:y1, x0:x1]
    return out


def crop(sample: Sample, top: int, left: int, height: int, width: int, *, fill: float = 0.0,
         mask_fill: int = 0) -> Sample:
    """Cut the window (top, left, height, width); parts outside the image (padding) get `fill`.

    Boxes and landmarks shift by (-left, -top); boxes are clipped to the window.
    """
    boxes = landmarks = None
    if sample.boxes is not None:
        shift = torch.tensor([left, top, left, top], dtype=sample.boxes.dtype)
        boxes = clip_boxes(sample.boxes - shift, (height, width))
    if sample.landmarks is not None:
        landmarks = sample.landmarks - torch.tensor([left, top], dtype=sample.landmarks.dtype)
    return sample.replace(
        image=_crop_array(sample.image, top, left, height, width, float(fill)),
        masks=None if sample.masks is None else _crop_array(sample.masks, top, left, height, width, mask_fill),
        boxes=boxes,
        landmarks=landmarks,
    )


def resize(sample: Sample, size: tuple[int, int], *, antialias: bool = True) -> Sample:
    """Resize to (H, W): image bilinear (antialiased when shrinking), masks nearest, coordinates scaled."""
    h, w = sample.size
    oh, ow = size
    if (oh, ow) == (h, w):
        return sample
    if _cv_ok(sample.image) or (sample.image.dtype == torch.float32 and oh >= h and ow >= w
                                and sample.image.shape[0] <= 4):
        import cv2

        # enlarging, or shrinking by less than 2x: bilinear with half-pixel centres, the values of F.interpolate
        # (to 1e-5 in float, 3x faster; every input pixel still weighs in, so little aliasing); shrinking 8-bit
        # images further: pixel-area averaging, OpenCV's antialiased reduction, on the shrinking axes
        arr = _hwc(sample.image)
        far = [oh * 2 < h, ow * 2 < w]
        if antialias and any(far):
            arr = cv2.resize(arr, (ow if far[1] else w, oh if far[0] else h), interpolation=cv2.INTER_AREA)
        if arr.shape[:2] != (oh, ow):
            arr = cv2.resize(arr, (ow, oh), interpolation=cv2.INTER_LINEAR)
        image = _chw(arr)
    elif oh >= h and ow >= w:
        # enlarging: the same values as F.interpolate(bilinear) (edge-clamped, half-pixel centres), but CPU
        # grid_sample is about 1.5x faster than upsample_bilinear2d for a few channels
        matrix = np.diag([ow / w, oh / h, 1.0])
        grid = affine_grid(_theta(matrix, (h, w), (oh, ow)), (oh, ow))
        image = F.grid_sample(sample.image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    else:
        image = F.interpolate(sample.image[None], size=(oh, ow), mode="bilinear", align_corners=False,
                              antialias=antialias)[0]
    masks = None
    if sample.masks is not None:
        m = sample.masks
        # "nearest-exact" samples at pixel centres, the same frame as the image (plain "nearest" is shifted)
        resized = F.interpolate(m.reshape(1, -1, h, w).float(), size=(oh, ow), mode="nearest-exact")
        masks = resized.reshape(*m.shape[:-2], oh, ow).to(m.dtype)
    boxes, landmarks = sample.boxes, sample.landmarks
    if boxes is not None or landmarks is not None:  # a tensor costs more than a small resize: only when needed
        scale = torch.tensor([ow / w, oh / h], dtype=torch.float32)
        boxes = None if boxes is None else boxes * scale.repeat(2)
        landmarks = None if landmarks is None else landmarks * scale
    return sample.replace(image=image, masks=masks, boxes=boxes, landmarks=landmarks)


def resized_crop(sample: Sample, top: int, left: int, height: int, width: int, size: tuple[int, int]) -> Sample:
    """Crop the window, then resize it to `size` (H, W)."""
    return resize(crop(sample, top, left, height, width), size)


# ---------------------------------------------------------------------------------------------- affine


def affine_matrix(
    size: tuple[int, int],
    *,
    angle: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    shear: tuple[float, float] = (0.0, 0.0),
    center: tuple[float, float] | None = None,
) -> np.ndarray:
    """3x3 matrix taking input pixel coordinates to output ones: about `center` (default: the image centre),
    scale, then shear (degrees, x then y), then rotate `angle` degrees counter-clockwise as seen on screen,
    then translate by (tx, ty) pixels.
    """
    h, w = size
    cx, cy = center if center is not None else (w / 2.0, h / 2.0)
    a = np.deg2rad(angle)
    # y points down, so a counter-clockwise turn on screen is clockwise in (x, y) algebra
    rot = np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    sx, sy = np.tan(np.deg2rad(shear[0])), np.tan(np.deg2rad(shear[1]))
    sh = np.array([[1.0, sx, 0.0], [sy, 1.0, 0.0], [0.0, 0.0, 1.0]])
    sc = np.diag([scale, scale, 1.0])
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx + translate[0]], [0.0, 1.0, cy + translate[1]], [0.0, 0.0, 1.0]])
    return back @ rot @ sh @ sc @ to_origin


def _theta(matrix: np.ndarray, in_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """affine_grid's theta (2, 3): output normalised coords -> input normalised coords, for a pixel matrix in -> out."""
    (h, w), (oh, ow) = in_size, out_size
    to_norm_in = np.array([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])
    from_norm_out = np.array([[ow / 2.0, 0.0, ow / 2.0], [0.0, oh / 2.0, oh / 2.0], [0.0, 0.0, 1.0]])
    return (to_norm_in @ np.linalg.inv(matrix) @ from_norm_out)[:2]


def affine_grid(theta: np.ndarray, out_size: tuple[int, int]) -> Tensor:
    """The sampling grid (1, H, W, 2) of `F.affine_grid(theta, align_corners=False)`, built from two outer sums.

    Same values as torch's (a test checks), about 5x faster on CPU: torch multiplies a (H*W, 3) base grid by
    theta, while an affine map of a regular grid is separable into a row term plus a column term.
    """
    oh, ow = out_size
    xs = (torch.arange(ow, dtype=torch.float32) * 2 + 1) / ow - 1  # normalised pixel centres
    ys = (torch.arange(oh, dtype=torch.float32) * 2 + 1) / oh - 1
    t = [[float(v) for v in row] for row in theta]
    grid = torch.empty(1, oh, ow, 2)
    torch.add((xs * t[0][0])[None, :], (ys * t[0][1] + t[0][2])[:, None], out=grid[0, :, :, 0])
    torch.add((xs * t[1][0])[None, :], (ys * t[1][1] + t[1][2])[:, None], out=grid[0, :, :, 1])
    return grid


def _resample(x: Tensor, grid: Tensor, mode: str, fill: float) -> Tensor:
    """grid_sample a (N, C, H, W) float tensor, with `fill` outside the input."""
    if fill == 0:
        return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    # sampling x - fill with zero padding, then adding fill back, blends edges toward `fill` exactly
    return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


def _resample_masks(masks: Tensor, grid: Tensor, mask_fill: int) -> Tensor:
    h, w = masks.shape[-2:]
    m = masks.reshape(1, -1, h, w).to(torch.float32)  # exact for ids below 2**24
    out = _resample(m, grid, "nearest", float(mask_fill))
    return out.reshape(*masks.shape[:-2], *grid.shape[1:3]).round_().to(masks.dtype)


def warp_affine(
    sample: Sample,
    matrix: np.ndarray,
    out_size: tuple[int, int] | None = None,
    *,
    fill: float = 0.0,
    mask_fill: int = 0,
    interpolation: str = "bilinear",
) -> Sample:
    """Warp by a 3x3 pixel matrix (input -> output coordinates), in one resampling.

    The image is resampled with `interpolation` ("bilinear" or "nearest"), masks with nearest; landmarks are
    mapped by the matrix; boxes become the bounding box of their 4 mapped corners, clipped to the output.
    """
    in_size = sample.size
    out_size = tuple(out_size or in_size)
    grid = None
    if _cv_ok(sample.image):
        import cv2

        flag = cv2.INTER_LINEAR if interpolation == "bilinear" else cv2.INTER_NEAREST
        out = cv2.warpAffine(_hwc(sample.image), _half_pixel(matrix), (out_size[1], out_size[0]), flags=flag,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(_fill_u8(fill),) * 4)
        image = _chw(out)
    else:
        grid = affine_grid(_theta(matrix, in_size, out_size), out_size)  # (1, H, W, 2)
        image = _resample(sample.image[None], grid, interpolation, fill)[0]
    masks = None
    if sample.masks is not None:
        grid = grid if grid is not None else affine_grid(_theta(matrix, in_size, out_size), out_size)
        masks = _resample_masks(sample.masks, grid, mask_fill)
    boxes = None
    if sample.boxes is not None:
        boxes = clip_boxes(points_to_boxes(affine_points(box_corners(sample.boxes), matrix)), out_size)
    landmarks = None if sample.landmarks is None else affine_points(sample.landmarks, matrix)
    return sample.replace(image=image, masks=masks, boxes=boxes, landmarks=landmarks)


# ---------------------------------------------------------------------------------------------- local warping


@functools.lru_cache(maxsize=32)
def _cubic_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) matrix of 1-D bicubic interpolation weights (align_corners=True), from torch's own kernel."""
    impulses = torch.eye(n_in)[:, None, None, :]  # (n_in, 1, 1, n_in): one unit impulse per row
    resp = F.interpolate(impulses, size=(1, n_out), mode="bicubic", align_corners=True)  # (n_in, 1, 1, n_out)
    return resp[:, 0, 0, :].T.contiguous()


def upsample_bicubic(coarse: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic upsampling (align_corners=True) of a small field (C, h, w) to (C, H, W).

    Equal to `F.interpolate(mode="bicubic")` (a test checks) but computed as Ky @ coarse @ Kx^T: bicubic is
    separable, and two thin matrix products are several times cheaper than the generic kernel for large outputs.
    """
    ky = _cubic_matrix(coarse.shape[-2], size[0])
    kx = _cubic_matrix(coarse.shape[-1], size[1])
    return ky @ coarse.to(torch.float32) @ kx.T


def _field_at(field: Tensor, points: Tensor) -> Tensor:
    """Bilinear value of a displacement field (2, H, W) at points (P, 2) in pixel coordinates -> (P, 2)."""
    h, w = field.shape[-2:]
    scale = torch.tensor([2.0 / w, 2.0 / h])
    grid = (points * scale - 1.0).reshape(1, 1, -1, 2)
    out = F.grid_sample(field[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T  # (P, 2)


def invert_displacement(field: Tensor, points: Tensor, iterations: int = 20) -> Tensor:
    """Where points (P, 2) of the input land in the output of `warp_displacement(field)`.

    The warp is backward (output p reads input p + d(p)), so a point q moves to the p solving p + d(p) = q,
    found by the fixed-point iteration p <- q - d(p); it converges when the field is smooth (its gradient
    stays below 1, as for any warp that does not fold the image).
    """
    p = points.clone()
    for _ in range(iterations):
        p = points - _field_at(field, p)
    return p


def warp_displacement(sample: Sample, field: Tensor, *, fill: float = 0.0, mask_fill: int = 0) -> Sample:
    """Warp by a dense backward displacement field (2, H, W) in pixels: output pixel p reads input p + d(p).

    Masks are resampled with nearest. Landmarks move by the inverse of the same field; boxes become the
    bounding box of 8 points along each of their sides moved alike, clipped.
    """
    size = sample.size
    h, w = size
    grid = torch.empty(1, h, w, 2)
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1  # normalised pixel centres
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    # each output pixel reads the input at its own centre + field, in normalised units
    torch.add(field[0] * (2.0 / w), xs[None, :], out=grid[0, :, :, 0])
    torch.add(field[1] * (2.0 / h), ys[:, None], out=grid[0, :, :, 1])
    image = _resample(as_float(sample.image)[None], grid, "bilinear", fill)[0]
    masks = None if sample.masks is None else _resample_masks(sample.masks, grid, mask_fill)
    landmarks = None
    if sample.landmarks is not None:
        lm = sample.landmarks
        landmarks = invert_displacement(field, lm.reshape(-1, 2)).reshape(lm.shape)
    boxes = None
    if sample.boxes is not None and len(sample.boxes):
        t = torch.linspace(0, 1, 8)
        x1, y1, x2, y2 = (c[:, None] for c in sample.boxes.unbind(-1))
        xs, ys = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t  # (N, 8)
        edges = torch.cat([
            torch.stack([xs, y1.expand_as(xs)], -1), torch.stack([xs, y2.expand_as(xs)], -1),
            torch.stack([x1.expand_as(ys), ys], -1), torch.stack([x2.expand_as(ys), ys], -1),
        ], dim=1)  # (N, 32, 2)
        moved = invert_displacement(field, edges.reshape(-1, 2)).reshape(edges.shape)
        boxes = clip_boxes(points_to_boxes(moved), size)
    elif sample.boxes is not None:
        boxes = sample.boxes
    return sample.replace(image=image, masks=masks, boxes=boxes, landmarks=landmarks)


# ---------------------------------------------------------------------------------------------- colour


def add_colour(sample: Sample, offset: Tensor, *, clip: bool = True) -> Sample:
    """Add a per-channel offset (C,) to every pixel; clip to [0, 1] if asked. Geometry is untouched."""
    if clip and _cv_ok(sample.image) and sample.image.shape[0] <= 3:
        import cv2

        # 8-bit stays 8-bit: the offset rounded to the nearest level (at most 1/510 off), saturated like a clip
        levels = np.rint(offset.double().numpy() * 255.0).tolist() + [0.0] * (4 - offset.numel())
        arr = _hwc(sample.image)
        out = cv2.add(arr, np.array(levels[:4], np.float64)) if arr.shape[2] > 1 else \
            cv2.add(arr, np.array([levels[0], 0, 0, 0], np.float64))
        return sample.replace(image=_chw(out))
    base = as_float(sample.image)
    image = base + offset.to(base.dtype).view(-1, 1, 1)
    if clip:
        image = image.clamp_(0.0, 1.0)
    return sample.replace(image=image)
