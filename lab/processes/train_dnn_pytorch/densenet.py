"""A densely connected network for tabular binary classification, trained with PyTorch.

Data is moved to the device once and batched there. Each epoch is scored on val; the weights of the
best epoch (by `selection_metric`) are kept and evaluated once on test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from lib.evaluation import binary_metrics
from lib.params import Section
from lib.torch_data import DeviceName, batches, frame_to_tensors

SelectionMetric = Literal["loss", "accuracy", "roc_auc"]


class DenseNetParams(Section):
    """The `train_dnn_pytorch` section of params.yaml."""

    hidden_layers: list[Annotated[int, Field(ge=1)]] = Field(default=[32, 16], min_length=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    lr: float = Field(default=1e-3, gt=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=32, ge=1)
    epochs: int = Field(default=50, ge=1)
    device: DeviceName = "auto"
    selection_metric: SelectionMetric = "loss"


@dataclass(frozen=True)
class TrainResult:
    """The kept network, its per-epoch history, and its single evaluation on test."""

    network: nn.Sequential
    history: pd.DataFrame
    best_epoch: int
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    test_probability: np.ndarray


EpochCallback = Callable[[int, dict[str, float]], None]


def build_network(n_features: int, hidden_layers: list[int], dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout blocks ending in one logit. Plain `nn.Sequential`, so a saved
    network loads without this module."""
    layers: list[nn.Module] = []
    width = n_features
    for hidden in hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def train_epoch(
    network: nn.Module,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass over shuffled mini-batches; returns (loss, accuracy) averaged over samples."""
    network.train()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for xb, yb in batches(x, y, batch_size, generator):
        optimiser.zero_grad(set_to_none=True)
        logits = network(xb)
        loss = loss_fn(logits, yb)
        (loss / xb.shape[0]).backward()
        optimiser.step()
        total_loss += loss.detach()
        correct += ((logits.detach() >= 0).float() == yb).sum()
    n = x.shape[0]
    return float(total_loss) / n, float(correct) / n


@torch.no_grad()
def predict_probability(network: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Class-1 probability for every row of `x`, in eval mode."""
    network.eval()
    return torch.sigmoid(network(x)).squeeze(1).cpu().numpy().astype(np.float64)


def _score(metrics: dict[str, float], metric: SelectionMetric) -> float:
    value = metrics[f"val/{metric}"]
    return -value if metric == "loss" else value


def train(
    params: DenseNetParams,
    splits: dict[str, tuple[pd.DataFrame, np.ndarray]],
    device: torch.device,
    seed: int,
    on_epoch: EpochCallback | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train for `params.epochs`, keep the best epoch on val, evaluate it once on test.

    Args:
        params: the stage's hyperparameters.
        splits: `train`, `val` and `test` as (features, 0/1 labels).
        device: where tensors and the network live.
        seed: seeds the weight init, dropout and the shuffling generator.
        on_epoch: called after every epoch with (epoch, metrics), e.g. to log them.
        progress: show a progress bar; None shows it only on an interactive terminal.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: frame_to_tensors(features, labels, device) for name, (features, labels) in splits.items()}
    network = build_network(splits["train"][0].shape[1], params.hidden_layers, params.dropout).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=params.lr, weight_decay=params.weight_decay)

    rows: list[dict[str, float]] = []
    best_score, best_epoch, best_state = -np.inf, 0, copy.deepcopy(network.state_dict())
    val_x, _ = tensors["val"]
    val_y = splits["val"][1]
    bar = tqdm(
        range(1, params.epochs + 1), desc="train_dnn", unit="epoch", disable=None if progress is None else not progress
    )
    for epoch in bar:
        train_loss, train_accuracy = train_epoch(network, optimiser, *tensors["train"], params.batch_size, generator)
        val_metrics = binary_metrics(val_y, predict_probability(network, val_x), "val")
        metrics = {
            "train/loss": round(train_loss, 6),
            "train/accuracy": round(train_accuracy, 6),
            "val/loss": val_metrics["val/log_loss"],
            "val/accuracy": val_metrics["val/accuracy"],
            "val/roc_auc": val_metrics["val/roc_auc"],
        }
        rows.append({"epoch": epoch, **metrics})
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        score = _score(metrics, params.selection_metric)
        if epoch == 1 or score > best_score:  # epoch 1 always counts, even when its score is NaN
            best_score, best_epoch, best_state = score, epoch, copy.deepcopy(network.state_dict())
        bar.set_postfix({"val/loss": f"{metrics['val/loss']:.4f}", "val/acc": f"{metrics['val/accuracy']:.3f}"})

    network.load_state_dict(best_state)
    val_probability = predict_probability(network, val_x)
    test_probability = predict_probability(network, tensors["test"][0])
    return TrainResult(
        network=network.cpu().eval(),
        history=pd.DataFrame(rows),
        best_epoch=best_epoch,
        val_metrics=binary_metrics(val_y, val_probability, "val"),
        test_metrics=binary_metrics(splits["test"][1], test_probability, "test"),
        test_probability=test_probability,
    )


def stage_metrics(result: TrainResult) -> dict[str, float]:
    """The metrics file: the kept epoch, its val and test scores."""
    return {"best_epoch": result.best_epoch, **result.val_metrics, **result.test_metrics}
