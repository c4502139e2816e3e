"""Per-epoch checkpoints: scratch state that lets a killed run resume and end with the same bytes.

Written atomically, keyed by a fingerprint, cleared once the outputs are in place (decision 0006).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lib.paths import CHECKPOINTS_DIR

Log = Callable[[str], None]


def stderr_log(prefix: str) -> Log:
    """A log writing each message as one line `<prefix>: <message>` on stderr, where progress bars are too."""
    return lambda message: print(f"{prefix}: {message}", file=sys.stderr, flush=True)


LOG = stderr_log("training")  # the default log of `lib.training`; a stage passes its own


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The random states training draws from (init and dropout, shuffling); not Python's or NumPy's."""
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device) -> None:
    """Put back what `rng_state` took."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class CheckpointStore:
    """The checkpoints of one training run with one fingerprint (`key`), in one directory."""

    def __init__(self, directory: Path, key: str, log: Log = LOG, *, read: bool = True) -> None:
        self.directory, self.key, self.log = Path(directory), key, log
        self.extra: dict[str, Any] = {}  # saved with every checkpoint, e.g. the MLflow run id
        # what a run resumes from, read once; `read` False leaves it to be set (rank 0's, `distributed.from_main`)
        self.latest = self._newest() if read else None

    def _newest(self) -> dict[str, Any] | None:
        files = sorted(self.directory.glob("epoch-*.pt"))
        if not files:
            return None
        try:
            state = torch.load(files[-1], map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file is scratch: train from the start instead
            self.log(f"checkpoint {files[-1]} is unreadable ({type(exc).__name__}): starting from scratch")
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.key:
            self.log(
                f"checkpoint {files[-1]} was made with other params, seed, data, process count or device (GPU "
                "model, driver, CUDA, cuDNN, torch build; fingerprint differs): not resumed, starting from scratch"
            )
            return None
        self.log(f"resuming from checkpoint {files[-1]} (epoch {state['epoch']} done)")
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (with an `epoch`) atomically as the newest checkpoint; remove the older ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch-{state['epoch']:04d}.pt"
        temporary = self.directory / f".{final.name}.tmp-{os.getpid()}"
        torch.save({**state, **self.extra, "fingerprint": self.key}, temporary)
        os.replace(temporary, final)  # a kill mid-write leaves the previous checkpoint whole
        for old in self.directory.glob("epoch-*.pt"):
            if old != final:
                old.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove the checkpoints and what a kill left, then the directory and `.checkpoints` when empty."""
        for path in self.directory.glob("*epoch-*.pt*"):  # temporary files start with a dot
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty (another stage's checkpoints), or already gone
            self.directory.rmdir()
            if self.directory.parent.name == CHECKPOINTS_DIR.name:
                self.directory.parent.rmdir()
