"""Stage `prepare_data`: raw table -> validated, split, preprocessed Parquet files, a schema and a data report."""

from collections.abc import Sequence
from pathlib import Path

from lib import cli

STAGE = "prepare_data"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, prepare the data, write the outputs, record the run for MLflow."""
    parser = cli.parser(__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("data/processed"), help="splits (Parquet) and schema")
    parser.add_argument(
        "--preprocessing", type=Path, default=Path("models/preprocessing.pkl"), help="fitted, to replay at serving"
    )
    parser.add_argument("--metrics", type=Path, default=Path("metrics/data.json"), help="data report")
    args = parser.parse_args(argv)
    written = [args.out_dir, args.preprocessing, args.metrics]

    from lib.outputs import check_writable, commit_outputs

    check_writable(written)

    import dataclasses
    import pickle

    from lab.processes.prepare_data.params import PrepareParams, cv_folds
    from lab.processes.prepare_data.prepare import prepare
    from lab.processes.prepare_data.tables import load_raw, with_synthetic_gaps
    from lib.datasets import SCHEMA_FILE, SPLITS, split_path, write_split
    from lib.params import ParamsFile
    from lib.tracking import runs, store

    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(STAGE, PrepareParams)
    experiment = params.section("tracking", store.TrackingParams).experiment
    raw = load_raw(config.source, config.target, seed, config.synthetic_rows, config.synthetic_features)
    if config.synthetic_categorical or config.synthetic_missing:
        raw = with_synthetic_gaps(raw, config.target, config.synthetic_categorical, config.synthetic_missing, seed)
    store.preflight()

    prepared = prepare(raw, config, seed, cv_folds(params))
    schema = prepared.schema
    print(f"{STAGE}: task {schema.task} ({prepared.reason})")

    with commit_outputs() as outputs:
        for name, frame in prepared.splits.items():
            write_split(frame, outputs.path(split_path(args.out_dir, name)))
        outputs.write_json(args.out_dir / SCHEMA_FILE, dataclasses.asdict(schema))
        with outputs.path(args.preprocessing).open("wb") as file:
            pickle.dump(prepared.preprocessing, file, protocol=5)
        outputs.write_json(args.metrics, prepared.report)
    # A split this mode does not write must not survive from an earlier mode (dvc repro removes the
    # directory first, a direct run does not).
    for name in set(SPLITS) - set(prepared.splits):
        split_path(args.out_dir, name).unlink(missing_ok=True)

    with runs.journal_run(STAGE, experiment, {"seed": seed, STAGE: config.model_dump()}) as run:
        run.set_tags({"task": schema.task})
        run.log_metrics({key: value for key, value in prepared.report.items() if not isinstance(value, str)})
        run.log_dict(dataclasses.asdict(schema), SCHEMA_FILE)
        run.log_artifact(args.preprocessing)
    rows = ", ".join(f"{name} {len(frame)} rows" for name, frame in prepared.splits.items())
    print(f"{STAGE}: split {config.split}: {rows}")
    print(runs.results_line(STAGE, written, run))


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
