"""Faces: the `faces` identity data set, metric learning (triplet loss, Siamese head), detection (MTCNN),
alignment, verification, recognition, the enrolment database and threshold selection.

Submodules are imported on use (`from cnnkit.face.database import FaceDatabase`): `cnnkit face list` needs the
database without torch.
"""
