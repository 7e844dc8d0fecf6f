"""Import facenet-pytorch's MTCNN for comparison, without torchvision (whose compiled ops do not load here).

Registers a stand-in `torchvision` with the two names facenet-pytorch's detection code uses
(`torchvision.ops.boxes.batched_nms`, from cnnkit.ops, and `torchvision.transforms.functional`, unused by
detection), and empty parents for facenet_pytorch's packages so their __init__ (which imports the
InceptionResnet and training code) is skipped. For tests and benchmarks only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types


def load_facenet_mtcnn():
    """facenet-pytorch's MTCNN class, or None when the package is not installed."""
    if "facenet_pytorch.models.mtcnn" in sys.modules:
        return sys.modules["facenet_pytorch.models.mtcnn"].MTCNN
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None:
        return None
    if "torchvision" not in sys.modules:
        from cnnkit.ops import batched_nms

        tv = types.ModuleType("torchvision")
        tv.__path__ = []
        ops, boxes = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
        boxes.batched_nms = batched_nms
        ops.boxes = boxes
        transforms = types.ModuleType("torchvision.transforms")
        functional = types.ModuleType("torchvision.transforms.functional")
        transforms.functional = functional
        tv.ops, tv.transforms = ops, transforms
        sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.boxes": boxes,
                            "torchvision.transforms": transforms, "torchvision.transforms.functional": functional})
    root = os.path.dirname(spec.origin)
    for name, path in (("facenet_pytorch", root), ("facenet_pytorch.models", os.path.join(root, "models")),
                       ("facenet_pytorch.models.utils", os.path.join(root, "models", "utils"))):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [path]
            # a spec like the real one's, so find_spec (the weights registry's lookup) still finds the folder
            pkg.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=os.path.join(path, "__init__.py"),
                                                          is_package=True)
            pkg.__spec__.submodule_search_locations = [path]
            sys.modules[name] = pkg
    from facenet_pytorch.models.mtcnn import MTCNN

    return MTCNN
