"""Process groups (DESIGN.md, Scale): the one place that joins and leaves torchrun's group.

``torchrun --nproc_per_node N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; training, evaluation and the
CLI join through ``join`` (NCCL for a CUDA device, gloo otherwise) and ask ``rank_and_world``.
"""

from __future__ import annotations

import os

import torch.distributed as dist


def join(device: str) -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the torchrun process group when ``WORLD_SIZE`` > 1.

    A group that is already initialised (by the caller) is used as it is.
    """
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def leave(barrier: bool = True) -> None:
    """Close the process group (a no-op without one); ``barrier`` first waits for every rank, since tearing
    gloo down while a peer still works can abort it."""
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


__all__ = ["join", "leave", "rank_and_world"]
