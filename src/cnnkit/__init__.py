"""cnnkit: the convolutional-network curriculum as real, fast, tested software."""

from cnnkit.errors import CnnkitError

__version__ = "0.1.0"
__all__ = ["CnnkitError", "__version__"]
