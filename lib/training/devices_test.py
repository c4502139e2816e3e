"""devices.py: device facts, native bfloat16 or float16, the fused optimiser, determinism, the CPU-build warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lib.digests import fingerprint
from lib.training import devices
from lib.training.checkpoints import CheckpointStore

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


def fake_gpu(monkeypatch: pytest.MonkeyPatch, name: str, capability: tuple[int, int], bf16_native: bool) -> None:
    """torch.cuda answering as a machine with one GPU `name` would (nothing here has one)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: name)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91300)
    monkeypatch.setattr(devices, "driver_version", lambda: "580.65.06")
    # torch's own default counts emulated bfloat16 as supported: only the native answer may choose it
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16_native or including_emulation
    )


def test_on_cpu_the_facts_are_the_device_and_the_torch_build() -> None:
    assert devices.device_facts(CPU) == {"device": "cpu", "torch": torch.__version__}


def test_on_cuda_the_facts_name_the_gpu_capability_cuda_cudnn_driver_and_build(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpu(monkeypatch, "NVIDIA H100 80GB HBM3", (9, 0), bf16_native=True)

    facts = devices.device_facts(CUDA)

    assert facts == {
        "device": "cuda",
        "torch": torch.__version__,
        "gpu": "NVIDIA H100 80GB HBM3",
        "capability": "9.0",
        "cuda": "13.0",
        "cudnn": "91300",
        "driver": "580.65.06",
    }
    assert devices.run_tags(facts)["device.gpu"] == "NVIDIA H100 80GB HBM3"
    assert "device" not in devices.run_tags(facts)  # the run's `device` tag is set already


def test_a_checkpoint_from_another_gpu_model_is_not_resumed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_gpu(monkeypatch, "NVIDIA H100 80GB HBM3", (9, 0), bf16_native=True)
    CheckpointStore(tmp_path, fingerprint(seed=0, device=devices.device_facts(CUDA))).save({"epoch": 3})
    fake_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB", (8, 0), bf16_native=True)
    lines: list[str] = []

    store = CheckpointStore(tmp_path, fingerprint(seed=0, device=devices.device_facts(CUDA)), log=lines.append)

    assert store.latest is None
    assert len(lines) == 1 and "device (GPU model" in lines[0] and "starting from scratch" in lines[0]


@pytest.mark.parametrize(
    ("name", "capability", "native", "dtype"),
    [
        ("Tesla T4", (7, 5), False, torch.float16),  # Turing emulates bfloat16: float16 with loss scaling
        ("NVIDIA A100-SXM4-80GB", (8, 0), True, torch.bfloat16),
    ],
)
def test_mixed_precision_is_bfloat16_only_where_the_gpu_has_it_natively(
    monkeypatch: pytest.MonkeyPatch, name: str, capability: tuple[int, int], native: bool, dtype: torch.dtype
) -> None:
    fake_gpu(monkeypatch, name, capability, bf16_native=native)

    assert devices.autocast_dtype(True, CUDA, print) == dtype
    assert devices.autocast_dtype(False, CUDA, print) is None


def test_mixed_precision_on_cpu_is_float32_with_one_line() -> None:
    lines: list[str] = []

    assert devices.autocast_dtype(True, CPU, lines.append) is None
    assert lines == ["mixed_precision ignored on cpu: autocast is used on CUDA only; training in float32"]


def test_adam_is_fused_on_cuda_only() -> None:
    weights = [torch.nn.Parameter(torch.zeros(2))]

    assert devices.adam(weights, CUDA, 0.1, 0.0).defaults["fused"] is True
    assert not devices.adam(weights, CPU, 0.1, 0.0).defaults["fused"]
    assert devices.adam(weights, CPU, 0.1, 0.01).defaults["weight_decay"] == 0.01


def test_deterministic_sets_the_algorithms_cudnn_and_cublas_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        devices.use_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert devices.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        devices.use_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


LISTING = "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-0c1e)"


def test_auto_on_cpu_with_a_gpu_listed_warns_once_about_the_cpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(devices, "nvidia_smi", lambda *args: LISTING if args == ("-L",) else None)

    warning = devices.cpu_build_warning("auto", CPU)

    assert warning is not None and "\n" not in warning
    assert warning.startswith("device auto resolved to cpu although the driver reports GPU 0: NVIDIA GeForce RTX 4090:")
    assert f"pip install torch=={torch.__version__.split('+')[0]}" in warning


@pytest.mark.parametrize(
    ("requested", "device", "listing", "cuda"),
    [
        ("auto", CPU, None, None),  # no driver, no GPU: the CPU is what there is
        ("cpu", CPU, LISTING, None),  # asked for
        ("auto", CUDA, LISTING, "13.0"),  # on the GPU
        ("auto", CPU, LISTING, "13.0"),  # the CUDA build, the GPU unusable: torch says why
    ],
)
def test_no_warning_otherwise(
    monkeypatch: pytest.MonkeyPatch, requested: str, device: torch.device, listing: str | None, cuda: str | None
) -> None:
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(devices, "nvidia_smi", lambda *args: listing if args == ("-L",) else None)

    assert devices.cpu_build_warning(requested, device) is None
