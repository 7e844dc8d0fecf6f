"""Face encoders behind one interface: aligned chips in, embeddings out, with what the database records.

- `DlibEncoder`: dlib's face ResNet (128-d, pretrained, from the face_recognition_models package through the
  weights registry); 150x150 chips with padding 0.25; dlib's documented threshold 0.6.
- `CheckpointEncoder`: an encoder trained with `cnnkit train` (e.g. on the built-in `faces`); its chips are
  resized to its input size; its threshold is the model file's `face_tau` when one was recorded.

`load_encoder("dlib")` or `load_encoder("runs/faces/best.safetensors")`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cnnkit.face.database import ModelInfo


class DlibEncoder:
    """dlib's ResNet face descriptor."""

    chip_size, padding, default_tau = 150, 0.25, 0.6

    def __init__(self):
        from cnnkit.models import create_model

        self.model = create_model("dlib_face_resnet", weights="dlib").eval()
        cfg = self.model.pretrained_cfg
        self.preprocess = cfg.preprocess
        self.info = ModelInfo("dlib_face_resnet", f"{cfg.version}:{cfg.sha256[:12]}", 128)

    @torch.no_grad()
    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 128) descriptors of aligned 150x150 RGB chips."""
        if not len(chips):
            return np.zeros((0, 128), np.float32)
        x = torch.cat([self.preprocess.to_tensor(c) for c in chips])
        return self.model(x).float().numpy()


class CheckpointEncoder:
    """An encoder from a cnnkit model file (a metric-learning model: unit-length embeddings)."""

    padding = 0.25

    def __init__(self, path: str | Path):
        from cnnkit.checkpoint import load_model_file
        from cnnkit.face.database import ModelInfo
        from cnnkit.models.pretrained import file_sha256

        self.model, self.meta = load_model_file(path)
        self.model.eval()
        size = list(self.meta.get("input_size") or [3, 32, 32])
        self.chip_size = int(size[-1])
        with torch.no_grad():
            dim = int(self.model(torch.zeros(1, *size)).shape[1])
        self.info = ModelInfo(str(self.meta.get("model", Path(path).stem)), file_sha256(Path(path))[:12], dim)
        self.default_tau = self.meta.get("face_tau")

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        from cnnkit.face.embed import embed_images

        if not len(chips):
            return np.zeros((0, self.info.dim), np.float32)
        return embed_images(self.model, list(chips), self.meta)


def load_encoder(spec: str = "dlib"):
    """"dlib" (the default) or the path of a cnnkit model file."""
    from cnnkit.errors import MissingFileError

    if spec == "dlib":
        return DlibEncoder()
    if not Path(spec).is_file():
        raise MissingFileError(f"encoder not found: {spec} (use 'dlib' or the path of a model file from cnnkit train)")
    return CheckpointEncoder(spec)
