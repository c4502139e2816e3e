"""The GPU self-test a runner passes before any training: `python -m lib.training.gpu_check` (`make gpu-check`).

What it checks, in order, is in lab/docs/runners.md; the first failure ends it with one line naming it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from lib.errors import ReprolabError
from lib.paths import PROJ_ROOT

# The oldest driver each CUDA major version runs on (NVIDIA's CUDA toolkit release notes; lab/docs/runners.md).
MIN_DRIVER = {12: 525, 13: 580}


@dataclass(frozen=True)
class Gpu:
    """One visible GPU: its index, name and compute capability (major, minor)."""

    index: int
    name: str
    capability: tuple[int, int]

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"


@dataclass(frozen=True)
class Found:
    """What the machine and the torch build offer; `cuda` None is a CPU-only build."""

    torch: str
    cuda: str | None
    cudnn: int | None = None
    arch_list: list[str] = field(default_factory=list)
    driver: str | None = None
    gpus: list[Gpu] = field(default_factory=list)
    error: str | None = None  # what torch said when it could not use the GPUs

    def report(self) -> list[str]:
        """The lines the check prints before it judges."""
        build = f"torch {self.torch}, CUDA {self.cuda}, cuDNN {self.cudnn}" if self.cuda else f"torch {self.torch}"
        lines = [f"{build}; architectures: {' '.join(self.arch_list) or 'none'}; driver {self.driver or 'none'}"]
        return lines + [f"GPU {gpu.index}: {gpu.name}, compute capability {gpu.sm}" for gpu in self.gpus]


def runs_on(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether `arch_list` has code for a GPU of `capability`.

    Machine code runs on the same major version and an equal or higher minor one (sm_80 on sm_86); PTX
    (compute_XY), which the driver compiles, on its capability or newer.
    """
    for arch in arch_list:
        if matched := re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch):
            built = (int(matched[2]), int(matched[3]))
            if built <= capability and (matched[1] == "compute" or built[0] == capability[0]):
                return True
    return False


def problem(found: Found) -> str | None:
    """The one line naming why this machine cannot run the build, or None when it can."""
    if not found.cuda:
        return (
            f"torch {found.torch} is a CPU-only build: install the CUDA build of the same version "
            "(lab/docs/runners.md), or on a CPU-only runner set the repository variable ALLOW_CPU_RUNNER to true"
        )
    needed = MIN_DRIVER.get(int(found.cuda.split(".")[0]))
    build = f"torch {found.torch} (CUDA {found.cuda})"
    if found.driver is None:
        return f"no NVIDIA driver answers (nvidia-smi finds none): {build} needs driver >= {needed or 'its CUDA'}"
    major = found.driver.split(".")[0]
    if needed and major.isdigit() and int(major) < needed:
        return f"driver {found.driver} is too old for {build}: it needs driver >= {needed}"
    if found.error or not found.gpus:
        return f"{build} with driver {found.driver} sees no GPU: {found.error or 'none visible'}"
    for gpu in found.gpus:
        if not runs_on(gpu.capability, found.arch_list):
            return (
                f"GPU {gpu.index} ({gpu.name}) has compute capability {gpu.sm}, which is not in this build's "
                f"architecture list ({' '.join(found.arch_list)}): torch {found.torch} has no kernels for it"
            )
    return None


def gather() -> Found:
    """What this machine and torch report."""
    import torch

    from lib.training.devices import driver_version

    found = Found(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.version.cuda else None,
        arch_list=torch.cuda.get_arch_list(),
        driver=driver_version(),
    )
    if not found.cuda or found.driver is None:
        return found
    try:
        count = torch.cuda.device_count()
        gpus = [Gpu(i, torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i)) for i in range(count)]
    except Exception as exc:  # torch's own words on why the driver and build do not fit together
        return replace(found, error=first_line(exc))
    return replace(found, gpus=gpus)


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def check_kernel(gpu: Gpu) -> None:
    """A matmul on `gpu`, compared with the CPU's: a build without kernels for it fails here."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(256, 256, generator=generator) for _ in range(2))
    device = torch.device("cuda", gpu.index)
    try:
        on_gpu = (a.to(device) @ b.to(device)).cpu()
    except Exception as exc:
        raise ReprolabError(f"GPU {gpu.index} ({gpu.name}) cannot run a matmul: {first_line(exc)}") from None
    difference = float((on_gpu - a @ b).abs().max())
    if difference > 1e-2:  # TF32 would be near 1e-3 here; a wrong result is far off
        raise ReprolabError(f"GPU {gpu.index} ({gpu.name}) computes a wrong matmul: off by {difference:.3g}")


def run_step(command: list[str], what: str) -> None:
    """Run a check as a process in the project, its output shown as it comes; a failure is one line."""
    print(f"gpu-check: {what}: {' '.join(command)}", flush=True)
    if subprocess.run(command, cwd=PROJ_ROOT, check=False).returncode != 0:
        raise ReprolabError(f"{what} failed (output above): {' '.join(command)}")


def nccl_rank() -> None:
    """One rank of the NCCL check: an all-reduce over the process group the training uses."""
    import torch

    from lib.torch_data import resolve_device
    from lib.training.distributed import process_group, rank_device, world_from_env

    world = world_from_env()
    device = rank_device(resolve_device("cuda"), world)
    with process_group(world, device):
        total = torch.ones(1, device=device) * (world.rank + 1)
        torch.distributed.all_reduce(total)
        expected = world.size * (world.size + 1) / 2
        if float(total) != expected:
            raise ReprolabError(f"NCCL all-reduce on rank {world.rank}: got {float(total)}, expected {expected}")


def main(argv: Sequence[str] | None = None) -> None:
    """Print what was found; check build, driver, capability, a kernel, the CUDA tests and NCCL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nccl-rank", action="store_true", help=argparse.SUPPRESS)  # what torchrun starts
    args = parser.parse_args(argv)
    if args.nccl_rank:
        return nccl_rank()
    found = gather()
    for line in found.report():
        print(f"gpu-check: {line}", flush=True)
    if reason := problem(found):
        raise ReprolabError(reason)
    for gpu in found.gpus:
        check_kernel(gpu)
    print(f"gpu-check: a matmul on each of {len(found.gpus)} GPU(s) matches the CPU's", flush=True)
    run_step([sys.executable, "-m", "pytest", "-q", "-m", "cuda"], "the CUDA tests")
    if len(found.gpus) >= 2:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        run_step([*torchrun, "-m", "lib.training.gpu_check", "--nccl-rank"], "a 2-rank NCCL all-reduce")
    print("gpu-check: this machine can run the build", flush=True)


if __name__ == "__main__":
    from lib import cli

    raise SystemExit(cli.run(main))
