"""Face encoders for metric learning (the architectures live in `cnnkit.face.embedder`).

`num_classes`, the registry's name for the output width, is the embedding width here: a trainer that builds
every model with `num_classes=` gets an encoder with that many dimensions; `embedding_dim` overrides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnkit.models.backbone import with_weights
from cnnkit.models.registry import create_model, register_model

if TYPE_CHECKING:  # imported inside the builders: cnnkit.face.embedder imports this package's backbone module
    from cnnkit.face.embedder import Embedder, SmallFaceNet


@register_model
def face_embedder_small(*, num_classes: int = 64, embedding_dim: int | None = None, in_chans: int = 3,
                        width: int = 32, weights=None, **kwargs) -> SmallFaceNet:
    """The CPU default encoder for 32x32 faces: 4 conv stages, 64-d unit embeddings."""
    from cnnkit.face.embedder import SmallFaceNet

    dim = num_classes if embedding_dim is None else embedding_dim
    return with_weights(SmallFaceNet(embedding_dim=dim, in_chans=in_chans, width=width), weights)


@register_model
def face_embedder(*, backbone: str = "resnet18", num_classes: int = 128, embedding_dim: int | None = None,
                  in_chans: int = 3, weights=None, **kwargs) -> Embedder:
    """Any zoo backbone (default resnet18) with an L2-normalised embedding head (default 128-d)."""
    from cnnkit.face.embedder import Embedder

    dim = num_classes if embedding_dim is None else embedding_dim
    model = Embedder(create_model(backbone, num_classes=0, in_chans=in_chans, **kwargs), dim)
    return with_weights(model, weights)
