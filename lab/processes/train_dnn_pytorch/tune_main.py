"""Search the dense network's hyperparameters with Optuna; write the best ones for `adopt` to put in params.yaml.

Runs until the study holds `--trials` finished (completed or pruned) trials. The study lives in a
SQLite file, so a killed search continues when started again with the same params and data, and
one that is done only rewrites the best-params file. One MLflow parent run holds a nested run per trial.
"""

from collections.abc import Sequence
from pathlib import Path

from lib import cli

STORAGE = Path("tuning/optuna.db")
BEST_FILE = Path("tuning/train_dnn_pytorch.yaml")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, check data and search space, run the trials, write the best params."""
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="train/val Parquet files")
    parser.add_argument("--trials", type=int, default=None, help="finished trials the study should hold (n_trials)")
    parser.add_argument("--storage", type=Path, default=STORAGE, help="the study's SQLite file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=BEST_FILE, help="best params, for adopt (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="delete the stored study of the same name first")
    args = parser.parse_args(argv)

    import hashlib

    import yaml

    from lab.processes.train_dnn_pytorch import tune
    from lab.processes.train_dnn_pytorch.params import NetworkParams as DenseNetParams
    from lib.datasets import read_splits, require_split, split_path
    from lib.outputs import commit_outputs
    from lib.params import ParamsFile
    from lib.torch_data import resolve_device
    from lib.tracking import runs, store

    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(tune.SECTION, tune.TuneParams)
    base = params.section(tune.TRAIN_SECTION, DenseNetParams)
    raw_base = dict(params.data[tune.TRAIN_SECTION])
    experiment = params.section("tracking", store.TrackingParams).experiment
    if args.trials is not None and args.trials < 1:
        raise tune.TuneError(f"--trials: must be at least 1, got {args.trials}")
    n_trials = args.trials or config.n_trials
    tune.check_space(config.search_space, raw_base)
    splits = read_splits(args.data_dir)
    require_split(splits, "val", f"the hyperparameter search ({tune.SECTION})")
    splits.pop("test", None)  # the search never looks at test
    device = resolve_device(base.device)
    store.prepare(experiment)

    data = hashlib.sha256(b"".join(split_path(args.data_dir, name).read_bytes() for name in splits)).hexdigest()
    args.storage.parent.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.storage}"
    study = tune.open_study(storage, config, tune.settings_digest(config, raw_base, seed, data), args.fresh)

    import mlflow

    logged = {"seed": seed, tune.SECTION: config.model_dump(), tune.TRAIN_SECTION: base.model_dump()}
    resume = study.user_attrs.get(tune.USER_ATTR_RUN_ID)
    with runs.stage_run(tune.SECTION, logged, device=str(device), resume_run_id=resume) as run_id:
        study.set_user_attr(tune.USER_ATTR_RUN_ID, run_id)
        mlflow.set_tags(
            {
                "optuna.study": config.study,
                "optuna.metric": config.metric,
                "optuna.direction": tune.direction(config.metric),
            }
        )
        objective = tune.make_objective(config, raw_base, splits, device, seed)
        ran = tune.run_trials(study, objective, n_trials, seed, config.random_trials)
        best = tune.best_trial(study, config.search_space)
        summary = tune.best_file(config, best, run_id)
        mlflow.log_metrics(
            {f"best/{config.metric}": best.value, "trials/completed": best.completed, "trials/pruned": best.pruned}
        )
        mlflow.set_tags({"best_trial": str(best.number), **{f"best.{k}": str(v) for k, v in best.params.items()}})
        mlflow.log_dict(summary, "best_params.yaml")

    header = (
        f"# The best trial of the Optuna study '{config.study}' ({storage}).\n"
        f"# Put its params into params.yaml's {tune.TRAIN_SECTION} section with: make adopt-tuned\n"
    )
    with commit_outputs() as outputs:
        outputs.write_text(args.out, header + yaml.safe_dump(summary, sort_keys=False))
    print(
        f"{tune.SECTION}: {ran} trials run now, {best.completed} completed and {best.pruned} pruned in all; "
        f"best trial {best.number}: {config.metric} {best.value:.4f}; written to {args.out}"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
