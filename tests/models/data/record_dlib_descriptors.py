"""Record dlib's own face descriptors for a few face chips (hand-run, needs dlib; the result is checked in).

    .venv/bin/python tests/models/data/record_dlib_descriptors.py

Chips: dlib's frontal face detector + 5-point shape predictor + dlib.get_face_chip(size=150, padding=0.25) on
scikit-image's astronaut (and its mirror image) and matplotlib's grace_hopper.jpg (scikit-image's camera man looks
sideways: dlib finds no frontal face there). Descriptors: dlib.face_recognition_model_v1(...)
.compute_face_descriptor(chip), the chip passed directly (no jitter). Writes dlib_face_descriptors.npz beside this
file: chips (N, 150, 150, 3) uint8, descriptors (N, 128) float64, names, dlib version.
"""

from pathlib import Path

import dlib
import matplotlib
import numpy as np
from PIL import Image
from skimage import data

from cnnkit.models.pretrained import _find_package_dir

root = _find_package_dir("face_recognition_models") / "models"
detector = dlib.get_frontal_face_detector()
shape = dlib.shape_predictor(str(root / "shape_predictor_5_face_landmarks.dat"))
net = dlib.face_recognition_model_v1(str(root / "dlib_face_recognition_resnet_model_v1.dat"))

hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))
photos = {
    "astronaut": data.astronaut(),
    "astronaut_mirrored": np.ascontiguousarray(data.astronaut()[:, ::-1]),
    "grace_hopper": hopper,
}
chips, descriptors, names = [], [], []
for name, img in photos.items():
    faces = sorted(detector(img, 1), key=lambda r: -r.area())
    if not faces:
        print(f"{name}: no face found")
        continue
    chip = dlib.get_face_chip(img, shape(img, faces[0]), size=150, padding=0.25)
    chips.append(chip)
    descriptors.append(np.array(net.compute_face_descriptor(chip)))
    names.append(name)
    print(name, faces[0], np.linalg.norm(descriptors[-1]))
out = Path(__file__).with_name("dlib_face_descriptors.npz")
np.savez_compressed(out, chips=np.stack(chips), descriptors=np.stack(descriptors), names=np.array(names),
                    dlib_version=np.array(dlib.__version__))
print(out, out.stat().st_size)
