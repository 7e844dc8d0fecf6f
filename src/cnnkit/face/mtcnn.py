"""MTCNN face detection (Zhang et al. 2016): three networks in a cascade, on any photo size.

1. P-Net, fully convolutional, slides a 12x12 window over an image pyramid (scales 12/min_face_size * 0.709^k
   down to a 12-pixel short side): one output cell per window position, stride 2. Windows whose face
   probability passes threshold 1 become boxes, NMS (IoU 0.5) per scale, then 0.7 over all scales, and each
   box moves by its regression offsets and becomes a square.
2. R-Net re-scores 24x24 crops of those boxes (threshold 2), NMS 0.7, regression, squares again.
3. O-Net re-scores 48x48 crops (threshold 3), regresses the box and outputs 5 landmarks (eyes, nose, mouth
   corners); a last NMS uses intersection over the smaller box ("Min"), which removes boxes nested in others.

The arithmetic follows facenet-pytorch's `detect_face` step for step (its 1-based crop corners, `floor`
of window corners, area resampling) so that boxes and landmarks equal its MTCNN's with the same weights;
NMS is `cnnkit.ops.batched_nms`. The networks come from the weights registry (`mtcnn_pnet` ... with
weights="facenet").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError


@dataclass
class Detections:
    """Faces found in one image, highest score first.

    Attributes:
        boxes: (N, 4) float32 xyxy pixels.
        scores: (N,) O-Net face probabilities.
        landmarks: (N, 5, 2) float32 xy pixels: left eye, right eye, nose, left and right mouth corner
            (left/right as seen in the image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def largest(self) -> int:
        """Index of the face with the largest box."""
        area = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        return int(np.argmax(area))

    def to_json(self) -> list[dict]:
        return [{"box": [round(float(v), 2) for v in b], "score": round(float(s), 5),
                 "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in p]}
                for b, s, p in zip(self.boxes, self.scores, self.landmarks, strict=True)]


class MTCNN:
    """The detection cascade on three networks.

    Args:
        pnet, rnet, onet: the networks (default: the registry's, with facenet-pytorch's weights).
        min_face_size: smallest face side searched for, in pixels.
        thresholds: face probability each stage needs.
        factor: scale step of the image pyramid.
    """

    def __init__(self, pnet: nn.Module | None = None, rnet: nn.Module | None = None, onet: nn.Module | None = None,
                 *, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709):
        if pnet is None or rnet is None or onet is None:
            from cnnkit.models import create_model

            pnet = pnet or create_model("mtcnn_pnet", weights="facenet")
            rnet = rnet or create_model("mtcnn_rnet", weights="facenet")
            onet = onet or create_model("mtcnn_onet", weights="facenet")
        self.pnet, self.rnet, self.onet = pnet.eval(), rnet.eval(), onet.eval()
        self.min_face_size, self.thresholds, self.factor = min_face_size, thresholds, factor

    def scales(self, h: int, w: int) -> list[float]:
        """Pyramid scales: a face of min_face_size becomes 12 pixels at the first; each next is `factor` smaller."""
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales, s = [], m
        while minl >= 12:
            scales.append(s)
            s *= self.factor
            minl *= self.factor
        return scales

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> Detections:
        """Faces in an RGB image (H, W, 3) uint8 (grey (H, W) is repeated to RGB)."""
        from cnnkit.ops import batched_nms

        a = np.asarray(image)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] < 3:
            raise InputError(f"face detection needs an RGB image (H, W, 3), got shape {a.shape}")
        img = torch.from_numpy(np.array(a[..., :3], np.float32)).permute(2, 0, 1)[None]  # (1, 3, H, W), a copy
        h, w = img.shape[2:]

        # stage 1: P-Net over the pyramid; channels-last: the area resampling, P-Net's convolutions and its
        # ceil-mode pooling run faster on CPU, with the same values
        img_cl = img.contiguous(memory_format=torch.channels_last)
        boxes = []
        for scale in self.scales(h, w):
            x = F.interpolate(img_cl, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, prob = self.pnet(((x - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last))
            reg, prob = reg.contiguous(), prob.contiguous()
            b = _windows(reg[0], prob[0, 1], scale, self.thresholds[0])  # (n, 9): box, score, offsets
            keep = batched_nms(b[:, :4], b[:, 4], torch.zeros(len(b), dtype=torch.int64), 0.5)
            boxes.append(b[keep])
        b = torch.cat(boxes) if boxes else torch.zeros(0, 9)
        b = b[batched_nms(b[:, :4], b[:, 4], torch.zeros(len(b), dtype=torch.int64), 0.7)]
        size_w, size_h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        b = torch.stack([b[:, 0] + b[:, 5] * size_w, b[:, 1] + b[:, 6] * size_h,
                         b[:, 2] + b[:, 7] * size_w, b[:, 3] + b[:, 8] * size_h, b[:, 4]], dim=1)
        b = _square(b)

        # stage 2: R-Net on 24x24 crops
        if len(b):
            crops, b = _crops(img, b, 24)
            reg, prob = _batched(self.rnet, crops)
            ok = prob[:, 1] > self.thresholds[1]
            b = torch.cat([b[ok, :4], prob[ok, 1:2]], dim=1)
            reg = reg[ok]
            keep = batched_nms(b[:, :4], b[:, 4], torch.zeros(len(b), dtype=torch.int64), 0.7)
            b = _square(_regress(b[keep], reg[keep]))

        # stage 3: O-Net on 48x48 crops, landmarks
        points = torch.zeros(0, 5, 2)
        if len(b):
            crops, b = _crops(img, b, 48)
            reg, pts, prob = _batched(self.onet, crops)
            ok = prob[:, 1] > self.thresholds[2]
            b = torch.cat([b[ok, :4], prob[ok, 1:2]], dim=1)
            reg, pts = reg[ok], pts[ok]
            bw, bh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
            px = bw[:, None] * pts[:, :5] + b[:, 0:1] - 1
            py = bh[:, None] * pts[:, 5:10] + b[:, 1:2] - 1
            points = torch.stack([px, py], dim=2)  # (n, 5, 2)
            b = _regress(b, reg)
            keep = _nms_min(b[:, :4].numpy(), b[:, 4].numpy(), 0.7)
            b, points = b[keep], points[keep]
        return Detections(b[:, :4].numpy().astype(np.float32), b[:, 4].numpy().astype(np.float32),
                          points.numpy().astype(np.float32))


def _batched(net: nn.Module, x: torch.Tensor, batch: int = 512):
    """The network on crops in batches, in channels-last memory (its max pooling runs ~3x faster so on CPU)."""
    x = x.contiguous(memory_format=torch.channels_last)
    outs = [net(x[i : i + batch]) for i in range(0, len(x), batch)]
    return tuple(torch.cat(v) for v in zip(*outs, strict=True))


def _windows(reg: torch.Tensor, prob: torch.Tensor, scale: float, thresh: float) -> torch.Tensor:
    """P-Net cells over threshold -> (n, 9): the window in image pixels, its score, its 4 offsets.

    A cell (i, j) of the output sees the 12x12 window at (2j, 2i) of the scaled image; its corners are
    mapped back with facenet-pytorch's `floor((2 * cell + 1) / scale)` and `floor((2 * cell + 12) / scale)`.
    """
    mask = prob >= thresh
    ij = mask.nonzero()  # (n, 2) rows, cols
    score = prob[mask]
    offsets = reg[:, mask].T  # (n, 4)
    cell = ij.to(reg.dtype).flip(1)  # (x, y)
    q1 = ((2 * cell + 1) / scale).floor()
    q2 = ((2 * cell + 12) / scale).floor()
    return torch.cat([q1, q2, score[:, None], offsets], dim=1)


def _square(b: torch.Tensor) -> torch.Tensor:
    """Each box grown to a square on its longer side, about the same centre."""
    b = b.clone()
    h, w = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
    side = torch.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    b[:, 2:4] = b[:, :2] + side[:, None]
    return b


def _regress(b: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Move box corners by offsets in units of the box size (+1: inclusive pixel boxes, as the original)."""
    b = b.clone()
    w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def _crops(img: torch.Tensor, b: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """size x size crops of the boxes (clipped to the image, truncated to whole pixels, 1-based as the original),
    normalised; boxes whose clipped crop is empty are dropped."""
    h, w = img.shape[2:]
    q = b[:, :4].trunc().int()
    x = q[:, 0].clamp(min=1)
    y = q[:, 1].clamp(min=1)
    ex = q[:, 2].clamp(max=w)
    ey = q[:, 3].clamp(max=h)
    crops, kept = [], []
    for k in range(len(b)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            part = img[:, :, int(y[k]) - 1 : int(ey[k]), int(x[k]) - 1 : int(ex[k])]
            crops.append(F.interpolate(part, size=(size, size), mode="area"))
            kept.append(k)
    if not crops:
        return torch.zeros(0, 3, size, size), b[:0]
    return (torch.cat(crops) - 127.5) * 0.0078125, b[kept]


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS with overlap = intersection / smaller area (inclusive pixel boxes, as the original).

    Ties in score keep the later index first (the original sorts ascending and takes the last).
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="quicksort")  # the original's np.argsort default
    pick = []
    while order.size:
        i = order[-1]
        pick.append(i)
        rest = order[:-1]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        o = iw * ih / np.minimum(area[i], area[rest])
        order = rest[o <= threshold]
    return np.array(pick, np.int64)
