"""Stage `train_standard_classifiers`: cross-validate standard scikit-learn models for the data's task
(classifiers or regressors), keep the best, test it."""

from collections.abc import Sequence
from pathlib import Path

from lib import cli

STAGE = "train_standard_classifiers"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, train and select, write outputs, log parent and nested runs."""
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="train/val/test Parquet files")
    parser.add_argument("--model", type=Path, default=Path("models/classifier.pkl"), help="selected model (pickle)")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/classifiers.json"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots/classifiers"))
    args = parser.parse_args(argv)
    written = [args.model, args.metrics, args.plots_dir]

    import pickle

    from lab.processes.train_standard_classifiers import classifiers
    from lib import plots
    from lib.datasets import read_schema, read_splits
    from lib.outputs import check_writable, commit_outputs
    from lib.params import ParamsFile
    from lib.tracking import models, runs, store

    check_writable(written)
    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(STAGE, classifiers.ClassifiersParams)
    experiment = params.section("tracking", store.TrackingParams).experiment
    splits = read_splits(args.data_dir)
    schema = read_schema(args.data_dir)
    store.preflight()

    selection = classifiers.train_and_select(config, splits, seed, schema)

    best, metric = selection.best, selection.metric
    plot_set = plots.stage_plots(splits.get("test"), selection.test_output, best.name, schema)
    plot_set.tables["comparison"] = classifiers.comparison_table(selection)
    plot_set.figures["roc_val_all"] = plots.candidates_roc_figure(
        {c.name: c.val_output for c in selection.candidates}, splits.get("val"), schema, selection.selected_by
    )
    stage_metrics = classifiers.stage_metrics(selection)

    with commit_outputs() as outputs:
        with outputs.path(args.model).open("wb") as file:
            pickle.dump(best.model, file, protocol=5)
        outputs.write_json(args.metrics, stage_metrics)
        pngs = plot_set.write(outputs, args.plots_dir)

    with runs.journal_run(STAGE, experiment, {"seed": seed, STAGE: config.model_dump()}) as run:
        run.set_tags({"task": schema.task})
        for candidate in selection.candidates:
            child_params = {"classifier": candidate.name, **candidate.model.get_params(deep=False)}
            with runs.nested_run(run, candidate.name, child_params) as child:
                child.set_tags({"task": schema.task})
                child.log_metrics(
                    {f"cv/{metric}_mean": candidate.cv_mean, f"cv/{metric}_std": candidate.cv_std}
                    | candidate.val_metrics
                )
        run.set_tags({"selected": best.name})
        run.log_metrics({k: v for k, v in stage_metrics.items() if isinstance(v, float)})
        runs.log_pngs(run, pngs)
        models.log_sklearn_model(run, best.model, splits.get("test", splits["train"]).features.head(5))
    keys = [key for key in (selection.selected_by, f"test/{metric}") if key in stage_metrics]
    scores = ", ".join(f"{key} {stage_metrics[key]:.4f}" for key in keys)
    no_test = "" if "test" in splits else "; no test split, so no test metrics"
    print(f"{STAGE}: selected {best.name} ({schema.task}) by {selection.selected_by}: {scores}{no_test}")
    print(runs.results_line(STAGE, written, run))


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
