"""gpu_check.py: the self-test's decisions, on what a machine reports (faked: nothing here has a GPU)."""

from __future__ import annotations

import sys

import pytest
import torch

from lib.errors import ReprolabError
from lib.training import gpu_check
from lib.training.gpu_check import Found, Gpu, problem, runs_on

pytestmark = pytest.mark.unittest

# torch 2.13's CUDA 13 build from PyPI: no kernels below compute capability 7.5
CUDA13_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", (9, 0))
V100 = Gpu(0, "Tesla V100-SXM2-16GB", (7, 0))


def found(**changes: object) -> Found:
    """A GPU runner that can run the build, with `changes`."""
    base = {
        "torch": "2.13.0+cu130",
        "cuda": "13.0",
        "cudnn": 91300,
        "arch_list": CUDA13_ARCHS,
        "driver": "580.65.06",
        "gpus": [H100],
    }
    return Found(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("capability", "archs", "expected"),
    [
        ((7, 0), CUDA13_ARCHS, False),  # V100: below the build's lowest
        ((6, 0), CUDA13_ARCHS, False),  # P100
        ((7, 5), CUDA13_ARCHS, True),  # T4
        ((8, 9), ["sm_80", "sm_86"], True),  # machine code for 8.6 runs on 8.9
        ((9, 0), ["sm_80", "sm_86"], False),  # not across major versions
        ((9, 0), ["sm_80", "compute_80"], True),  # PTX the driver compiles
        ((8, 0), ["sm_90a", "compute_90"], False),  # PTX runs only on its capability or newer
        ((12, 0), CUDA13_ARCHS, True),
    ],
)
def test_a_gpu_runs_the_build_when_its_architecture_or_older_ptx_is_in_the_list(
    capability: tuple[int, int], archs: list[str], expected: bool
) -> None:
    assert runs_on(capability, archs) is expected


def test_a_runner_that_can_run_the_build_has_no_problem_and_says_what_it_found() -> None:
    assert problem(found()) is None
    assert found().report() == [
        f"torch 2.13.0+cu130, CUDA 13.0, cuDNN 91300; architectures: {' '.join(CUDA13_ARCHS)}; driver 580.65.06",
        "GPU 0: NVIDIA H100 80GB HBM3, compute capability sm_90",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"torch": "2.13.0+cpu", "cuda": None, "cudnn": None, "arch_list": [], "gpus": []},
            "torch 2.13.0+cpu is a CPU-only build: install the CUDA build of the same version",
        ),
        (
            {"driver": None, "gpus": []},
            "no NVIDIA driver answers (nvidia-smi finds none): torch 2.13.0+cu130 (CUDA 13.0) needs driver >= 580",
        ),
        (
            {"driver": "550.54.15"},
            "driver 550.54.15 is too old for torch 2.13.0+cu130 (CUDA 13.0): it needs driver >= 580",
        ),
        (
            {"gpus": [], "error": "RuntimeError: Found no NVIDIA driver on your system"},
            "torch 2.13.0+cu130 (CUDA 13.0) with driver 580.65.06 sees no GPU: RuntimeError: Found no NVIDIA driver",
        ),
        (
            {"gpus": [V100]},
            "GPU 0 (Tesla V100-SXM2-16GB) has compute capability sm_70, which is not in this build's architecture "
            f"list ({' '.join(CUDA13_ARCHS)}): torch 2.13.0+cu130 has no kernels for it",
        ),
    ],
)
def test_what_is_wrong_is_one_line_naming_it(changes: dict[str, object], message: str) -> None:
    reason = problem(found(**changes))

    assert reason is not None and reason.startswith(message) and "\n" not in reason


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The processes the check starts, recorded instead of run; kernels pass."""
    started: list[list[str]] = []
    monkeypatch.setattr(gpu_check, "run_step", lambda command, what: started.append(command))
    monkeypatch.setattr(gpu_check, "check_kernel", lambda gpu: None)
    return started


def test_one_gpu_runs_the_kernel_and_the_cuda_tests(
    monkeypatch: pytest.MonkeyPatch, steps: list[list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gpu_check, "gather", found)

    gpu_check.main([])

    assert steps == [[sys.executable, "-m", "pytest", "-q", "-m", "cuda"]]
    out = capsys.readouterr().out
    assert "gpu-check: GPU 0: NVIDIA H100 80GB HBM3, compute capability sm_90" in out
    assert out.endswith("gpu-check: this machine can run the build\n")


def test_two_gpus_also_run_a_two_rank_nccl_check_under_torchrun(
    monkeypatch: pytest.MonkeyPatch, steps: list[list[str]]
) -> None:
    monkeypatch.setattr(gpu_check, "gather", lambda: found(gpus=[H100, Gpu(1, H100.name, (9, 0))]))

    gpu_check.main([])

    assert steps == [
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda"],
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "lib.training.gpu_check",
            "--nccl-rank",
        ],
    ]


def test_a_problem_stops_the_check_before_any_kernel_or_test(
    monkeypatch: pytest.MonkeyPatch, steps: list[list[str]]
) -> None:
    monkeypatch.setattr(gpu_check, "gather", lambda: found(gpus=[V100]))
    monkeypatch.setattr(gpu_check, "check_kernel", lambda gpu: pytest.fail("no kernel runs"))

    with pytest.raises(ReprolabError, match="compute capability sm_70"):
        gpu_check.main([])
    assert steps == []


def test_a_build_without_kernels_for_the_gpu_fails_its_matmul_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_kernel(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nCUDA kernel errors")

    monkeypatch.setattr(torch.Tensor, "to", no_kernel)

    with pytest.raises(ReprolabError) as caught:
        gpu_check.check_kernel(V100)

    assert str(caught.value) == (
        "GPU 0 (Tesla V100-SXM2-16GB) cannot run a matmul: "
        "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    )


def test_a_failing_step_is_one_line_naming_it() -> None:
    with pytest.raises(ReprolabError) as caught:
        gpu_check.run_step([sys.executable, "-c", "raise SystemExit(3)"], "the CUDA tests")

    assert str(caught.value).startswith("the CUDA tests failed (output above): ")


@pytest.mark.skipif(bool(torch.version.cuda), reason="checks the CPU build")
def test_on_this_cpu_build_the_check_fails_naming_the_build(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReprolabError, match="is a CPU-only build"):
        gpu_check.main([])
    assert capsys.readouterr().out.startswith(f"gpu-check: torch {torch.__version__}")
