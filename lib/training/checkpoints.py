"""Per-epoch checkpoints: scratch state that lets a killed run resume and end with the same bytes.

A checkpoint is `<dir>/epoch-NNNN.pt`, written to a temporary file and moved into place with
`os.replace`, so a kill mid-write leaves the previous checkpoint whole; older ones are removed after.
Each records a fingerprint of everything that determines the result (the stage's params, the seed,
the input files' contents, the process count: `lib.digests.fingerprint`). One with another
fingerprint is never resumed.
Checkpoints are not results: the directory is git- and DVC-ignored, and the stage clears it once
its outputs are in place (lab/docs/decisions/0006-checkpoints-are-scratch-state.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib.paths import CHECKPOINTS_DIR

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None]


def stderr_log(prefix: str) -> Log:
    """A log writing each message as one line `<prefix>: <message>` on stderr, where progress bars are too."""
    return lambda message: print(f"{prefix}: {message}", file=sys.stderr, flush=True)


LOG = stderr_log("training")  # the default log of `lib.training`; a stage passes its own


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The random states training draws from: torch's CPU generator (init, dropout on CPU), the
    shuffling generator, and the device's CUDA generator (dropout on CUDA). Nothing draws from
    Python's or NumPy's generators while training, so they are not part of it."""
    import torch

    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device) -> None:
    """Put back what `rng_state` took."""
    import torch

    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class CheckpointStore:
    """The checkpoints of one training run with one fingerprint, in one directory."""

    def __init__(self, directory: Path, key: str, log: Log = LOG) -> None:
        self.directory = Path(directory)
        self.key = key
        self.log = log
        self.extra: dict[str, Any] = {}  # saved with every checkpoint, e.g. the MLflow run id
        self._loaded = False
        self._latest: dict[str, Any] | None = None

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("epoch-*.pt"))

    def latest(self) -> dict[str, Any] | None:
        """The newest checkpoint with this store's fingerprint, or None (read once, then remembered)."""
        if self._loaded:
            return self._latest
        self._loaded = True
        files = self._files()
        if not files:
            return None
        import torch

        path = files[-1]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file is scratch: train from the start instead
            self.log(f"checkpoint {path} is unreadable ({type(exc).__name__}): starting from scratch")
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.key:
            self.log(
                f"checkpoint {path} was made with other params, seed, data or process count "
                "(fingerprint differs): not resumed, starting from scratch"
            )
            return None
        self.log(f"resuming from checkpoint {path} (epoch {state['epoch']} done)")
        self._latest = state
        return state

    def save(self, state: dict[str, Any]) -> Path:
        """Write `state` (with an `epoch`) atomically as the newest checkpoint; remove the older ones."""
        import torch

        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch-{state['epoch']:04d}.pt"
        temporary = self.directory / f".{final.name}.tmp-{os.getpid()}"
        torch.save({**state, **self.extra, "fingerprint": self.key}, temporary)
        os.replace(temporary, final)
        for old in self._files():
            if old != final:
                old.unlink(missing_ok=True)
        return final

    def clear(self) -> None:
        """Remove every checkpoint and leftover temporary file, then the directory if it is empty."""
        if not self.directory.is_dir():
            return
        for path in [*self._files(), *self.directory.glob(".epoch-*.pt.tmp-*")]:
            path.unlink(missing_ok=True)
        folders = [self.directory]
        if self.directory.parent.name == CHECKPOINTS_DIR.name:
            folders.append(self.directory.parent)
        for folder in folders:
            try:
                folder.rmdir()
            except OSError:  # not empty (another stage's checkpoints) or already gone
                break
