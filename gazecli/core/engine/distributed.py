"""Distributed runs: `torchrun --nproc_per_node N gaze ...` sets RANK / WORLD_SIZE / LOCAL_RANK;
every command calls `init_distributed()` once and works the same with one process or many."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """What torchrun announced (single process when nothing was)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device_type: str = "cpu", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun prepared (NCCL on CUDA, gloo otherwise); idempotent."""
    info = env_info()
    if not info.enabled:
        return info
    import datetime

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return info


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(n: int, rank: int, world_size: int) -> range:
    """The rank's contiguous share of range(n) (sizes differ by at most one)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def unwrap(model):
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    import torch

    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
