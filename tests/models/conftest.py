"""Model tests run torch on one thread.

The test machine's two cores are shared by several test runs: with two intra-op threads each, torch's threads
wait on one another and a ResNet-101 forward pass on a 32x32 batch takes seconds instead of 0.1 s. The previous
setting is restored after each module, so tests elsewhere keep theirs.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
