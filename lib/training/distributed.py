"""Data-parallel training across the processes `torchrun` starts; a plain `python -m` start is a world of one."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import NamedTuple, TypeVar

import torch
import torch.distributed as dist

from lib.environment import env_number
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
TIMEOUT_VARIABLE = "REPROLAB_PROCESS_GROUP_TIMEOUT"
NPROC_VARIABLE = "REPROLAB_NPROC_PER_NODE"  # the launch workflow sets it from the repository variable GPUS_PER_JOB
T = TypeVar("T")


def world_from_env(environ: Mapping[str, str] = os.environ) -> World:
    """The world `torchrun` describes in RANK, LOCAL_RANK and WORLD_SIZE; a world of one without them."""
    names = (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"))
    world = World(*(env_number(environ, name, default, int, "an integer") for name, default in names))
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ReprolabError(f"RANK {world.rank} and WORLD_SIZE {world.size}: need 0 <= RANK < WORLD_SIZE")
    return world


def torchrun_command(module: str, argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The torchrun command starting `module` with `argv` on REPROLAB_NPROC_PER_NODE processes; None when that
    is 1 or torchrun started this process."""
    processes = env_number(environ, NPROC_VARIABLE, "1", int, "a whole number of at least 1", lambda n: n >= 1)
    if processes == 1 or "WORLD_SIZE" in environ:
        return None
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return [*torchrun, "-m", module, *argv]


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


def group_timeout(environ: Mapping[str, str] = os.environ) -> timedelta:
    """How long a rank waits in a collective: REPROLAB_PROCESS_GROUP_TIMEOUT seconds, else 4 hours.

    Ranks 1..N wait while rank 0 writes the outputs and logs to MLflow; NCCL's own 10 minutes would let its
    watchdog kill them during a slow upload, and torchrun then rank 0.
    """
    seconds = env_number(environ, TIMEOUT_VARIABLE, "14400", float, "a positive number of seconds", lambda s: s > 0)
    return timedelta(seconds=seconds)


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join the process group for the block (NCCL on CUDA, bound to this rank's GPU; Gloo on CPU); a world
    of one starts nothing."""
    if world.size == 1:
        yield
        return
    timeout = group_timeout()
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    try:
        yield
        dist.barrier()  # rank 0 writes and logs after training while the others wait
    finally:
        dist.destroy_process_group()


def from_main(value: T, world: World) -> T:
    """Rank 0's `value` on every rank, e.g. the checkpoint to resume from, so that ranks on nodes without a
    shared filesystem agree."""
    if world.size == 1:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
