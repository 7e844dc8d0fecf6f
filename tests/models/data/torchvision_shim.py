"""Record-only shim: import torchvision's pure-Python model definitions without its compiled ops.

torchvision's package __init__ loads compiled operators that fail against this project's torch build; its model
files do not need them. Registering an empty `torchvision` package that points at the installed sources skips that
__init__. Used only by the hand-run scripts beside and above this file, never by cnnkit or the test suite.
"""

import importlib.util
import os
import sys
import types

_spec = importlib.util.find_spec("torchvision")
_pkg = types.ModuleType("torchvision")
_pkg.__path__ = [os.path.dirname(_spec.origin)]
sys.modules["torchvision"] = _pkg

import torchvision.models as tvm  # noqa: E402,F401
