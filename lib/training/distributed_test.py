"""distributed.py: the world from torchrun's environment, each rank's device, and a world of one doing nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from lib.datasets import Splits
from lib.errors import ReprolabError
from lib.training import distributed
from lib.training.checkpoints import CheckpointStore
from lib.training.distributed import (
    SINGLE,
    World,
    from_main,
    group_timeout,
    process_group,
    rank_device,
    torchrun_command,
    world_from_env,
)
from lib.training.loop import fit
from lib.training.params import TrainingParams

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


def test_gpus_per_job_above_one_starts_the_stage_under_torchrun_once() -> None:
    argv = ["--params", "params.yaml"]

    command = torchrun_command("lab.x.main", argv, {"REPROLAB_NPROC_PER_NODE": "4"})

    assert command == [
        sys.executable,
        *("-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"),
        *("-m", "lab.x.main", "--params", "params.yaml"),
    ]
    assert torchrun_command("lab.x.main", argv, {}) is None
    assert torchrun_command("lab.x.main", argv, {"REPROLAB_NPROC_PER_NODE": "1"}) is None
    started = {"REPROLAB_NPROC_PER_NODE": "4", "WORLD_SIZE": "4"}  # a process torchrun started
    assert torchrun_command("lab.x.main", argv, started) is None


@pytest.mark.parametrize("text", ["two", "0", "-1"])
def test_a_bad_process_count_is_a_one_line_error(text: str) -> None:
    with pytest.raises(ReprolabError) as caught:
        torchrun_command("lab.x.main", [], {"REPROLAB_NPROC_PER_NODE": text})

    assert str(caught.value) == (
        f"environment variable REPROLAB_NPROC_PER_NODE: must be a whole number of at least 1, got {text!r}"
    )


def test_the_group_waits_four_hours_unless_the_environment_says_otherwise() -> None:
    assert group_timeout({}) == timedelta(hours=4)
    assert group_timeout({"REPROLAB_PROCESS_GROUP_TIMEOUT": "90"}) == timedelta(seconds=90)


@pytest.mark.parametrize("text", ["soon", "0", "-5"])
def test_a_bad_timeout_is_a_one_line_error(text: str) -> None:
    with pytest.raises(ReprolabError) as caught:
        group_timeout({"REPROLAB_PROCESS_GROUP_TIMEOUT": text})

    assert str(caught.value) == (
        f"environment variable REPROLAB_PROCESS_GROUP_TIMEOUT: must be a positive number of seconds, got {text!r}"
    )


def test_the_process_group_gets_the_timeout_and_on_cuda_the_ranks_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kw: calls.append((backend, kw)))
    monkeypatch.setattr(distributed.dist, "barrier", lambda: None)
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setenv("REPROLAB_PROCESS_GROUP_TIMEOUT", "7200")
    pair = World(rank=1, local_rank=1, size=2)

    for device in (CPU, torch.device("cuda", 1)):
        with process_group(pair, device):
            pass

    hours = timedelta(hours=2)
    assert calls == [("gloo", {"timeout": hours}), ("nccl", {"timeout": hours, "device_id": torch.device("cuda", 1)})]


def test_a_world_of_one_keeps_its_own_value() -> None:
    assert from_main({"epoch": 3}, SINGLE) == {"epoch": 3}


# --- two ranks over Gloo, the CPU stand-in for NCCL -------------------------------------------------

RESUMED = {"lr": 0.01, "batch_size": 32, "device": "cpu"}


def _rank(rank: int, port: int, splits: Splits, folders: list[Path], results: Path) -> None:
    """One of two ranks, each with its own checkpoint folder: rank 0's holds epoch 3, rank 1's epoch 1."""
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "REPROLAB_PROCESS_GROUP_TIMEOUT": "120"}
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}  # as torchrun sets them
    world = world_from_env()
    log = lambda _: None  # noqa: E731
    store = CheckpointStore(folders[rank], "k", log=log, read=world.is_main)
    own = CheckpointStore(folders[rank], "k", log=log).latest
    with process_group(world, CPU):
        store.latest = from_main(store.latest, world)
        epochs: list[int] = []
        params = TrainingParams(**RESUMED, epochs=5)
        result = fit(params, _mlp, splits, CPU, 0, lambda e, _: epochs.append(e), False, checkpoints=store, world=world)
    resumed_at = None if store.latest is None else store.latest["epoch"]
    own_epoch = None if own is None else own["epoch"]
    state = {k: v.tolist() for k, v in result.network.state_dict().items()}
    summary = {"own": own_epoch, "resumed_at": resumed_at, "epochs": epochs, "state": state}
    (results / f"rank-{rank}.json").write_text(json.dumps(summary))


def _mlp(n_features: int, n_outputs: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, n_outputs))


def _checkpoint_of_two_ranks(splits: Splits, folder: Path, epochs: int) -> None:
    """What rank 0 of a two-rank run that reached `epochs` saved: one random state per rank."""
    store = CheckpointStore(folder, "k", log=lambda _: None)
    fit(TrainingParams(**RESUMED, epochs=epochs), _mlp, splits, CPU, 0, progress=False, checkpoints=store)
    saved = CheckpointStore(folder, "k", log=lambda _: None).latest
    assert saved is not None
    store.save({**saved, "rng": saved["rng"] * 2})  # a world of one saved one random state


@pytest.mark.integration  # two processes
def test_ranks_with_different_checkpoint_folders_all_resume_from_rank_0s(splits: Splits, tmp_path: Path) -> None:
    folders = [tmp_path / "node-0", tmp_path / "node-1"]
    _checkpoint_of_two_ranks(splits, folders[0], epochs=3)
    _checkpoint_of_two_ranks(splits, tmp_path / "other", epochs=1)
    shutil.copytree(tmp_path / "other", folders[1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    torch.multiprocessing.spawn(_rank, args=(port, splits, folders, tmp_path), nprocs=2, join=True)

    zero, one = (json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in (0, 1))
    assert (zero["own"], one["own"]) == (3, 1), "each node's folder held a different checkpoint"
    assert zero["resumed_at"] == one["resumed_at"] == 3
    assert zero["epochs"] == [4, 5], "rank 0 trained the epochs after its checkpoint"
    assert zero["state"] == one["state"], "both ranks trained the same network in step"
