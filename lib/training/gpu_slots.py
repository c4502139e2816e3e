"""A machine's GPUs shared among a sweep's parallel trainings (`make sweep JOBS=N`), importable without torch.

DVC starts the sweep's workers with one environment, so each training claims a slot itself (a file lock,
released when its process ends) before CUDA starts, and then sees only its GPU (lab/docs/runners.md).
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lib.environment import env_number

if TYPE_CHECKING:
    import torch

GPUS_VARIABLE = "REPROLAB_SWEEP_GPUS"  # the GPUs the sweep's trainings share, as CUDA_VISIBLE_DEVICES names them
SLOTS_VARIABLE = "REPROLAB_GPU_SLOTS"  # trainings per GPU, set by the user (1 by default)
FRACTION_VARIABLE = "REPROLAB_GPU_MEMORY_FRACTION"  # each training's share of its GPU's memory
LOCKS_VARIABLE = "REPROLAB_GPU_SLOT_LOCKS"  # the folder of slot locks
_held: list[IO[str]] = []  # this process's slot lock, open until the process ends


def nvidia_smi(*args: str) -> str | None:
    """`nvidia-smi <args>`'s output, or None without the tool or when it fails (no driver, no GPU)."""
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):  # OSError: no such tool on PATH
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (all the driver lists when it is unset)."""
    if (visible := environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [name.strip() for name in visible.split(",") if name.strip() and name.strip() != "-1"]
    listed = (nvidia_smi("-L") or "").splitlines()
    return [str(index) for index in range(sum(line.startswith("GPU ") for line in listed))]


def slots_per_gpu(environ: Mapping[str, str]) -> int:
    """REPROLAB_GPU_SLOTS: how many trainings may share one GPU (1 when unset)."""
    return env_number(environ, SLOTS_VARIABLE, "1", int, "a whole number of at least 1", lambda n: n >= 1)


def sweep_env(gpus: Sequence[str], slots: int, locks: Path) -> dict[str, str]:
    """What the sweep adds to its workers' environment; nothing without GPUs."""
    if not gpus:
        return {}
    env = {GPUS_VARIABLE: ",".join(gpus), SLOTS_VARIABLE: str(slots), LOCKS_VARIABLE: str(locks)}
    if slots > 1:
        env[FRACTION_VARIABLE] = f"{1 / slots:.6g}"
    return env


def claim(environ: MutableMapping[str, str], wait: float | None = None) -> int | None:
    """Claim a free slot and set CUDA_VISIBLE_DEVICES in `environ` to its GPU (slot mod GPU count); None
    outside a sweep on GPUs, or when `wait` seconds (None: forever) pass with every slot taken."""
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
            environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
            return slot
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


def limit_memory(device: torch.device, environ: Mapping[str, str]) -> float | None:
    """On CUDA, cap this process's share of the GPU's memory at REPROLAB_GPU_MEMORY_FRACTION; the share."""
    if device.type != "cuda" or not environ.get(FRACTION_VARIABLE):
        return None
    fraction = env_number(environ, FRACTION_VARIABLE, "", float, "in (0, 1]", lambda f: 0 < f <= 1)
    import torch

    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction


def release() -> None:
    """Give back this process's slot (its end does so too)."""
    while _held:
        _held.pop().close()
