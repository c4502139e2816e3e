"""distributed.py: the world from torchrun's environment, each rank's device, and a world of one doing nothing."""

from __future__ import annotations

import pytest
import torch

from lib.errors import ReprolabError
from lib.training.distributed import (
    SINGLE,
    World,
    process_group,
    rank_device,
    world_from_env,
)

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")


def test_without_torchrun_variables_the_world_is_one_process() -> None:
    assert world_from_env({}) == SINGLE == World(rank=0, local_rank=0, size=1)
    assert SINGLE.is_main


def test_the_world_comes_from_torchruns_variables() -> None:
    world = world_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})

    assert (world.rank, world.local_rank, world.size, world.is_main) == (3, 1, 4, False)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WORLD_SIZE": "two"}, "environment variable WORLD_SIZE: must be an integer, got 'two'"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK 2 and WORLD_SIZE 2: need 0 <= RANK < WORLD_SIZE"),
    ],
)
def test_a_bad_world_is_a_one_line_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ReprolabError) as caught:
        world_from_env(environ)

    assert str(caught.value) == message


def test_a_world_of_one_starts_no_process_group() -> None:
    with process_group(SINGLE, CPU):
        assert not torch.distributed.is_initialized()


def test_each_process_trains_on_the_device_of_its_local_rank_only_on_cuda() -> None:
    assert rank_device(CPU, World(rank=1, local_rank=1, size=2)) == CPU
    cuda = torch.device("cuda")
    assert rank_device(cuda, SINGLE) == cuda
