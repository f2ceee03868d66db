"""Joining the process group when a program is started by ``torchrun``."""

from __future__ import annotations

import os

import torch

from lteval.features import resolve_device


def init_process_group(device: str) -> tuple[int, int]:
    """(rank, world size): joins the process group when started by torchrun
    (WORLD_SIZE > 1; NCCL on CUDA, gloo on CPU, each rank on cuda:LOCAL_RANK), else (0, 1).
    ``lteval extract`` shares each backbone's images among the ranks; ``lteval rank``
    shares the backbones (``lteval.rank.distributed``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = resolve_device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()
