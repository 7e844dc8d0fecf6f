"""Running small torch work on a chosen number of CPU threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with torch on `n` intra-op threads, then restore the previous setting.

    Small layers (LeNet, CIFAR ResNets, a single 3x3 kernel) gain nothing from splitting each operation across
    threads; on a machine whose cores are shared with other processes the threads mostly wait on each other and
    can make such work 10-25x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
