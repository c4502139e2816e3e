"""The epoch loop for a binary classifier network: train, score val, keep the best epoch, test it once.

The network is whatever `build(n_features)` returns, ending in one logit. Data is moved to the device
once and batched there. Without a val split the last epoch is kept; without a test split there are no
test metrics. With a `CheckpointStore` training saves its whole state every epoch and resumes from the
newest matching checkpoint; with a `World` of several processes it trains data-parallel.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.datasets import Splits
from lib.evaluation import binary_metrics
from lib.torch_data import frame_to_tensors, sharded_batches
from lib.training.checkpoints import LOG, CheckpointStore, Log, restore_rng, rng_state
from lib.training.distributed import SINGLE, World
from lib.training.params import TrainingParams
from lib.training.precision import FULL, Precision, choose_precision

BuildNetwork = Callable[[int], nn.Module]  # the feature count -> an untrained network ending in one logit
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    """The kept network, its per-epoch history, and its single evaluation on test.

    Without a val split `val_metrics` is empty; without a test split `test_metrics` is empty and
    `test_probability` None. On ranks other than 0 only `network` is meaningful.
    """

    network: nn.Module
    history: pd.DataFrame
    best_epoch: int
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    test_probability: np.ndarray | None


def train_epoch(
    network: nn.Module,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    precision: Precision = FULL,
    world: World = SINGLE,
) -> tuple[float, float]:
    """One pass over shuffled mini-batches; returns (loss, accuracy) averaged over samples.

    With several processes each trains on its share of every global batch of `batch_size` rows, and
    the figures returned are over all of them. Totals stay on the device: one host sync per epoch.
    """
    network.train()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for xb, yb, count in sharded_batches(x, y, batch_size, generator, world.rank, world.size):
        optimiser.zero_grad(set_to_none=True)
        with precision.autocast():
            logits = network(xb)
        loss = loss_fn(logits.float(), yb)
        mean = loss / count
        if world.size > 1:  # DDP averages gradients over processes: undo it, so the mean is the global batch's
            mean = mean * world.size
        if precision.scaler is None:
            mean.backward()
            optimiser.step()
        else:
            precision.scaler.scale(mean).backward()
            precision.scaler.step(optimiser)
            precision.scaler.update()
        total_loss += loss.detach()
        correct += ((logits.detach() >= 0).float() == yb).sum()
    if world.size > 1:
        total_loss, correct = world.sum(torch.stack([total_loss, correct]))
    n = x.shape[0]
    return float(total_loss) / n, float(correct) / n


@torch.no_grad()
def predict_probability(network: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Class-1 probability for every row of `x`, in eval mode."""
    network.eval()
    return torch.sigmoid(network(x)).squeeze(1).cpu().numpy().astype(np.float64)


@dataclass
class _Training:
    """What a training run changes as it goes, and so what a checkpoint holds."""

    network: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    precision: Precision
    generator: torch.Generator
    device: torch.device
    world: World
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_score: float = -np.inf
    best_epoch: int = 0
    epoch: int = 0

    def keep_if_best(self, metrics: dict[str, float], selection_metric: str) -> None:
        """Remember this epoch's weights if its val score beats every earlier one."""
        value = metrics[f"val/{selection_metric}"]
        score = -value if selection_metric == "loss" else value
        if self.epoch == 1 or score > self.best_score:  # epoch 1 always counts, even when its score is NaN
            self.best_score, self.best_epoch = score, self.epoch
            self.best_state = copy.deepcopy(self.network.state_dict())

    def _stateful(self) -> dict[str, Any]:
        scaler = self.precision.scaler
        return {"network": self.network, "optimiser": self.optimiser, "scheduler": self.scheduler, "scaler": scaler}

    def snapshot(self) -> dict[str, Any]:
        """The checkpoint's content; every process takes part (each adds its random state)."""
        return {
            "epoch": self.epoch,
            **{name: None if part is None else part.state_dict() for name, part in self._stateful().items()},
            "rng": self.world.gather(rng_state(self.generator, self.device)),
            # one string, not a pickled object per value: the history grows every epoch, and torch.save's
            # cost per object made checkpoints of long runs slower than their epochs
            "history": json.dumps(self.history),
            "best": {"score": self.best_score, "epoch": self.best_epoch, "state": self.best_state},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint `snapshot` wrote, in the same world."""
        self.epoch = state["epoch"]
        for name, part in self._stateful().items():
            if part is not None and state[name]:
                part.load_state_dict(state[name])
        restore_rng(state["rng"][self.world.rank], self.generator, self.device)
        self.history = json.loads(state["history"])
        best = state["best"]
        self.best_score, self.best_epoch = best["score"], best["epoch"]
        self.best_state = {k: v.to(self.device) for k, v in best["state"].items()}


def fit(
    params: TrainingParams,
    build: BuildNetwork,
    splits: Splits,
    device: torch.device,
    seed: int,
    on_epoch: EpochCallback | None = None,
    progress: bool | None = None,
    *,
    checkpoints: CheckpointStore | None = None,
    world: World = SINGLE,
    log: Log = LOG,
) -> TrainResult:
    """Train `build`'s network for `params.epochs`, keep the best epoch on val, evaluate it once on test.

    Args:
        params: how to train (optimiser, schedule, batch size, epochs, selection metric, precision).
        build: makes the untrained network from the feature count (called once, after seeding).
        splits: `train`, and `val` and `test` when they exist.
        device: where tensors and the network live (this process's own device).
        seed: seeds the weight init, dropout and the shuffling generator.
        on_epoch: called after every epoch with (epoch, metrics), e.g. to log them (on rank 0 only).
        progress: show a progress bar; None shows it only on an interactive terminal.
        checkpoints: where to save a checkpoint after every epoch and resume from; None: neither.
        world: the processes training together; rank 0 alone scores, calls `on_epoch` and saves.
        log: where the one-line notes go (no val split, mixed precision ignored).
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: frame_to_tensors(*split, device) for name, split in splits.items()}
    network = build(splits["train"].features.shape[1]).to(device)
    if world.rank:
        torch.manual_seed(seed + world.rank)  # each process draws its own dropout masks
    optimiser = torch.optim.Adam(network.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    cosine = params.lr_schedule == "cosine"
    run = _Training(
        network=network,
        optimiser=optimiser,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=params.epochs) if cosine else None,
        precision=choose_precision(params.mixed_precision, device, log if world.is_main else lambda _: None),
        generator=generator,
        device=device,
        world=world,
        best_state=copy.deepcopy(network.state_dict()),
        history=[],
    )
    has_val = "val" in splits
    if not has_val and world.is_main:
        log("no val split: keeping the last epoch (selection on val is impossible) and logging no val metrics")
    saved = None if checkpoints is None else checkpoints.latest()
    if saved is not None:
        run.restore(saved)
    model = world.wrap(network, device)
    bar = tqdm(
        range(run.epoch + 1, params.epochs + 1),
        initial=run.epoch,
        total=params.epochs,
        desc=params.section,
        unit="epoch",
        disable=(None if progress is None else not progress) if world.is_main else True,
    )
    for epoch in bar:
        train_loss, train_accuracy = train_epoch(
            model, optimiser, *tensors["train"], params.batch_size, generator, precision=run.precision, world=world
        )
        if run.scheduler is not None:
            run.scheduler.step()
        run.epoch = epoch
        if world.is_main:
            metrics = {"train/loss": round(train_loss, 6), "train/accuracy": round(train_accuracy, 6)}
            if has_val:
                scores = binary_metrics(splits["val"].labels, predict_probability(network, tensors["val"][0]), "val")
                scores["val/loss"] = scores["val/log_loss"]
                metrics |= {key: scores[key] for key in ("val/loss", "val/accuracy", "val/roc_auc")}
                run.keep_if_best(metrics, params.selection_metric)
            run.history.append({"epoch": epoch, **metrics})
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            split = "val" if has_val else "train"
            loss, accuracy = metrics[f"{split}/loss"], metrics[f"{split}/accuracy"]
            bar.set_postfix({f"{split}/loss": f"{loss:.4f}", f"{split}/acc": f"{accuracy:.3f}"})
        if checkpoints is not None:
            snapshot = run.snapshot()
            if world.is_main:
                checkpoints.save(snapshot)
    if not world.is_main:  # ranks other than 0 return the trained network, nothing scored
        return TrainResult(network.cpu().eval(), pd.DataFrame(), 0, {}, {}, None)
    # the kept epoch (the best on val, else the last), scored once on val and test
    val_metrics, test_metrics, test_probability = {}, {}, None
    if has_val:
        network.load_state_dict(run.best_state)
        val_metrics = binary_metrics(splits["val"].labels, predict_probability(network, tensors["val"][0]), "val")
    if "test" in splits:
        test_probability = predict_probability(network, tensors["test"][0])
        test_metrics = binary_metrics(splits["test"].labels, test_probability, "test")
    best_epoch = run.best_epoch if has_val else run.epoch
    history = pd.DataFrame(run.history)
    return TrainResult(network.cpu().eval(), history, best_epoch, val_metrics, test_metrics, test_probability)


def stage_metrics(result: TrainResult) -> dict[str, float]:
    """The metrics file: the kept epoch, its val and test scores (those that exist)."""
    return {"best_epoch": result.best_epoch, **result.val_metrics, **result.test_metrics}
