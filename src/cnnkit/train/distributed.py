"""Data-parallel training on PyTorch's own engine (torch.distributed + DDP), and the helpers the loop uses.

`torchrun --nproc_per_node N -m cnnkit train ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; `init_from_env()` reads them and joins the process group (gloo on CPU, nccl on CUDA). Without
them everything here is a no-op, so the same loop serves one process and many.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """Only the main process (rank 0) writes files and shows progress bars."""
    return rank() == 0


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group torchrun describes in the environment; True when running distributed.

    Args:
        device: the training device; "cuda..." selects nccl and this rank's local GPU, anything else gloo.
    """
    if is_initialized():
        return world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    use_cuda = device.startswith("cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def local_device(device: str) -> torch.device:
    """The device this rank trains on: under torchrun with CUDA, the rank's local GPU."""
    if device.startswith("cuda") and is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(device)


def _comm_device() -> torch.device:
    # nccl only moves CUDA tensors; gloo takes CPU ones
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks (a copy on a single process); the result is on t's device."""
    if world_size() == 1:
        return t.clone()
    out = t.to(_comm_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank.

    DDP does this at the start of every forward pass; after the last training step of an epoch each rank
    holds statistics of its own batches, so validation and checkpoints call this first.
    """
    if world_size() == 1:
        return
    for b in model.buffers():
        moved = b.data.to(_comm_device())
        dist.broadcast(moved, src=0)
        b.data.copy_(moved)


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is True on at least one (so all ranks take the same branch)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (call once at the end of a torchrun process)."""
    if is_initialized():
        dist.destroy_process_group()
