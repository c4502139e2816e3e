"""What a network trains on: the device's facts (for fingerprints and run tags), its precision, its optimiser,
deterministic algorithms, and a warning when a GPU machine trains on CPU for want of the CUDA build of torch."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from lib.training.checkpoints import Log
from lib.training.gpu_slots import nvidia_smi


def driver_version() -> str | None:
    """The NVIDIA driver's version as `nvidia-smi` reports it (e.g. 580.65.06), else None."""
    found = nvidia_smi("--query-gpu=driver_version", "--format=csv,noheader")
    return found.splitlines()[0].strip() if found else None


def device_facts(device: torch.device) -> dict[str, str]:
    """What decides a training's bytes besides params and data: the torch build, and on CUDA the GPU model,
    its compute capability, CUDA, cuDNN and the driver."""
    facts = {"device": device.type, "torch": torch.__version__}
    if device.type != "cuda":
        return facts
    major, minor = torch.cuda.get_device_capability(device)  # a device without an index is the current one
    return facts | {
        "gpu": torch.cuda.get_device_name(device),
        "capability": f"{major}.{minor}",
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()),
        "driver": driver_version() or "unknown",
    }


def run_tags(facts: dict[str, str]) -> dict[str, str]:
    """`device_facts` as MLflow tags: `device.gpu`, `device.cuda`, ... (`device` itself is tagged already)."""
    return {f"device.{name}": value for name, value in facts.items() if name != "device"}


def autocast_dtype(mixed_precision: bool, device: torch.device, log: Log) -> torch.dtype | None:
    """The autocast dtype (None: float32): bfloat16 where the GPU computes it natively, else float16.

    Emulated bfloat16 (Turing: T4, RTX 20xx) is slow and has no tensor cores, so it is never chosen.
    """
    if mixed_precision and device.type != "cuda":
        log(f"mixed_precision ignored on {device.type}: autocast is used on CUDA only; training in float32")
    elif mixed_precision:
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return None


def adam(
    parameters: Iterable[torch.nn.Parameter], device: torch.device, lr: float, weight_decay: float
) -> torch.optim.Adam:
    """Adam; fused on CUDA, where float16's GradScaler then checks for inf/NaN on the GPU instead of
    syncing with the host every batch."""
    fused = True if device.type == "cuda" else None
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused)


def use_deterministic(enabled: bool) -> None:
    """Deterministic algorithms on or off (params `deterministic`).

    cuBLAS reads its workspace setting when it starts, so this runs before the first kernel.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def cpu_build_warning(requested: str, device: torch.device) -> str | None:
    """One line when `auto` chose the CPU although the driver lists a GPU (the CPU build of torch that
    `make setup` installs); None otherwise."""
    if requested != "auto" or device.type != "cpu" or torch.version.cuda:
        return None
    listed = nvidia_smi("-L")
    if not listed or "GPU" not in listed:
        return None
    first = listed.splitlines()[0].split(" (UUID")[0]
    version = torch.__version__.split("+")[0]
    return (
        f"device auto resolved to cpu although the driver reports {first}: torch {torch.__version__} is the CPU "
        f"build that `make setup` installs; for the GPU, `.venv/bin/python -m pip uninstall -y torch` and then "
        f"`.venv/bin/python -m pip install torch=={version}` from PyPI's default index (lab/docs/runners.md)"
    )
