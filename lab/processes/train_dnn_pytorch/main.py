"""Stage `train_dnn_pytorch`: train a dense network, keep its best epoch, test it.

A killed run resumes from its last checkpoint when started again. Started by `torchrun
--nproc_per_node=N -m lab.processes.train_dnn_pytorch.main`, it trains data-parallel on N processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import cli

if TYPE_CHECKING:
    from lab.processes.train_dnn_pytorch.checkpoints import CheckpointStore
    from lab.processes.train_dnn_pytorch.densenet import DenseNetParams, EpochCallback, Splits, TrainResult
    from lab.processes.train_dnn_pytorch.distributed import World

STAGE = "train_dnn_pytorch"
CHECKPOINT_DIR = Path(".checkpoints") / STAGE


def _quiet(_: str) -> None:
    """The log of ranks other than 0: rank 0 says everything once."""


def _train(
    config: DenseNetParams,
    splits: Splits,
    device: Any,
    seed: int,
    store: CheckpointStore,
    world: World,
    on_epoch: EpochCallback | None = None,
) -> tuple[list[dict[str, float]], TrainResult]:
    """Cross-validate (if asked and not done before the checkpoint), then train the final network."""
    from lab.processes.train_dnn_pytorch import cross_validation, densenet

    saved = store.latest()
    cv_scores: list[dict[str, float]] = []
    if config.cv_folds:
        cv_scores = saved["cv_scores"] if saved and "cv_scores" in saved else []
        if not cv_scores:
            cv_scores = cross_validation.cross_validate(config, splits["train"], device, seed, world=world)
        store.extra["cv_scores"] = cv_scores  # resuming the final network skips the folds
    result = densenet.train(config, splits, device, seed, on_epoch=on_epoch, checkpoints=store, world=world)
    return cv_scores, result


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, train, write outputs, log the run with per-epoch metrics."""
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="train/val/test Parquet files")
    parser.add_argument("--model", type=Path, default=Path("models/dnn.pt"), help="kept weights and architecture")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/dnn.json"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots/dnn"))
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=CHECKPOINT_DIR,
        help="per-epoch checkpoints, removed once the outputs are written (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    from lab.processes.train_dnn_pytorch import checkpoints, cross_validation, densenet, distributed, results
    from lib.datasets import read_splits
    from lib.outputs import commit_outputs
    from lib.params import ParamsFile
    from lib.torch_data import resolve_device
    from lib.tracking import models, runs, store

    world = distributed.world_from_env()
    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(STAGE, densenet.DenseNetParams)
    experiment = params.section("tracking", store.TrackingParams).experiment
    distributed.check_batch_size(config.batch_size, world)
    splits = read_splits(args.data_dir)
    device = distributed.rank_device(resolve_device(config.device), world)
    key = checkpoints.fingerprint(
        params=config.model_dump(),
        seed=seed,
        data=checkpoints.directory_digest(args.data_dir),
        processes=world.size,
        device=device.type,
    )
    checkpoint_store = checkpoints.CheckpointStore(
        args.checkpoint_dir, key, log=checkpoints.log_line if world.is_main else _quiet
    )
    if world.is_main:
        store.prepare(experiment)

    with distributed.process_group(world, device):
        if not world.is_main:  # trains its share; rank 0 scores, writes and logs
            _train(config, splits, device, seed, checkpoint_store, world)
            world.barrier()
            return

        import mlflow
        import torch

        saved = checkpoint_store.latest()
        resume_run_id = saved.get("mlflow_run_id") if saved else None
        run_params = {"seed": seed, STAGE: config.model_dump(), "processes": world.size}
        with runs.stage_run(STAGE, run_params, device=str(device), resume_run_id=resume_run_id) as run_id:
            checkpoint_store.extra["mlflow_run_id"] = run_id
            history = json.loads(saved["history"]) if saved else []
            log_epoch = runs.epoch_logger(run_id, history, resumed=run_id == resume_run_id)
            cv_scores, result = _train(config, splits, device, seed, checkpoint_store, world, on_epoch=log_epoch)

            cv_summary = cross_validation.summary(cv_scores) if cv_scores else {}
            stage_metrics = {**densenet.stage_metrics(result), **cv_summary}
            plot_set = results.plot_set(result, splits)
            with commit_outputs() as outputs:
                checkpoint = {
                    "state_dict": result.network.state_dict(),
                    "hidden_layers": list(config.hidden_layers),
                    "dropout": config.dropout,
                    "features": list(splits["train"][0].columns),
                }
                torch.save(checkpoint, outputs.path(args.model))
                outputs.write_json(args.metrics, stage_metrics)
                pngs = plot_set.write(outputs, args.plots_dir)
            checkpoint_store.clear()

            mlflow.log_metrics({k: float(v) for k, v in stage_metrics.items()})
            mlflow.log_metrics(cross_validation.fold_metrics(cv_scores))
            runs.log_pngs(pngs)
            example = splits["test" if "test" in splits else "train"][0].head(5)
            models.log_torch_model(torch.nn.Sequential(result.network, torch.nn.Sigmoid()), example)
        world.barrier()
    print(f"{STAGE}: {results.summary_line(result, config.epochs, str(device))}")


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
