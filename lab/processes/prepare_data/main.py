"""Stage `prepare_data`: raw table -> validated, split, scaled Parquet files and a data report."""

from collections.abc import Sequence
from pathlib import Path

from lib import cli

STAGE = "prepare_data"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, prepare the data, write the outputs, record the run for MLflow."""
    parser = cli.parser(__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("data/processed"), help="train/val/test Parquet files")
    parser.add_argument(
        "--preprocessing", type=Path, default=Path("models/preprocessing.json"), help="scaling to replay at serving"
    )
    parser.add_argument("--metrics", type=Path, default=Path("metrics/data.json"), help="data report")
    args = parser.parse_args(argv)

    from lab.processes.prepare_data import cancer_data
    from lib.datasets import SPLITS, split_path, write_split
    from lib.outputs import commit_outputs
    from lib.params import ParamsFile
    from lib.tracking import runs, store

    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(STAGE, cancer_data.PrepareParams)
    experiment = params.section("tracking", store.TrackingParams).experiment
    raw = cancer_data.load_raw(config.source, config.target, seed, config.synthetic_rows, config.synthetic_features)
    store.preflight()

    prepared = cancer_data.prepare(raw, config, seed)

    with commit_outputs() as outputs:
        for name, frame in prepared.splits.items():
            write_split(frame, outputs.path(split_path(args.out_dir, name)))
        outputs.write_json(args.preprocessing, prepared.preprocessing)
        outputs.write_json(args.metrics, prepared.report)
    # A split this mode does not write must not survive from an earlier mode (dvc repro removes the
    # directory first, a direct run does not).
    for name in set(SPLITS) - set(prepared.splits):
        split_path(args.out_dir, name).unlink(missing_ok=True)

    with runs.journal_run(STAGE, experiment, {"seed": seed, STAGE: config.model_dump()}) as run:
        run.log_metrics(prepared.report)
        run.log_dict(prepared.preprocessing, "preprocessing.json")
    rows = ", ".join(f"{name} {len(frame)} rows" for name, frame in prepared.splits.items())
    print(f"{STAGE}: split {config.split}: {rows}")
    outputs = [args.out_dir, args.preprocessing, args.metrics]
    print(runs.results_line(STAGE, outputs, run))


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
