"""A machine's GPUs shared among a sweep's parallel trainings (`make sweep JOBS=N`), importable without torch.

DVC starts the sweep's workers, all with one environment, so the sweep cannot give each its own GPU. It
hands them the list of GPUs and a folder of slot locks instead; each training claims a free slot before
CUDA starts and then sees only that slot's GPU (CUDA_VISIBLE_DEVICES). Slot s is on GPU s mod G, so the
trainings spread over the GPUs first. REPROLAB_GPU_SLOTS=k offers k slots on every GPU, each training then
limited to 1/k of its memory (REPROLAB_GPU_MEMORY_FRACTION, torch's `set_per_process_memory_fraction`).
A slot's lock is released when its process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lib.errors import ReprolabError

if TYPE_CHECKING:
    import torch

GPUS_VARIABLE = "REPROLAB_SWEEP_GPUS"  # the GPUs the sweep's trainings share, as CUDA_VISIBLE_DEVICES names them
SLOTS_VARIABLE = "REPROLAB_GPU_SLOTS"  # trainings per GPU, set by the user (1 by default)
FRACTION_VARIABLE = "REPROLAB_GPU_MEMORY_FRACTION"  # each training's share of its GPU's memory
LOCKS_VARIABLE = "REPROLAB_GPU_SLOT_LOCKS"  # the folder of slot locks
_held: list[IO[str]] = []  # this process's slot lock, open until the process ends


def _nvidia_gpu_count() -> int:
    """How many GPUs `nvidia-smi -L` lists (0 without the tool or a driver)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        done = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in done.stdout.splitlines()) if done.returncode == 0 else 0


def visible_gpus(environ: Mapping[str, str], count: Callable[[], int] = _nvidia_gpu_count) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them: its entries when it is set,
    else 0..G-1 for the G GPUs the driver lists."""
    if (visible := environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [name.strip() for name in visible.split(",") if name.strip() and name.strip() != "-1"]
    return [str(index) for index in range(count())]


def slots_per_gpu(environ: Mapping[str, str]) -> int:
    """REPROLAB_GPU_SLOTS: how many trainings may share one GPU (1 when unset)."""
    text = environ.get(SLOTS_VARIABLE) or "1"
    if not text.isdigit() or int(text) < 1:
        raise ReprolabError(
            f"environment variable {SLOTS_VARIABLE}: must be a whole number of at least 1, got {text!r}"
        )
    return int(text)


def sweep_env(gpus: Sequence[str], slots: int, locks: Path) -> dict[str, str]:
    """What the sweep adds to its workers' environment; nothing without GPUs."""
    if not gpus:
        return {}
    env = {GPUS_VARIABLE: ",".join(gpus), SLOTS_VARIABLE: str(slots), LOCKS_VARIABLE: str(locks)}
    if slots > 1:
        env[FRACTION_VARIABLE] = f"{1 / slots:.6g}"
    return env


def slot_env(slot: int, gpus: Sequence[str]) -> dict[str, str]:
    """The environment of the training in `slot`: GPU `slot mod len(gpus)`, the only one it sees."""
    return {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]}


def claim(environ: MutableMapping[str, str], wait: float | None = None, poll: float = 1.0) -> int | None:
    """Claim a free slot of the sweep and set CUDA_VISIBLE_DEVICES in `environ` to its GPU; None outside a
    sweep on GPUs. Call before CUDA starts. `wait` None waits as long as it takes, else that many seconds
    (then None)."""
    if not environ.get(LOCKS_VARIABLE) or not environ.get(GPUS_VARIABLE):
        return None
    gpus = environ[GPUS_VARIABLE].split(",")
    locks = Path(environ[LOCKS_VARIABLE])
    locks.mkdir(parents=True, exist_ok=True)
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        for slot in range(len(gpus) * slots_per_gpu(environ)):
            handle = (locks / f"slot-{slot}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held.append(handle)
            environ.update(slot_env(slot, gpus))
            return slot
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def limit_memory(device: torch.device, environ: Mapping[str, str]) -> float | None:
    """On CUDA, cap this process's share of the GPU's memory at REPROLAB_GPU_MEMORY_FRACTION; the share."""
    text = environ.get(FRACTION_VARIABLE)
    if device.type != "cuda" or not text:
        return None
    try:
        fraction = float(text)
    except ValueError:
        fraction = 0.0
    if not 0 < fraction <= 1:
        raise ReprolabError(f"environment variable {FRACTION_VARIABLE}: must be in (0, 1], got {text!r}")
    import torch

    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction


def release() -> None:
    """Give back this process's slot (its end does so too)."""
    while _held:
        _held.pop().close()
