"""An Optuna search over the dense network's hyperparameters, each trial a nested run of the search's run.

python -m sweeps.tune [--trials N] [--fresh]        # make tune TRIALS=N; then make adopt-tuned
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictInt, Tag, ValidationError

from lib import cli
from lib.errors import ReprolabError
from lib.params import Section
from sweeps.search import DONE, FAILED, PRUNED, Result, ranked_table, run_links

if TYPE_CHECKING:
    import optuna
    import torch

    from lib.datasets import Schema, Split
    from lib.tracking.journal import Run

SECTION = "tune_dnn_pytorch"
TRAIN_SECTION = "train_dnn_pytorch"
STORAGE = Path("tuning/optuna.db")
BEST_FILE = Path("tuning/train_dnn_pytorch.yaml")
# The metric optimised: the kept epoch's, from the network's val_metrics.
TuneMetric = Literal["val/log_loss", "val/accuracy", "val/roc_auc", "val/rmse", "val/r2"]
USER_ATTR_SETTINGS = "settings"
USER_ATTR_RUN_KEY = "tracking_run_key"  # the journal key of the search's run, and of each trial's
TRIAL_TAG = "optuna.trial_number"


def network() -> tuple[type, Callable[..., Any]]:
    """The network's params model and its training function: the one place the search names the network."""
    from lab.processes.train_dnn_pytorch import network, params

    return params.NetworkParams, network.train


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
    """The tag of a dimension from its shape: its mapping in params.yaml, or its model's fields when serialising."""
    fields = dict(value) if isinstance(value, Section) else value if isinstance(value, Mapping) else {}
    if "choices" in fields:
        return "choices"
    ends = [fields.get("low"), fields.get("high")]
    return "int" if all(isinstance(end, int) and not isinstance(end, bool) for end in ends) else "float"


Dimension = Annotated[
    Annotated[FloatRange, Tag("float")] | Annotated[IntRange, Tag("int")] | Annotated[Choice, Tag("choices")],
    Discriminator(_space_kind),
]
Space = Mapping[str, FloatRange | IntRange | Choice]


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
    """Losses and errors are minimised, every other metric maximised."""
    from lib.evaluation import GREATER_IS_BETTER

    return "maximize" if GREATER_IS_BETTER[metric.removeprefix("val/")] else "minimize"


def check_metric(metric: TuneMetric, task: str) -> None:
    """Raise a TuneError naming `metric` when the network does not report it for `task`."""
    if (metric in ("val/rmse", "val/r2")) != (task == "regression"):
        suited = "val/rmse, val/r2" if task == "regression" else "val/log_loss, val/accuracy, val/roc_auc"
        raise TuneError(f"{SECTION}.metric: {metric} does not apply to task {task}; use one of {suited}")


def trial_params(base: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    """The `train_dnn_pytorch` section as written in params.yaml (`base`) with a trial's `values` set."""
    return network()[0].model_validate({**base, **values})


def check_space(space: Space, base: Mapping[str, Any]) -> None:
    """Fail before any training when a key is not a network key or a range end or choice is invalid for it."""
    fields = network()[0].model_fields
    for key, dimension in space.items():
        where = f"{SECTION}.search_space.{key}"
        if key not in fields:
            raise TuneError(f"{where}: not a {TRAIN_SECTION} key (those are: {', '.join(fields)})")
        if isinstance(dimension, Choice):
            values = dimension.choices
        else:
            values = [dimension.low, dimension.high]
            if dimension.low > dimension.high:
                raise TuneError(f"{where}: low {dimension.low} is above high {dimension.high}")
            if dimension.log and dimension.low <= 0:
                raise TuneError(f"{where}: a log range needs low > 0, got {dimension.low}")
        for value in values:
            try:
                trial_params(base, {key: value})
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise TuneError(f"{where}: {value!r} is not a valid {TRAIN_SECTION}.{key} ({reason})") from None


def _labels(choice: Choice) -> list[Any]:
    """Optuna's categorical choices are scalars: a list (layer widths) is offered as its JSON text."""
    return [json.dumps(value) if isinstance(value, list | dict) else value for value in choice.choices]


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Draw one value per search-space key from `trial`, lists decoded back from their JSON text."""
    for key, dim in space.items():
        if isinstance(dim, Choice):
            trial.suggest_categorical(key, _labels(dim))
        elif isinstance(dim, IntRange):
            trial.suggest_int(key, dim.low, dim.high, step=dim.step, log=dim.log)
        else:
            trial.suggest_float(key, dim.low, dim.high, log=dim.log)
    return decode_params(space, trial.params)


def decode_params(space: Space, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's params as params.yaml holds them (JSON-labelled choices decoded)."""
    decoded = dict(stored)
    for key, value in stored.items():
        if isinstance(dimension := space.get(key), Choice) and value in (labels := _labels(dimension)):
            decoded[key] = dimension.choices[labels.index(value)]
    return decoded


def settings_digest(config: TuneParams, base: Mapping[str, Any], seed: int, data_digest: str) -> str:
    """A digest of everything a trial's result depends on, except the trial's own values."""
    from lib.digests import fingerprint

    return fingerprint(tune=config.model_dump(exclude={"n_trials"}), base=dict(base), seed=seed, data=data_digest)[:16]


def open_study(storage: str, config: TuneParams, digest: str, fresh: bool) -> optuna.Study:
    """Create the study in Optuna `storage`, or load it to resume when it was run with the same settings
    (`digest`, else an error); `fresh` deletes a stored study of the same name first."""
    import optuna
    from optuna.trial import TrialState

    if fresh:
        with contextlib.suppress(KeyError):  # there was none
            optuna.delete_study(study_name=config.study, storage=storage)
    pruning = config.pruning
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=pruning.startup_trials, n_warmup_steps=pruning.warmup_epochs)
        if pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage, study_name=config.study, direction=direction(config.metric), pruner=pruner, load_if_exists=True
    )
    stored = study.user_attrs.get(USER_ATTR_SETTINGS)
    if stored is None:
        study.set_user_attr(USER_ATTR_SETTINGS, digest)
    elif stored != digest:
        raise TuneError(
            f"{SECTION}.study: study '{config.study}' in {storage} was run with other params or data; "
            "run again with --fresh to start it over, or set another study name"
        )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a killed search:
        study.tell(trial.number, state=TrialState.FAIL)  # it never finishes, so resuming skips it
    return study


Objective = Callable[["optuna.Trial"], float]


def make_objective(
    run: Run,
    config: TuneParams,
    base: Mapping[str, Any],
    splits: dict[str, Split],
    device: torch.device,
    seed: int,
    schema: Schema,
) -> Objective:
    """The trial function: train with the trial's values in a nested run of `run`, report epochs, return the value."""
    import optuna

    from lib.tracking.runs import nested_run
    from lib.training.devices import device_facts, run_tags

    # The network's per-epoch figures, which the pruner sees, name the log loss val/loss.
    epoch_metric = "val/loss" if config.metric == "val/log_loss" else config.metric
    train = network()[1]
    device_tags = run_tags(device_facts(device))  # the GPU model, CUDA, cuDNN, torch build, on every trial

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, config.search_space)
        with nested_run(run, f"trial-{trial.number}", {"trial": trial.number, **values}) as child:
            trial.set_user_attr(USER_ATTR_RUN_KEY, child.key)
            child.set_tags({TRIAL_TAG: str(trial.number), **device_tags})

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                child.log_metrics(metrics, step=epoch)
                trial.report(metrics[epoch_metric], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: {epoch_metric} {metrics[epoch_metric]}")

            try:
                result = train(
                    trial_params(base, values), splits, device, seed, on_epoch=on_epoch, progress=False, schema=schema
                )
            except optuna.TrialPruned as pruned:
                child.set_tags({"optuna.state": "pruned", "optuna.pruned_at": str(pruned)})
                stopped = pruned
            else:
                child.log_metrics({**result.val_metrics, "best_epoch": float(result.best_epoch)})
                child.set_tags({"optuna.state": "completed"})
                return result.val_metrics[config.metric]
        raise stopped  # only a pruned trial gets here: raised outside the run, so that it ends finished, not failed

    return objective


def run_trials(study: optuna.Study, objective: Objective, n_trials: int, seed: int, random_trials: int) -> int:
    """Run trials until the study has `n_trials` finished (completed or pruned) ones; return how many ran now.

    Each trial's TPE sampler is seeded with `seed` and the trial's number, so what it proposes depends only
    on the seed and the trials before it, also when a search is resumed.
    """
    import optuna
    from optuna.trial import TrialState

    before = len(study.trials)
    while len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))) < n_trials:
        seeded = (seed + len(study.trials)) % 2**32
        study.sampler = optuna.samplers.TPESampler(seed=seeded, n_startup_trials=random_trials)
        study.optimize(objective, n_trials=1, catch=())
    return len(study.trials) - before


def best_file(study: optuna.Study, config: TuneParams, mlflow_ids: Mapping[str, str]) -> dict[str, Any]:
    """The best-params file that `adopt` writes into params.yaml: the best completed trial and how the study
    went, with the MLflow run ids `mlflow_ids` has for the search's and the trial's journal keys. An error
    when every trial was pruned."""
    states = Counter(trial.state.name for trial in study.get_trials(deepcopy=False))
    completed, pruned = states["COMPLETE"], states["PRUNED"]
    if not completed:
        raise TuneError(f"{SECTION}.pruning: every trial was pruned; raise warmup_epochs or startup_trials")
    best = study.best_trial
    return {
        "section": TRAIN_SECTION,
        "params": decode_params(config.search_space, best.params),
        "study": config.study,
        "metric": config.metric,
        "direction": direction(config.metric),
        "best_value": float(best.value),
        "best_trial": best.number,
        "trials": {"completed": completed, "pruned": pruned, "total": completed + pruned},
        "mlflow_run_id": mlflow_ids.get(study.user_attrs.get(USER_ATTR_RUN_KEY)),
        "best_mlflow_run_id": mlflow_ids.get(best.user_attrs.get(USER_ATTR_RUN_KEY)),
    }


def trial_results(study: optuna.Study, space: Space, links: Mapping[str, str]) -> list[Result]:
    """The study's trials as search results (`links`: MLflow runs per trial number), for `ranked_table`."""
    from optuna.trial import TrialState

    states = {TrialState.COMPLETE: DONE, TrialState.PRUNED: PRUNED}
    return [
        Result(
            f"trial-{trial.number}",
            {f"{TRAIN_SECTION}.{key}": value for key, value in decode_params(space, trial.params).items()},
            trial.value if trial.state == TrialState.COMPLETE else None,
            states.get(trial.state, FAILED),
            links.get(str(trial.number), ""),
        )
        for trial in study.get_trials(deepcopy=False)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, check data and search space, run the trials, write the best params."""
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="train/val Parquet files")
    parser.add_argument("--trials", type=int, default=None, help="finished trials the study should hold (n_trials)")
    parser.add_argument("--storage", type=Path, default=STORAGE, help="the study's SQLite file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=BEST_FILE, help="best params, for adopt (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="delete the stored study of the same name first")
    args = parser.parse_args(argv)

    import yaml

    from lib.datasets import read_schema, read_splits, require_split, split_path
    from lib.digests import file_digest
    from lib.outputs import commit_outputs
    from lib.params import ParamsFile
    from lib.torch_data import resolve_device
    from lib.tracking import journal, runs, store
    from lib.tracking.journal import State
    from lib.tracking.sync import sync_all

    params = ParamsFile.read(args.params)
    seed, config = params.seed(), params.section(SECTION, TuneParams)
    base = dict(params.data[TRAIN_SECTION])
    experiment = params.section("tracking", store.TrackingParams).experiment
    if args.trials is not None and args.trials < 1:
        raise TuneError(f"--trials: must be at least 1, got {args.trials}")
    check_space(config.search_space, base)
    splits, schema = read_splits(args.data_dir), read_schema(args.data_dir)
    check_metric(config.metric, schema.task)
    require_split(splits, "val", f"the hyperparameter search ({SECTION})")
    splits.pop("test", None)  # the search never looks at test
    network_params = params.section(TRAIN_SECTION, network()[0])
    device = resolve_device(network_params.device)
    store.preflight()

    data = ",".join(file_digest(split_path(args.data_dir, name)) for name in splits)
    args.storage.parent.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.storage}"
    study = open_study(storage, config, settings_digest(config, base, seed, data), args.fresh)
    logged = {"seed": seed, SECTION: config.model_dump(), TRAIN_SECTION: network_params.model_dump()}
    with runs.journal_run(SECTION, experiment, logged, str(device), study.user_attrs.get(USER_ATTR_RUN_KEY)) as run:
        uri = run.created["tracking_uri"]
        study.set_user_attr(USER_ATTR_RUN_KEY, run.key)
        run.set_tags(
            {"optuna.study": config.study, "optuna.metric": config.metric, "optuna.direction": direction(config.metric)}
        )
        objective = make_objective(run, config, base, splits, device, seed, schema)
        ran = run_trials(study, objective, args.trials or config.n_trials, seed, config.random_trials)
        best = best_file(study, config, State(run.journal.path, uri).runs)  # the ids the sync has made so far
        counts = {f"trials/{state}": float(count) for state, count in best["trials"].items() if state != "total"}
        run.log_metrics({f"best/{config.metric}": best["best_value"], **counts})
        run.set_tags({"best_trial": best["best_trial"], **{f"best.{k}": v for k, v in best["params"].items()}})
        run.log_dict(best, "best_params.yaml")
    for line in sync_all(store.local_store_root(), wait=journal.sync_wait("REPROLAB_SYNC_WAIT", 30)):
        print(f"warning: tracking is behind: {line}; `make sync` replays it", file=sys.stderr, flush=True)
    mlflow_ids = State(run.journal.path, uri).runs  # every trial's run before its link
    best = best_file(study, config, mlflow_ids)
    trial_runs = f"tags.`mlflow.parentRunId` = '{mlflow_ids.get(run.key)}'"
    links = run_links(experiment, uri, trial_runs, TRIAL_TAG, nested=True) if run.key in mlflow_ids else {}
    print(
        ranked_table(trial_results(study, config.search_space, links), config.metric, best["direction"] == "maximize")
    )

    header = (
        f"# The best trial of the Optuna study '{config.study}' ({storage}).\n"
        f"# Put its params into params.yaml's {TRAIN_SECTION} section with: make adopt-tuned\n"
    )
    with commit_outputs() as outputs:
        outputs.write_text(args.out, header + yaml.safe_dump(best, sort_keys=False))
    trials = best["trials"]
    print(
        f"{SECTION}: {ran} trials run now, {trials['completed']} completed and {trials['pruned']} pruned in all; "
        f"best trial {best['best_trial']}: {config.metric} {best['best_value']:.4f}; written to {args.out}"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
