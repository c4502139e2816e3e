"""gpu_slots.py: which GPU each of a sweep's trainings gets, its memory share, and the environment it sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lib.errors import ReprolabError
from lib.training import gpu_slots

pytestmark = pytest.mark.unittest


@pytest.fixture(autouse=True)
def _release() -> None:
    """Each test's claims are given back (a process holds its slot until it ends)."""
    yield
    gpu_slots.release()


def test_the_gpus_are_those_cuda_visible_devices_names_else_all_the_driver_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listing = "\n".join(f"GPU {index}: NVIDIA L4 (UUID: GPU-{index})" for index in range(4))
    monkeypatch.setattr(gpu_slots, "nvidia_smi", lambda *args: listing if args == ("-L",) else None)
    assert gpu_slots.visible_gpus({}) == ["0", "1", "2", "3"]
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    monkeypatch.setattr(gpu_slots, "nvidia_smi", lambda *args: None)  # no driver
    assert gpu_slots.visible_gpus({}) == []


@pytest.mark.parametrize(
    ("gpus", "slots", "devices", "fraction"),
    [
        (["0", "1"], 1, ["0", "1"], None),  # round-robin: each training a GPU of its own
        (["0", "1"], 2, ["0", "1", "0", "1"], "0.5"),  # two on each GPU, half its memory each
        (["2", "3"], 1, ["2", "3"], None),  # the names CUDA_VISIBLE_DEVICES gave the sweep
        (["0"], 3, ["0", "0", "0"], "0.333333"),
    ],
)
def test_each_training_claims_a_slot_and_sees_its_gpu_only(
    tmp_path: Path, gpus: list[str], slots: int, devices: list[str], fraction: str | None
) -> None:
    shared = {"OMP_NUM_THREADS": "1"} | gpu_slots.sweep_env(gpus, slots, tmp_path / "locks")
    assert shared.get(gpu_slots.FRACTION_VARIABLE) == fraction

    seen = []
    for expected_slot in range(len(gpus) * slots):
        environ = dict(shared)  # what DVC's worker passes on to the training it starts
        assert gpu_slots.claim(environ, wait=0) == expected_slot
        seen.append(environ["CUDA_VISIBLE_DEVICES"])

    assert seen == devices
    assert gpu_slots.claim(dict(shared), wait=0) is None, "every slot is taken: the next training waits"


def test_a_slot_is_free_again_once_its_training_ends(tmp_path: Path) -> None:
    shared = gpu_slots.sweep_env(["0", "1"], 1, tmp_path)
    assert [gpu_slots.claim(dict(shared), wait=0) for _ in range(2)] == [0, 1]

    gpu_slots.release()

    environ = dict(shared)
    assert gpu_slots.claim(environ, wait=0) == 0
    assert environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_outside_a_sweep_on_gpus_nothing_is_claimed_or_changed(tmp_path: Path) -> None:
    assert gpu_slots.sweep_env([], 2, tmp_path) == {}
    environ = {"CUDA_VISIBLE_DEVICES": "1"}
    assert gpu_slots.claim(environ) is None
    assert environ == {"CUDA_VISIBLE_DEVICES": "1"}


@pytest.mark.parametrize("text", ["two", "0"])
def test_a_bad_slot_count_is_a_one_line_error(text: str) -> None:
    with pytest.raises(ReprolabError) as caught:
        gpu_slots.slots_per_gpu({"REPROLAB_GPU_SLOTS": text})

    assert (
        str(caught.value)
        == f"environment variable REPROLAB_GPU_SLOTS: must be a whole number of at least 1, got {text!r}"
    )


def test_the_memory_share_is_set_on_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, torch.device]] = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d: calls.append((f, d)))
    cuda = torch.device("cuda", 0)

    assert gpu_slots.limit_memory(cuda, {"REPROLAB_GPU_MEMORY_FRACTION": "0.5"}) == 0.5
    assert gpu_slots.limit_memory(cuda, {}) is None
    assert gpu_slots.limit_memory(torch.device("cpu"), {"REPROLAB_GPU_MEMORY_FRACTION": "0.5"}) is None
    assert calls == [(0.5, cuda)]
    with pytest.raises(ReprolabError, match="REPROLAB_GPU_MEMORY_FRACTION: must be in"):
        gpu_slots.limit_memory(cuda, {"REPROLAB_GPU_MEMORY_FRACTION": "2"})
