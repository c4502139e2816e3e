"""The epoch loop of a network for any task: train, score val, keep the best epoch, test it once."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.datasets import BINARY, Schema, Splits
from lib.errors import ReprolabError
from lib.evaluation import GREATER_IS_BETTER, selection_metric, task_metrics
from lib.progress import EpochProgress, in_terminal
from lib.torch_data import features_to_tensor, sharded_batches
from lib.training.checkpoints import LOG, CheckpointStore, Log, restore_rng, rng_state, stderr_log
from lib.training.devices import adam, autocast_dtype, use_deterministic
from lib.training.distributed import SINGLE, World
from lib.training.objectives import BINARY_OBJECTIVE, Objective
from lib.training.params import TrainingParams

BuildNetwork = Callable[[int, int], nn.Module]  # (inputs, outputs) -> an untrained network ending in raw outputs
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    """The kept network (the best epoch on val, else the last), its per-epoch history, its scores.

    Metrics of a missing split are empty; on ranks other than 0 only `network` is meaningful."""

    network: nn.Module
    history: pd.DataFrame
    best_epoch: int
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    test_output: np.ndarray | None  # what the task's metrics score (`Objective.scored`)
    objective: Objective = BINARY_OBJECTIVE


def train_epoch(
    network: nn.Module,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    world: World = SINGLE,
    on_batch: Callable[[int, int], None] | None = None,
    objective: Objective = BINARY_OBJECTIVE,
) -> tuple[float, float]:
    """One pass over shuffled mini-batches (this process's share of each); (loss, accuracy) over all samples.

    `dtype` autocasts the forward pass (float16 needs a `scaler`); totals stay on the device: one host sync.
    """
    network.train()
    scaler = scaler or torch.amp.GradScaler(x.device.type, enabled=False)  # a disabled scaler passes through
    # A disabled torch.autocast still costs about 6% of a small batch's step: full precision skips it.
    autocast = contextlib.nullcontext() if dtype is None else torch.autocast(x.device.type, dtype=dtype)
    totals = torch.zeros(2, device=x.device)  # summed loss, correct predictions
    batches = -(-x.shape[0] // batch_size)
    for done, (xb, yb, count) in enumerate(sharded_batches(x, y, batch_size, generator, world.rank, world.size), 1):
        optimiser.zero_grad(set_to_none=True)
        with autocast:
            logits = network(xb)
        loss = objective.loss(logits, yb)
        # DDP averages gradients over the processes: times their count, it is the global batch's mean
        scaler.scale(loss / count * world.size).backward()
        scaler.step(optimiser)
        scaler.update()
        totals += torch.stack([loss.detach(), objective.correct(logits.detach(), yb).float()])
        if on_batch is not None:
            on_batch(done, batches)
    if world.size > 1:
        torch.distributed.all_reduce(totals)
    n = x.shape[0]
    return float(totals[0]) / n, float(totals[1]) / n


@torch.no_grad()
def predict(network: nn.Module, x: torch.Tensor, objective: Objective = BINARY_OBJECTIVE) -> np.ndarray:
    """What the task's metrics score for every row of `x` (`Objective.scored`), in eval mode."""
    network.eval()
    return objective.scored(network(x))


def fit(
    params: TrainingParams,
    build: BuildNetwork,
    splits: Splits,
    device: torch.device,
    seed: int,
    on_epoch: EpochCallback | None = None,
    progress: bool | None = None,
    *,
    progress_name: str | None = None,
    checkpoints: CheckpointStore | None = None,
    world: World = SINGLE,
    log: Log = LOG,
    schema: Schema = BINARY,
) -> TrainResult:
    """Train `build`'s network for `params.epochs`, keep the best epoch on val, evaluate it once on test.

    `progress` None is a bar in a terminal and progress lines on stderr elsewhere, True a bar, False neither;
    in a `world` of several processes rank 0 alone scores, calls `on_epoch`, saves and logs.
    """
    from tqdm.auto import tqdm

    if params.batch_size % world.size:
        raise ReprolabError(
            f"{params.section}.batch_size: {params.batch_size} does not split evenly over {world.size} processes "
            "(WORLD_SIZE); choose a multiple of the process count"
        )
    use_deterministic(params.deterministic)
    metric = selection_metric(schema.task, params.selection_metric, f"{params.section}.selection_metric", ("loss",))
    sign = 1 if GREATER_IS_BETTER[metric] else -1
    objective = Objective.for_labels(schema, splits["train"].labels)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = {name: features_to_tensor(split.features, device) for name, split in splits.items()}
    y = objective.targets(splits["train"].labels, device)  # val and test are scored from their labels on the host
    network = build(splits["train"].features.shape[1], objective.n_outputs).to(device)
    if world.rank:
        torch.manual_seed(seed + world.rank)  # each process draws its own dropout masks
    log = log if world.is_main else lambda _: None
    optimiser = adam(network.parameters(), device, params.lr, params.weight_decay)
    cosine = params.lr_schedule == "cosine"
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=params.epochs) if cosine else None
    dtype = autocast_dtype(params.mixed_precision, device, log)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    # what a checkpoint holds besides the random states; `best` is the kept epoch so far
    stateful = {"network": network, "optimiser": optimiser, "scheduler": scheduler, "scaler": scaler}
    epoch, history, best = 0, [], {"score": -np.inf, "epoch": 0, "state": {}, "val": {}}
    has_val = "val" in splits
    if not has_val:
        log("no val split: keeping the last epoch (selection on val is impossible) and logging no val metrics")
    saved = None if checkpoints is None else checkpoints.latest
    if saved is not None:
        for name, part in stateful.items():
            if part is not None and saved[name]:  # a disabled scaler's state is empty
                part.load_state_dict(saved[name])
        restore_rng(saved["rng"][world.rank], generator, device)
        epoch, history, best = saved["epoch"], json.loads(saved["history"]), saved["best"]
    cuda = [device.index] if device.type == "cuda" else None
    # what trains: under several processes, the network wrapped in DDP
    model = nn.parallel.DistributedDataParallel(network, device_ids=cuda) if world.size > 1 else network
    title = progress_name or params.section
    watched = in_terminal() if progress is None else progress
    epochs = range(epoch + 1, params.epochs + 1)
    bar = tqdm(
        epochs, initial=epoch, total=params.epochs, desc=title, unit="epoch", disable=not (world.is_main and watched)
    )
    lines = None  # progress lines go where the bar would, named as it is; `log` keeps the run's messages alone
    if world.is_main and progress is None and not watched:
        lines = EpochProgress(stderr_log(title), epoch + 1, params.epochs)
    for epoch in bar:
        on_batch = None if lines is None else partial(lines.batch, epoch)
        loss, accuracy = train_epoch(
            model, optimiser, x["train"], y, params.batch_size, generator, dtype=dtype, scaler=scaler, world=world,
            on_batch=on_batch, objective=objective,
        )  # fmt: skip
        if scheduler is not None:
            scheduler.step()
        metrics = {"train/loss": round(loss, 6)}
        if schema.is_classification:
            metrics["train/accuracy"] = round(accuracy, 6)
        if has_val and world.is_main:
            scores = task_metrics(schema.task, splits["val"].labels, predict(network, x["val"], objective), "val")
            metrics["val/loss"] = objective.loss_of_scored(scores, "val")
            shown = ("val/accuracy", "val/roc_auc") if schema.is_classification else ("val/rmse", "val/r2")
            metrics |= {key: scores[key] for key in shown}
            score = sign * (metrics | scores)[f"val/{metric}"]
            if epoch == 1 or score > best["score"]:  # epoch 1 always counts, even when its score is NaN
                best = {"score": score, "epoch": epoch, "state": copy.deepcopy(network.state_dict()), "val": scores}
        if world.is_main:
            history.append({"epoch": epoch, **metrics})
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            bar.set_postfix(metrics)
            if lines is not None:
                lines.epoch(epoch, metrics)
        if checkpoints is not None:
            rngs = [rng_state(generator, device)] * world.size  # every process's, for its own resume
            if world.size > 1:
                torch.distributed.all_gather_object(rngs, rngs[0])
            if world.is_main:
                parts = {name: None if part is None else part.state_dict() for name, part in stateful.items()}
                # one string, not a pickled object per value: the history grows every epoch, and
                # torch.save's cost per object made checkpoints of long runs slower than their epochs
                checkpoints.save({"epoch": epoch, **parts, "rng": rngs, "history": json.dumps(history), "best": best})
    if not world.is_main:  # ranks other than 0 return the trained network, nothing scored
        return TrainResult(network.cpu().eval(), pd.DataFrame(), 0, {}, {}, None, objective)
    if has_val:
        network.load_state_dict(best["state"])
    test_output = predict(network, x["test"], objective) if "test" in splits else None
    test_metrics = {} if test_output is None else task_metrics(schema.task, splits["test"].labels, test_output, "test")
    kept = best["epoch"] if has_val else epoch
    return TrainResult(
        network.cpu().eval(), pd.DataFrame(history), kept, best["val"], test_metrics, test_output, objective
    )


def stage_metrics(result: TrainResult) -> dict[str, float]:
    """The metrics file: the kept epoch, its val and test scores (those that exist)."""
    return {"best_epoch": result.best_epoch, **result.val_metrics, **result.test_metrics}
