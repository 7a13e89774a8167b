"""A round across processes and machines under PyTorch's own launcher (torchrun): gloo on CPUs,
NCCL on GPUs. Every rank pre-trains on its share of each batch under DistributedDataParallel,
trains the folds `rank, rank + world, ...`, and scores every row with its fold models; rank 0
gathers the folds and alone goes on (label spreading, calibration, metrics) and writes the
store. A rank that dies makes torchrun stop the others, and rank 0's round fails cleanly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as torch_dist

from .errors import InputError

# A collective that waits longer than this for a rank has lost it (torchrun also stops the others).
TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def leader(self) -> bool:
        return self.rank == 0


def from_env(device_setting: str) -> Dist | None:
    """The process group torchrun set up for this process (its environment names the rank and
    the world), or None when it runs alone. Binds a GPU per local rank when there are GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_setting != "cpu" and torch.cuda.is_available()
    if device_setting == "cuda" and not cuda:
        raise InputError("device: cuda requested but no CUDA device is available")
    if cuda:
        if local >= torch.cuda.device_count():
            raise InputError(f"local rank {local} has no GPU ({torch.cuda.device_count()} on this machine): "
                             f"start at most one process per GPU")
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if not torch_dist.is_initialized():
        try:
            torch_dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        except Exception as e:  # noqa: BLE001 - a rendezvous that fails is the user's address or port
            raise InputError(f"rank {rank} of {world} cannot reach its peers at {os.environ.get('MASTER_ADDR')}:"
                             f"{os.environ.get('MASTER_PORT')} ({e.__class__.__name__}); check --master-addr "
                             f"and --master-port (or --rdzv-endpoint) on every node") from None
    return Dist(rank, world, local, device)


def broadcast(value: Any, dist: Dist | None) -> Any:
    """Rank 0's `value` on every rank (any picklable object)."""
    if dist is None:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, dist: Dist | None) -> list[Any] | None:
    """Every rank's `value`, in rank order, on rank 0 (None elsewhere)."""
    if dist is None:
        return [value]
    out: list[Any] | None = [None] * dist.world if dist.leader else None
    torch_dist.gather_object(value, out, dst=0)
    return out


def close(dist: Dist | None) -> None:
    if dist is not None and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
