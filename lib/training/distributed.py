"""Data-parallel training across the processes `torchrun` starts; a plain `python -m` start is a world of one."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.distributed as dist

from lib.errors import ReprolabError


class World(NamedTuple):
    """This process's place among the training processes: its rank, its GPU index on the node, how many."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone evaluates, writes outputs, checkpoints and logs."""
        return self.rank == 0


SINGLE = World()


def world_from_env(environ: Mapping[str, str] | None = None) -> World:
    """The world `torchrun` describes in RANK, LOCAL_RANK and WORLD_SIZE; a world of one without them."""
    environ = os.environ if environ is None else environ
    values = []
    for name, default in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        text = environ.get(name) or default
        try:
            values.append(int(text))
        except ValueError:
            raise ReprolabError(f"environment variable {name}: must be an integer, got {text!r}") from None
    world = World(*values)
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ReprolabError(f"RANK {world.rank} and WORLD_SIZE {world.size}: need 0 <= RANK < WORLD_SIZE")
    return world


def rank_device(device: torch.device, world: World) -> torch.device:
    """Each process's own device: GPU LOCAL_RANK when training on CUDA with several processes."""
    if world.size == 1 or device.type != "cuda":
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise ReprolabError(
            f"LOCAL_RANK {world.local_rank}: only {torch.cuda.device_count()} CUDA devices; "
            "start at most that many processes per node"
        )
    return torch.device("cuda", world.local_rank)


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the process group for the block (NCCL on CUDA, Gloo on CPU); a world of one starts nothing."""
    if world.size == 1:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        dist.barrier()  # rank 0 writes and logs after training while the others wait
    finally:
        dist.destroy_process_group()
