"""torch.distributed plumbing for the recipes: init from torchrun's environment, rank helpers, exact sharded eval.

Processes are launched by ``torchrun`` (``python -m torch.distributed.run``), never by the library: it sets
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`init_distributed` joins
the process group from them (``env://``) with NCCL on CUDA and Gloo on CPU.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistInfo", "ShardSampler", "all_reduce_sum", "barrier", "cleanup_distributed", "init_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, ``local_rank`` on its node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun with ``WORLD_SIZE > 1``; otherwise a single process.

    Args:
        device: ``"auto"`` (``cuda:LOCAL_RANK`` when CUDA is available, else CPU), ``"cpu"``, ``"cuda"`` (then
            ``cuda:LOCAL_RANK``) or an explicit ``"cuda:N"``.

    Returns:
        The :class:`DistInfo` of this process.

    Raises:
        ValueError: for a CUDA device when CUDA is unavailable, or a malformed torchrun environment.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as e:
        raise ValueError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers (as torchrun sets them): {e}") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu' or 'auto'")
        dev = torch.device(f"cuda:{local_rank}") if device == "cuda" else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a list of numbers over all ranks (float64; identity in a single process)."""
    if not info.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index starting at ``rank``, in order: an exact split for evaluation.

    Unlike ``DistributedSampler`` it pads nothing, so summing per-rank counts gives the exact metric over the
    whole dataset (no sample counted twice, none dropped).
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
