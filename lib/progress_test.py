"""progress.py: the line format, the time-left arithmetic, when lines are written."""

from __future__ import annotations

import io

import pytest

from lib.progress import EpochProgress, duration, in_terminal, progress_line, time_left

pytestmark = pytest.mark.unittest


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00:00"), (59.6, "0:01:00"), (3725.2, "1:02:05"), (90061, "25:01:01")]
)
def test_duration_reads_as_hours_minutes_seconds(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_time_left_is_the_pace_so_far_times_what_remains() -> None:
    assert time_left(elapsed=30, done=3, total=20) == 170
    assert time_left(elapsed=5, done=0.5, total=2) == 15
    assert time_left(elapsed=0, done=0, total=20) is None


def test_an_epoch_line_holds_the_epoch_metrics_elapsed_and_time_left() -> None:
    line = progress_line(3, 20, 12.4, 68, {"train/loss": 0.41234, "val/roc_auc": 0.97})

    assert line == "epoch 3/20: train/loss 0.4123, val/roc_auc 0.9700; elapsed 0:00:12, left 0:01:08"


def test_a_line_within_an_epoch_gives_its_share_and_no_metrics() -> None:
    assert progress_line(3, 20, 12, None, share=0.4) == "epoch 3/20 40%: elapsed 0:00:12, left ?"


def test_one_line_per_epoch_with_the_time_left_from_the_mean_pace() -> None:
    clock, lines = Clock(), []
    progress = EpochProgress(lines.append, 1, 4, clock)
    for epoch in (1, 2):
        for done in range(1, 11):
            clock.now += 1  # 10 s an epoch: a short one, no lines within it
            progress.batch(epoch, done, 10)
        progress.epoch(epoch, {"train/loss": 0.5})

    assert lines == [
        "epoch 1/4: train/loss 0.5000; elapsed 0:00:10, left 0:00:30",
        "epoch 2/4: train/loss 0.5000; elapsed 0:00:20, left 0:00:20",
    ]


def test_a_long_epoch_writes_a_line_at_each_tenth() -> None:
    clock, lines = Clock(), []
    progress = EpochProgress(lines.append, 1, 2, clock, long_epoch_s=60)
    for done in range(1, 101):
        clock.now += 1  # 100 s for the epoch's 100 batches
        progress.batch(1, done, 100)
    progress.epoch(1, {"train/loss": 0.5})

    assert len(lines) == 10
    assert lines[0] == "epoch 1/2 10%: elapsed 0:00:10, left 0:03:10"
    assert lines[8].startswith("epoch 1/2 90%: elapsed 0:01:30")
    assert lines[9] == "epoch 1/2: train/loss 0.5000; elapsed 0:01:40, left 0:01:40"


def test_a_resumed_run_counts_its_pace_from_the_epochs_run_now() -> None:
    clock, lines = Clock(), []
    progress = EpochProgress(lines.append, 6, 10, clock)  # epochs 1-5 ran before the kill
    clock.now += 20
    progress.epoch(6, {})

    assert lines == ["epoch 6/10: elapsed 0:00:20, left 0:01:20"]


def test_a_terminal_in_ci_is_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert in_terminal(Terminal())
    assert not in_terminal(io.StringIO())
    monkeypatch.setenv("CI", "true")  # act gives steps a terminal; their output is a log all the same
    assert not in_terminal(Terminal())
