"""Data-parallel training across processes started by `torchrun` (WORLD_SIZE > 1 in the environment).

A plain `python -m` start is a world of one: nothing here initialises a process group or wraps the
network then, and every collective is a no-op, so the single-process path runs exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib.errors import ReprolabError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: its rank, its GPU index on the node, how many."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone evaluates, writes outputs, checkpoints and logs."""
        return self.rank == 0

    def wrap(self, network: nn.Module, device: torch.device) -> nn.Module:
        """The network in DistributedDataParallel when there are several processes, else itself."""
        if self.size == 1:
            return network
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over every process, in place (itself in a world of one)."""
        if self.size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in rank order (a picklable object; `[value]` in a world of one)."""
        values: list[Any] = [value] * self.size
        if self.size > 1:
            import torch.distributed as dist

            dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()


SINGLE = World()


def world_from_env(environ: Mapping[str, str] | None = None) -> World:
    """The world `torchrun` describes in RANK, LOCAL_RANK and WORLD_SIZE; a world of one without them."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, default in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)):
        text = environ.get(name, "")
        try:
            values[name] = int(text) if text else default
        except ValueError:
            raise ReprolabError(f"environment variable {name}: must be an integer, got {text!r}") from None
    world = World(rank=values["RANK"], local_rank=values["LOCAL_RANK"], size=values["WORLD_SIZE"])
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ReprolabError(f"RANK {world.rank} and WORLD_SIZE {world.size}: need 0 <= RANK < WORLD_SIZE")
    return world


def check_batch_size(batch_size: int, world: World, key: str = "batch_size") -> int:
    """The per-process batch size; the global `batch_size` (params key `key`) must split evenly over the processes."""
    if batch_size % world.size:
        raise ReprolabError(
            f"{key}: {batch_size} does not split evenly over {world.size} processes (WORLD_SIZE); "
            "choose a multiple of the process count"
        )
    return batch_size // world.size


def rank_device(device: torch.device, world: World) -> torch.device:
    """Each process's own device: GPU LOCAL_RANK when training on CUDA with several processes."""
    import torch

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
    """Join the process group for the block (NCCL on CUDA, Gloo on CPU); nothing in a world of one."""
    if world.size == 1:
        yield
        return
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()
