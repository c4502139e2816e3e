"""An Optuna search over the dense network's hyperparameters, each trial a nested MLflow run.

The `tune_dnn_pytorch` section of params.yaml names the metric to optimise on val, the search space
(each key a `train_dnn_pytorch` key) and the pruning. A trial trains `densenet.train` with the
`train_dnn_pytorch` section updated by the trial's values; its per-epoch val metric feeds a
MedianPruner. The sampler is TPE, seeded from the top-level `seed` and the trial number, so a study
run again with the same params, data and storage proposes the same trials, and a resumed study
continues where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictInt, Tag, ValidationError

from lab.processes.train_dnn_pytorch.params import NetworkParams as DenseNetParams
from lib.errors import ReprolabError
from lib.params import Section

if TYPE_CHECKING:
    import numpy as np
    import optuna
    import pandas as pd
    import torch

SECTION = "tune_dnn_pytorch"
TRAIN_SECTION = "train_dnn_pytorch"
# The metric optimised (the kept epoch's, from densenet.train's val_metrics) and the name of the same
# metric in the per-epoch figures the pruner sees.
TuneMetric = Literal["val/log_loss", "val/accuracy", "val/roc_auc"]
EPOCH_METRIC = {"val/log_loss": "val/loss", "val/accuracy": "val/accuracy", "val/roc_auc": "val/roc_auc"}
USER_ATTR_SETTINGS = "settings"
USER_ATTR_RUN_ID = "mlflow_run_id"


class FloatRange(Section):
    """A float drawn from [low, high], uniformly or (log: true) log-uniformly."""

    low: float
    high: float
    log: bool = False


class IntRange(Section):
    """An integer drawn from [low, high] in steps of `step`."""

    low: StrictInt
    high: StrictInt
    step: int = Field(default=1, ge=1)
    log: bool = False


class Choice(Section):
    """One of `choices` (numbers, strings, booleans or lists such as layer widths)."""

    choices: list[Any] = Field(min_length=1)


def _space_kind(value: Any) -> str:
    """The tag of a dimension: from its shape in params.yaml, or from the model when serialising one."""
    if isinstance(value, Choice | IntRange | FloatRange):
        return {Choice: "choices", IntRange: "int", FloatRange: "float"}[type(value)]
    if isinstance(value, Mapping):
        if "choices" in value:
            return "choices"
        ints = [value.get(k) for k in ("low", "high")]
        return "int" if all(isinstance(v, int) and not isinstance(v, bool) for v in ints) else "float"
    return "float"


Dimension = Annotated[
    Annotated[FloatRange, Tag("float")] | Annotated[IntRange, Tag("int")] | Annotated[Choice, Tag("choices")],
    Discriminator(_space_kind),
]


class PruningParams(Section):
    """Median pruning: a trial stops when its epoch's val metric is worse than the median of earlier trials."""

    startup_trials: int = Field(default=5, ge=0)
    warmup_epochs: int = Field(default=5, ge=0)


class TuneParams(Section):
    """The `tune_dnn_pytorch` section of params.yaml."""

    n_trials: int = Field(default=20, ge=1)
    metric: TuneMetric = "val/log_loss"
    study: str = Field(default=TRAIN_SECTION, pattern=r"^[A-Za-z0-9_.-]+$")
    random_trials: int = Field(default=5, ge=1)  # TPE samples at random until this many trials exist
    pruning: PruningParams | None = Field(default_factory=PruningParams)
    search_space: dict[str, Dimension] = Field(min_length=1)


class TuneError(ReprolabError):
    """The search cannot run as configured."""


def direction(metric: TuneMetric) -> Literal["minimize", "maximize"]:
    """Loss is minimised, every other metric maximised."""
    return "minimize" if metric == "val/log_loss" else "maximize"


def trial_params(base: Mapping[str, Any], values: Mapping[str, Any]) -> DenseNetParams:
    """The `train_dnn_pytorch` section as written in params.yaml (`base`) with a trial's `values` set."""
    return DenseNetParams.model_validate({**base, **values})


def _endpoints(dimension: FloatRange | IntRange | Choice) -> list[Any]:
    return list(dimension.choices) if isinstance(dimension, Choice) else [dimension.low, dimension.high]


def check_space(space: Mapping[str, FloatRange | IntRange | Choice], base: Mapping[str, Any]) -> None:
    """Fail before any training when a key is not a network key or a range end or choice is invalid for it."""
    fields = DenseNetParams.model_fields
    for key, dimension in space.items():
        where = f"{SECTION}.search_space.{key}"
        if key not in fields:
            raise TuneError(f"{where}: not a {TRAIN_SECTION} key (those are: {', '.join(fields)})")
        if not isinstance(dimension, Choice):
            if dimension.low > dimension.high:
                raise TuneError(f"{where}: low {dimension.low} is above high {dimension.high}")
            if dimension.log and dimension.low <= 0:
                raise TuneError(f"{where}: a log range needs low > 0, got {dimension.low}")
        for value in _endpoints(dimension):
            try:
                trial_params(base, {key: value})
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise TuneError(f"{where}: {value!r} is not a valid {TRAIN_SECTION}.{key} ({reason})") from None


def _choice_label(value: Any) -> Any:
    """Optuna's categorical choices are scalars: a list (layer widths) is offered as its JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def suggest(trial: optuna.Trial, space: Mapping[str, FloatRange | IntRange | Choice]) -> dict[str, Any]:
    """Draw one value per search-space key from `trial`, lists decoded back from their JSON text."""
    values: dict[str, Any] = {}
    for key, dimension in space.items():
        if isinstance(dimension, Choice):
            labels = [_choice_label(choice) for choice in dimension.choices]
            picked = trial.suggest_categorical(key, labels)
            values[key] = dimension.choices[labels.index(picked)]
        elif isinstance(dimension, IntRange):
            values[key] = trial.suggest_int(key, dimension.low, dimension.high, step=dimension.step, log=dimension.log)
        else:
            values[key] = trial.suggest_float(key, dimension.low, dimension.high, log=dimension.log)
    return values


def decode_params(space: Mapping[str, FloatRange | IntRange | Choice], stored: Mapping[str, Any]) -> dict[str, Any]:
    """A finished trial's params as `suggest` returned them (JSON-labelled choices decoded)."""
    decoded = {}
    for key, value in stored.items():
        dimension = space.get(key)
        if isinstance(dimension, Choice):
            labels = [_choice_label(choice) for choice in dimension.choices]
            decoded[key] = dimension.choices[labels.index(value)] if value in labels else value
        else:
            decoded[key] = value
    return decoded


def settings_digest(config: TuneParams, base: Mapping[str, Any], seed: int, data_digest: str) -> str:
    """A digest of everything a trial's result depends on, except the trial's own values."""
    settings = {
        "tune": config.model_dump(exclude={"n_trials"}),
        "base": dict(base),
        "seed": seed,
        "data": data_digest,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_study(storage: str, config: TuneParams, digest: str, fresh: bool) -> optuna.Study:
    """Create the study, or load it to resume when it was run with the same settings (`digest`).

    Args:
        storage: an Optuna storage URL (`sqlite:///tuning/optuna.db`).
        config: the search's params.
        digest: `settings_digest` of this run; a stored study with another digest is an error.
        fresh: delete a stored study of the same name first.
    """
    import optuna

    if fresh:
        with contextlib.suppress(KeyError):  # there was none
            optuna.delete_study(study_name=config.study, storage=storage)
    pruner = (
        optuna.pruners.NopPruner()
        if config.pruning is None
        else optuna.pruners.MedianPruner(
            n_startup_trials=config.pruning.startup_trials, n_warmup_steps=config.pruning.warmup_epochs
        )
    )
    study = optuna.create_study(
        storage=storage,
        study_name=config.study,
        direction=direction(config.metric),
        pruner=pruner,
        load_if_exists=True,
    )
    stored = study.user_attrs.get(USER_ATTR_SETTINGS)
    if stored is None:
        study.set_user_attr(USER_ATTR_SETTINGS, digest)
    elif stored != digest:
        raise TuneError(
            f"{SECTION}.study: study '{config.study}' in {storage} was run with other params or data; "
            "run again with --fresh to start it over, or set another study name"
        )
    _fail_interrupted(study)
    return study


def _fail_interrupted(study: optuna.Study) -> None:
    """A trial left running by a killed search will never finish: mark it failed, so resuming skips it."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards `n_trials`: completed and pruned ones."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


Splits = dict[str, "tuple[pd.DataFrame, np.ndarray]"]
Objective = Callable[["optuna.Trial"], float]


def make_objective(
    config: TuneParams, base: Mapping[str, Any], splits: Splits, device: torch.device, seed: int
) -> Objective:
    """The trial function: train with the trial's values in a nested MLflow run, report epochs, return the value."""
    import mlflow
    import optuna

    from lab.processes.train_dnn_pytorch import network as densenet
    from lib.tracking import runs

    epoch_metric = EPOCH_METRIC[config.metric]

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, config.search_space)
        params = trial_params(base, values)
        logged = {"trial": trial.number, **values}
        with runs.stage_run(SECTION, logged, device=str(device), nested_name=f"trial-{trial.number}") as run_id:
            trial.set_user_attr(USER_ATTR_RUN_ID, run_id)
            mlflow.set_tag("optuna.trial_number", str(trial.number))

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                mlflow.log_metrics(metrics, step=epoch, synchronous=False)
                trial.report(metrics[epoch_metric], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: {epoch_metric} {metrics[epoch_metric]}")

            try:
                result = densenet.train(params, splits, device, seed, on_epoch=on_epoch, progress=False)
            except optuna.TrialPruned as pruned:
                mlflow.set_tags({"optuna.state": "pruned", "optuna.pruned_at": str(pruned)})
                stopped: optuna.TrialPruned | None = pruned
            else:
                stopped = None
                value = result.val_metrics[config.metric]
                mlflow.log_metrics({**result.val_metrics, "best_epoch": float(result.best_epoch)})
                mlflow.set_tag("optuna.state", "completed")
        if stopped is not None:  # raised outside the run, so MLflow records it as finished, not failed
            raise stopped
        return value

    return objective


def run_trials(study: optuna.Study, objective: Objective, n_trials: int, seed: int, random_trials: int) -> int:
    """Run trials until the study has `n_trials` finished ones; return how many ran now.

    Each trial gets a TPE sampler seeded with `seed` and the trial's number, so what it proposes
    depends only on the seed and the trials before it, also when a search is resumed.
    """
    import optuna

    ran = 0
    while len(finished_trials(study)) < n_trials:
        number = len(study.trials)
        study.sampler = optuna.samplers.TPESampler(seed=(seed + number) % 2**32, n_startup_trials=random_trials)
        study.optimize(objective, n_trials=1, catch=())
        ran += 1
    return ran


@dataclass(frozen=True)
class Best:
    """The study's best trial and how the study went."""

    number: int
    value: float
    params: dict[str, Any]
    completed: int
    pruned: int
    run_id: str | None  # the trial's MLflow run


def best_trial(study: optuna.Study, space: Mapping[str, FloatRange | IntRange | Choice]) -> Best:
    """The best completed trial; an error when every trial was pruned."""
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    if not completed:
        raise TuneError(f"{SECTION}.pruning: every trial was pruned; raise warmup_epochs or startup_trials")
    trial = study.best_trial
    return Best(
        number=trial.number,
        value=float(trial.value),
        params=decode_params(space, trial.params),
        completed=len(completed),
        pruned=len(pruned),
        run_id=trial.user_attrs.get(USER_ATTR_RUN_ID),
    )


def best_file(config: TuneParams, best: Best, run_id: str) -> dict[str, Any]:
    """The content of the best-params file that `adopt` writes into params.yaml."""
    return {
        "section": TRAIN_SECTION,
        "params": best.params,
        "study": config.study,
        "metric": config.metric,
        "direction": direction(config.metric),
        "best_value": best.value,
        "best_trial": best.number,
        "trials": {"completed": best.completed, "pruned": best.pruned, "total": best.completed + best.pruned},
        "mlflow_run_id": run_id,
        "best_mlflow_run_id": best.run_id,
    }
