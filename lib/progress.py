"""Progress of a training for whoever watches it: a bar in a terminal, else lines in the log, since a CI log
keeps every line a bar redraws, or none: one per epoch, and for a long epoch one per tenth of it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

SHARES = 10  # a long epoch reports each tenth of its batches
LONG_EPOCH_S = 60.0  # an epoch expected to take this long is a long one


def in_terminal(stream: TextIO | None = None) -> bool:
    """Whether a person watches `stream` (stderr) live in a terminal: a TTY outside CI. act gives each CI
    step a terminal, but what it writes ends up in a log all the same."""
    stream = stream or sys.stderr
    return stream.isatty() and os.environ.get("CI", "").lower() not in {"1", "true", "yes"}


def duration(seconds: float) -> str:
    """`3725.2` -> `1:02:05`: hours, minutes and seconds."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def time_left(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left at the mean pace so far, when `done` of `total` units took `elapsed` seconds; None
    before anything is done."""
    return elapsed / done * (total - done) if done > 0 else None


def progress_line(
    epoch: int,
    epochs: int,
    elapsed: float,
    left: float | None,
    metrics: Mapping[str, float] | None = None,
    share: float = 1.0,
) -> str:
    """`epoch 3/20: train/loss 0.4123, val/loss 0.3012; elapsed 0:00:12, left 0:01:08`; within an epoch
    its share of batches follows the epoch (`epoch 3/20 40%`), and there are no metrics yet."""
    where = f"epoch {epoch}/{epochs}" + ("" if share >= 1 else f" {share:.0%}")
    scores = ", ".join(f"{name} {value:.4f}" for name, value in (metrics or {}).items())
    timing = f"elapsed {duration(elapsed)}, left {'?' if left is None else duration(left)}"
    return f"{where}: {scores}; {timing}" if scores else f"{where}: {timing}"


class EpochProgress:
    """Lines for `log` while epochs `first`..`epochs` run: one after each epoch with its metrics, and one at
    each tenth of an epoch's batches when the epoch is on course to take `long_epoch_s` or more."""

    def __init__(
        self,
        log: Callable[[str], None],
        first: int,
        epochs: int,
        clock: Callable[[], float] = time.monotonic,
        long_epoch_s: float = LONG_EPOCH_S,
    ) -> None:
        self.log, self.first, self.epochs, self.clock, self.long_epoch_s = log, first, epochs, clock, long_epoch_s
        self.start = self.epoch_start = clock()
        self.share = 0  # tenths of the current epoch reported

    def _line(self, epoch: int, fraction: float, metrics: Mapping[str, float] | None = None) -> None:
        elapsed = self.clock() - self.start
        done = epoch - self.first + fraction  # in this process: a resumed run's earlier epochs took no time here
        left = time_left(elapsed, done, self.epochs - self.first + 1)
        self.log(progress_line(epoch, self.epochs, elapsed, left, metrics, fraction))

    def batch(self, epoch: int, done: int, batches: int) -> None:
        """After `done` of the epoch's `batches`: a line at each tenth reached, if the epoch is a long one."""
        share = done * SHARES // batches
        if share <= self.share or done == batches:
            return
        self.share = share
        so_far = self.clock() - self.epoch_start
        if so_far * batches / done >= self.long_epoch_s:
            self._line(epoch, share / SHARES)

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """After epoch `epoch`, with its metrics."""
        self._line(epoch, 1.0, metrics)
        self.epoch_start, self.share = self.clock(), 0
