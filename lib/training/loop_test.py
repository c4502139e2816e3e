"""loop.py: per-sample epoch averages, best-epoch keeping, determinism, resuming, missing splits, precision.

The network is a small MLP built here: `fit` trains whatever network a build function returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lib.datasets import Splits
from lib.errors import ReprolabError
from lib.evaluation import METRICS
from lib.training.checkpoints import CheckpointStore
from lib.training.distributed import World
from lib.training.loop import BuildNetwork, TrainResult, fit, predict, stage_metrics, train_epoch
from lib.training.params import TrainingParams

pytestmark = pytest.mark.unittest

HISTORY_COLUMNS = ["epoch", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/roc_auc"]
CPU = torch.device("cpu")

# A short, noisy run on the fixture: its best val/loss is not the last epoch and val/accuracy ties.
NOISY = {"hidden_layers": [16], "lr": 0.05, "batch_size": 16, "epochs": 8, "device": "cpu"}
# A small, quiet run for checks that need only a few epochs.
SHORT = {"hidden_layers": [8], "lr": 0.01, "batch_size": 32, "epochs": 3, "device": "cpu"}


def mlp(hidden_layers: list[int], dropout: float = 0.1) -> BuildNetwork:
    """Linear -> ReLU -> Dropout blocks ending in one logit, as a build function."""

    def build(n_features: int, n_outputs: int) -> nn.Module:
        layers: list[nn.Module] = []
        width = n_features
        for hidden in hidden_layers:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        return nn.Sequential(*layers, nn.Linear(width, n_outputs))

    return build


def setup(values: dict[str, Any]) -> tuple[TrainingParams, BuildNetwork]:
    """Training params and the network's build function from one mapping (the network's keys split off)."""
    shape = {key: values[key] for key in ("hidden_layers", "dropout") if key in values}
    return TrainingParams(**{k: v for k, v in values.items() if k not in shape}), mlp(**shape)


def train(
    values: dict[str, Any], splits: Splits, device: torch.device, seed: int, *args: Any, **kwargs: Any
) -> TrainResult:
    """`fit` with params and network from `values`, as the stage calls it."""
    return fit(*setup(values), splits, device, seed, *args, **kwargs)


def _train(splits: Splits, seed: int = 0, on: torch.device = CPU, **values: Any) -> TrainResult:
    return train({**SHORT, **values}, splits, on, seed, progress=False)


# --- predict --------------------------------------------------------------------------


def test_predict_is_a_sigmoid_in_eval_mode() -> None:
    torch.manual_seed(0)
    network = mlp([8], dropout=0.5)(6, 1)
    x = torch.randn(20, 6)

    probability = predict(network, x)

    assert not network.training
    assert probability.dtype == np.float64
    assert probability.shape == (20,)
    with torch.no_grad():
        expected = torch.sigmoid(network.eval()(x)).squeeze(1).numpy()
    np.testing.assert_allclose(probability, expected, rtol=1e-6)
    np.testing.assert_array_equal(predict(network, x), probability)  # dropout is off


# --- train_epoch --------------------------------------------------------------------------------


def test_train_epoch_averages_loss_and_accuracy_over_samples_not_batches() -> None:
    torch.manual_seed(0)
    network = mlp([4], dropout=0.0)(3, 1)
    x = torch.randn(10, 3)
    y = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0], [0.0], [1.0], [0.0], [1.0], [1.0]])
    before = [p.detach().clone() for p in network.parameters()]
    frozen = torch.optim.SGD(network.parameters(), lr=0.0)

    loss, accuracy = train_epoch(network, frozen, x, y, batch_size=4, generator=torch.Generator().manual_seed(3))

    with torch.no_grad():
        logits = network(x)
        sample_loss = nn.functional.binary_cross_entropy_with_logits(logits, y).item()
        sample_accuracy = int(((logits >= 0).float() == y).sum()) / 10
        # the mean of per-batch means (batches of 4, 4, 2) differs, so the check below can tell them apart
        order = torch.randperm(10, generator=torch.Generator().manual_seed(3))
        batch_losses = [
            nn.functional.binary_cross_entropy_with_logits(logits[order[i : i + 4]], y[order[i : i + 4]]).item()
            for i in range(0, 10, 4)
        ]
    assert all(torch.equal(a, b) for a, b in zip(before, network.parameters(), strict=True))
    assert abs(np.mean(batch_losses) - sample_loss) > 1e-3
    assert loss == pytest.approx(sample_loss, rel=1e-6)
    assert accuracy == sample_accuracy
    assert network.training


def test_train_epoch_updates_the_weights() -> None:
    torch.manual_seed(0)
    network = mlp([4], dropout=0.0)(3, 1)
    x, y = torch.randn(10, 3), torch.ones(10, 1)
    before = [p.detach().clone() for p in network.parameters()]

    train_epoch(network, torch.optim.SGD(network.parameters(), lr=0.1), x, y, 4, torch.Generator().manual_seed(0))

    assert not all(torch.equal(a, b) for a, b in zip(before, network.parameters(), strict=True))


def test_train_epoch_casts_every_batch_only_when_given_a_dtype() -> None:
    torch.manual_seed(0)
    network = mlp([4], dropout=0.0)(3, 1)
    x, y = torch.randn(10, 3), torch.ones(10, 1)
    seen: list[torch.dtype] = []
    network[0].register_forward_hook(lambda _, __, output: seen.append(output.dtype))
    optimiser = torch.optim.SGD(network.parameters(), lr=0.1)

    loss, _ = train_epoch(network, optimiser, x, y, 4, torch.Generator().manual_seed(0), dtype=torch.bfloat16)
    cast, seen[:] = list(seen), []
    train_epoch(network, optimiser, x, y, 4, torch.Generator().manual_seed(0))

    assert cast == [torch.bfloat16] * 3  # batches of 4, 4 and 2, each under the one autocast
    assert seen == [torch.float32] * 3
    assert np.isfinite(loss)
    assert all(parameter.dtype == torch.float32 for parameter in network.parameters())


# --- train ------------------------------------------------------------------------------------


def test_train_records_one_history_row_per_epoch(splits: Splits) -> None:
    result = _train(splits)

    assert list(result.history.columns) == HISTORY_COLUMNS
    assert result.history["epoch"].tolist() == [1, 2, 3]
    rates = result.history[["train/accuracy", "val/accuracy", "val/roc_auc"]].to_numpy()
    assert ((rates >= 0) & (rates <= 1)).all()
    assert (result.history[["train/loss", "val/loss"]].to_numpy() > 0).all()
    assert set(result.val_metrics) == {f"val/{name}" for name in METRICS}
    assert set(result.test_metrics) == {f"test/{name}" for name in METRICS}
    assert result.test_output.shape == (len(splits["test"].labels),)
    assert not result.network.training
    assert all(p.device.type == "cpu" for p in result.network.parameters())


def test_train_keeps_the_epoch_with_the_lowest_val_loss(splits: Splits) -> None:
    result = _train(splits, **NOISY, selection_metric="loss")

    history = result.history.set_index("epoch")
    assert result.best_epoch == history["val/loss"].idxmin()
    assert result.best_epoch < NOISY["epochs"], "the check below needs a best epoch before the last"
    # the returned weights are the best epoch's, not the last epoch's
    assert result.val_metrics["val/log_loss"] == history.loc[result.best_epoch, "val/loss"]
    assert result.val_metrics["val/accuracy"] == history.loc[result.best_epoch, "val/accuracy"]
    assert result.val_metrics["val/log_loss"] != history.loc[NOISY["epochs"], "val/loss"]


def test_train_by_accuracy_keeps_the_first_of_tied_best_epochs(splits: Splits) -> None:
    result = _train(splits, **NOISY, selection_metric="accuracy")

    accuracy = result.history.set_index("epoch")["val/accuracy"]
    assert (accuracy == accuracy.max()).sum() > 1, "the check needs a tie for the best val/accuracy"
    assert result.best_epoch == accuracy.idxmax()
    assert result.val_metrics["val/log_loss"] == result.history.set_index("epoch").loc[result.best_epoch, "val/loss"]


def test_train_calls_on_epoch_once_per_epoch_with_its_metrics(splits: Splits) -> None:
    calls: list[tuple[int, dict[str, float]]] = []

    result = train(SHORT, splits, CPU, 0, on_epoch=lambda e, m: calls.append((e, m)), progress=False)

    assert [epoch for epoch, _ in calls] == [1, 2, 3]
    assert [{"epoch": epoch, **metrics} for epoch, metrics in calls] == result.history.to_dict("records")


def test_train_is_bit_identical_for_a_seed_and_differs_across_seeds(splits: Splits) -> None:
    first = _train(splits, seed=7, dropout=0.2)
    again = _train(splits, seed=7, dropout=0.2)
    other = _train(splits, seed=8, dropout=0.2)

    pd.testing.assert_frame_equal(first.history, again.history, check_exact=True)
    state, same, different = (r.network.state_dict() for r in (first, again, other))
    assert list(state) == list(same) == list(different)
    assert all(torch.equal(state[key], same[key]) for key in state)
    assert not all(torch.equal(state[key], different[key]) for key in state)
    np.testing.assert_array_equal(first.test_output, again.test_output)
    assert not first.history.equals(other.history)


def test_train_learns_a_learnable_problem(splits: Splits) -> None:
    result = _train(splits, hidden_layers=[16], epochs=20)

    losses = result.history["train/loss"]
    assert losses.iloc[-3:].mean() < 0.75 * losses.iloc[:3].mean()
    assert result.history["val/loss"].iloc[-1] < result.history["val/loss"].iloc[0]
    assert result.val_metrics["val/roc_auc"] > 0.85


def test_train_without_progress_prints_nothing(splits: Splits, capsys: pytest.CaptureFixture[str]) -> None:
    _train(splits)

    assert capsys.readouterr() == ("", "")


def test_train_with_progress_shows_a_bar_on_stderr(splits: Splits, capsys: pytest.CaptureFixture[str]) -> None:
    train(SHORT, splits, CPU, 0, progress=True)

    assert "training" in capsys.readouterr().err  # the bar is named after the params section


def test_train_outside_a_terminal_writes_a_line_per_epoch(splits: Splits, capsys: pytest.CaptureFixture[str]) -> None:
    messages: list[str] = []

    result = train(SHORT, splits, CPU, 0, log=messages.append)  # progress None; pytest's stderr is no terminal

    lines = capsys.readouterr().err.splitlines()  # where the bar would be, and no bar
    assert messages == []  # the log keeps the run's messages alone
    assert len(lines) == SHORT["epochs"]
    row = result.history.iloc[-1]
    assert lines[-1].startswith(f"training: epoch 3/3: train/loss {row['train/loss']:.4f}, train/accuracy ")
    assert f"val/roc_auc {row['val/roc_auc']:.4f}; elapsed 0:00:" in lines[-1]
    assert lines[-1].endswith("left 0:00:00")


def test_stage_metrics_hold_the_best_epoch_and_its_scores(splits: Splits) -> None:
    result = _train(splits)

    assert stage_metrics(result) == {"best_epoch": result.best_epoch, **result.val_metrics, **result.test_metrics}


@pytest.mark.cuda
def test_train_on_cuda_gives_the_same_shapes_and_keys(splits: Splits) -> None:
    on_cpu = _train(splits)

    on_cuda = _train(splits, on=torch.device("cuda"), device="cuda")

    assert list(on_cuda.history.columns) == HISTORY_COLUMNS
    assert len(on_cuda.history) == len(on_cpu.history)
    assert set(on_cuda.val_metrics) == set(on_cpu.val_metrics)
    assert set(on_cuda.test_metrics) == set(on_cpu.test_metrics)
    assert on_cuda.test_output.shape == on_cpu.test_output.shape
    cpu_state, cuda_state = on_cpu.network.state_dict(), on_cuda.network.state_dict()
    assert {k: v.shape for k, v in cuda_state.items()} == {k: v.shape for k, v in cpu_state.items()}
    assert all(v.device.type == "cpu" for v in cuda_state.values())


# --- checkpoints and resuming ---------------------------------------------------------------------

# Dropout and a cosine schedule: a resume that missed a random state or the scheduler would differ.
RESUMABLE = {**SHORT, "epochs": 5, "dropout": 0.3, "lr_schedule": "cosine", "batch_size": 16}


class _Killed(Exception):
    pass


def _kill_at(epoch: int) -> Callable[[int, dict[str, float]], None]:
    def on_epoch(current: int, _: dict[str, float]) -> None:
        if current == epoch:
            raise _Killed

    return on_epoch


def _same(a: TrainResult, b: TrainResult) -> bool:
    state_a, state_b = a.network.state_dict(), b.network.state_dict()
    return (
        a.history.equals(b.history)
        and a.best_epoch == b.best_epoch
        and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
        and a.test_metrics == b.test_metrics
    )


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(splits: Splits, tmp_path: Path) -> None:
    params = RESUMABLE
    uninterrupted = train(params, splits, CPU, 3, progress=False)
    lines: list[str] = []
    with pytest.raises(_Killed):  # dies in epoch 4, after epoch 3's checkpoint
        train(params, splits, CPU, 3, _kill_at(4), progress=False, checkpoints=CheckpointStore(tmp_path, "k"))
    saved = CheckpointStore(tmp_path, "k").latest
    assert saved is not None and saved["epoch"] == 3
    assert saved["scheduler"]["last_epoch"] == 3 and saved["optimiser"]["state"]
    torch.manual_seed(999)  # whatever the process did before, the checkpoint's random state wins

    calls: list[int] = []
    resumed = train(
        params,
        splits,
        CPU,
        3,
        on_epoch=lambda epoch, _: calls.append(epoch),
        progress=False,
        checkpoints=CheckpointStore(tmp_path, "k", log=lines.append),
        log=lines.append,
    )

    assert calls == [4, 5]
    assert lines == [f"resuming from checkpoint {tmp_path / 'epoch-0003.pt'} (epoch 3 done)"]
    assert _same(resumed, uninterrupted)
    np.testing.assert_array_equal(resumed.test_output, uninterrupted.test_output)


@pytest.mark.cuda
@pytest.mark.parametrize("mixed_precision", [False, True])
def test_on_cuda_with_deterministic_algorithms_a_resumed_run_ends_bit_identical(
    splits: Splits, tmp_path: Path, mixed_precision: bool
) -> None:
    cuda = torch.device("cuda")
    params = {**RESUMABLE, "device": "cuda", "deterministic": True, "mixed_precision": mixed_precision}
    uninterrupted = train(params, splits, cuda, 3, progress=False)
    with pytest.raises(_Killed):
        train(params, splits, cuda, 3, _kill_at(4), progress=False, checkpoints=CheckpointStore(tmp_path, "k"))

    resumed = train(params, splits, cuda, 3, progress=False, checkpoints=CheckpointStore(tmp_path, "k"))

    assert _same(resumed, uninterrupted)


def test_a_checkpoint_of_another_fingerprint_is_ignored_and_training_starts_from_scratch(
    splits: Splits, tmp_path: Path
) -> None:
    other = {**RESUMABLE, "lr": 0.05}
    with pytest.raises(_Killed):
        train(other, splits, CPU, 3, _kill_at(3), progress=False, checkpoints=CheckpointStore(tmp_path, "other"))
    params = RESUMABLE
    lines: list[str] = []
    calls: list[int] = []

    result = train(
        params,
        splits,
        CPU,
        3,
        lambda epoch, _: calls.append(epoch),
        progress=False,
        checkpoints=CheckpointStore(tmp_path, "this", log=lines.append),
    )

    assert calls == [1, 2, 3, 4, 5]
    assert len(lines) == 1 and "not resumed, starting from scratch" in lines[0]
    assert _same(result, train(params, splits, CPU, 3, progress=False))
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0005.pt"]


def test_the_cosine_schedule_changes_training_and_constant_keeps_it(splits: Splits) -> None:
    constant = _train(splits, lr_schedule="constant")
    cosine = _train(splits, lr_schedule="cosine")

    assert _same(constant, _train(splits))
    assert constant.history["epoch"].tolist() == cosine.history["epoch"].tolist()
    assert constant.history.loc[0, "train/loss"] == cosine.history.loc[0, "train/loss"]  # same lr in epoch 1
    assert not constant.history.equals(cosine.history)


# --- missing splits -------------------------------------------------------------------------------


def test_without_val_the_last_epoch_is_kept_and_no_val_metric_is_logged(splits: Splits) -> None:
    lines: list[str] = []
    calls: list[dict[str, float]] = []
    no_val = {name: split for name, split in splits.items() if name != "val"}

    result = train(SHORT, no_val, CPU, 0, lambda _, m: calls.append(m), False, log=lines.append)

    assert lines == ["no val split: keeping the last epoch (selection on val is impossible) and logging no val metrics"]
    assert list(result.history.columns) == ["epoch", "train/loss", "train/accuracy"]
    assert all(set(metrics) == {"train/loss", "train/accuracy"} for metrics in calls)
    assert (result.best_epoch, result.val_metrics) == (SHORT["epochs"], {})
    assert set(result.test_metrics) == {f"test/{name}" for name in METRICS}
    # scoring val never changes training: the train columns are those of a run with val
    with_val = _train(splits)
    assert with_val.history[["train/loss", "train/accuracy"]].equals(result.history[["train/loss", "train/accuracy"]])
    assert stage_metrics(result) == {"best_epoch": SHORT["epochs"], **result.test_metrics}


def test_without_test_there_are_no_test_metrics_or_probabilities(splits: Splits) -> None:
    no_test = {name: split for name, split in splits.items() if name != "test"}

    result = _train(no_test)

    assert (result.test_metrics, result.test_output) == ({}, None)
    assert set(result.val_metrics) == {f"val/{name}" for name in METRICS}
    assert stage_metrics(result) == {"best_epoch": result.best_epoch, **result.val_metrics}


def test_with_train_alone_training_still_ends_with_a_network(splits: Splits) -> None:
    result = train(SHORT, {"train": splits["train"]}, CPU, 0, progress=False, log=lambda _: None)

    assert (result.best_epoch, result.val_metrics, result.test_metrics) == (SHORT["epochs"], {}, {})
    assert len(result.history) == SHORT["epochs"]


# --- precision and processes ----------------------------------------------------------------------


def test_mixed_precision_on_cpu_is_ignored_with_one_log_line(splits: Splits) -> None:
    lines: list[str] = []

    mixed = train({**SHORT, "mixed_precision": True}, splits, CPU, 0, progress=False, log=lines.append)

    assert lines == ["mixed_precision ignored on cpu: autocast is used on CUDA only; training in float32"]
    assert _same(mixed, _train(splits))


def test_the_global_batch_must_split_evenly_over_the_processes(splits: Splits) -> None:
    with pytest.raises(ReprolabError, match=r"^training.batch_size: 30 does not split evenly over 4 processes"):
        train({**SHORT, "batch_size": 30}, splits, CPU, 0, world=World(size=4))


def test_deterministic_algorithms_train_the_same_bytes_on_cpu_and_are_switched_off_after(splits: Splits) -> None:
    deterministic = train({**SHORT, "deterministic": True}, splits, CPU, 0, progress=False)
    assert torch.are_deterministic_algorithms_enabled()

    plain = _train(splits)

    assert not torch.are_deterministic_algorithms_enabled()
    assert _same(deterministic, plain)  # on CPU the switch changes nothing: same bytes either way


def test_a_single_process_never_starts_torch_distributed(splits: Splits) -> None:
    _train(splits)

    assert not torch.distributed.is_initialized()


@pytest.mark.cuda
def test_mixed_precision_on_cuda_trains_and_checkpoints_its_scaler(splits: Splits, tmp_path: Path) -> None:
    cuda = torch.device("cuda")
    params = {**SHORT, "device": "cuda", "mixed_precision": True, "hidden_layers": [16], "epochs": 10}

    result = train(params, splits, cuda, 0, progress=False, checkpoints=CheckpointStore(tmp_path, "k"))

    assert np.isfinite(result.history[["train/loss", "val/loss"]].to_numpy()).all()
    assert result.history["train/loss"].iloc[-1] < result.history["train/loss"].iloc[0]
    saved = CheckpointStore(tmp_path, "k").latest
    assert saved is not None and "cuda" in saved["rng"][0]
    if not torch.cuda.is_bf16_supported(including_emulation=False):  # float16: loss scaling, its state resumed
        assert saved["scaler"] and "scale" in saved["scaler"]
