"""Stage `train_dnn_pytorch`: train the network, keep its best epoch, test it.

A killed run resumes from its last checkpoint. Under `torchrun --nproc_per_node=N`, or with
REPROLAB_NPROC_PER_NODE=N (it then starts itself so), it trains data-parallel on N processes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from lib import cli
from lib.paths import CHECKPOINTS_DIR

STAGE = "train_dnn_pytorch"
MODULE = "lab.processes.train_dnn_pytorch.main"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, train, write outputs, log the run with per-epoch metrics."""
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="train/val/test Parquet files")
    parser.add_argument("--model", type=Path, default=Path("models/dnn.pt"), help="kept weights and architecture")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/dnn.json"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots/dnn"))
    parser.add_argument("--checkpoint-dir", type=Path, default=CHECKPOINTS_DIR / STAGE, help="removed at the end")
    args = parser.parse_args(argv)

    from lib.training import distributed

    if command := distributed.torchrun_command(MODULE, sys.argv[1:] if argv is None else argv):
        os.execv(command[0], command)  # REPROLAB_NPROC_PER_NODE > 1: the same stage, one process per GPU

    import torch

    from lab.processes.train_dnn_pytorch.network import build_network, load_network, saved_network
    from lab.processes.train_dnn_pytorch.params import NetworkParams
    from lib import plots
    from lib.datasets import read_schema, read_splits
    from lib.digests import directory_digest, fingerprint
    from lib.outputs import check_writable, commit_outputs
    from lib.params import ParamsFile
    from lib.torch_data import resolve_device
    from lib.tracking import models, runs, store
    from lib.training import checkpoints, cross_validation, devices, gpu_slots, loop

    check_writable([args.model, args.metrics, args.plots_dir, args.checkpoint_dir])
    world = distributed.world_from_env()
    gpu_slots.claim(os.environ)  # in a sweep on GPUs: a GPU of its own (or a share of one), before CUDA starts
    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(STAGE, NetworkParams)
    experiment = params.section("tracking", store.TrackingParams).experiment
    splits = read_splits(args.data_dir)
    schema = read_schema(args.data_dir)
    device = distributed.rank_device(resolve_device(config.device), world)
    log = checkpoints.stderr_log(STAGE) if world.is_main else lambda _: None  # rank 0 says everything once
    if warning := devices.cpu_build_warning(config.device, device):
        log(warning)
    if share := gpu_slots.limit_memory(device, os.environ):
        log(f"sharing {device} with other trainings of the sweep: at most {share:.0%} of its memory")
    facts = devices.device_facts(device)
    data = directory_digest(args.data_dir)
    key = fingerprint(params=config.model_dump(), seed=seed, data=data, processes=world.size, device=facts)
    checkpoint_store = checkpoints.CheckpointStore(args.checkpoint_dir, key, log=log, read=world.is_main)
    if world.is_main:
        store.preflight()
    build = partial(build_network, params=config)
    train = partial(
        cross_validation.cross_validate_and_fit, config, build, splits, device, seed, checkpoint_store,
        world=world, log=log, schema=schema,
    )  # fmt: skip

    with distributed.process_group(world, device):
        checkpoint_store.latest = distributed.from_main(checkpoint_store.latest, world)  # rank 0's, on every rank
        if not world.is_main:  # trains its share; rank 0 scores, writes and logs
            train()
            return
        saved = checkpoint_store.latest or {}
        run_params = {"seed": seed, STAGE: config.model_dump(), "processes": world.size}
        with runs.journal_run(STAGE, experiment, run_params, str(device), saved.get("tracking_run_key")) as run:
            checkpoint_store.extra["tracking_run_key"] = run.key
            run.set_tags({**devices.run_tags(facts), "task": schema.task})
            log_epoch = runs.epoch_logger(run, json.loads(saved.get("history", "[]")))
            cv_scores, result = train(on_epoch=log_epoch)

            stage_metrics = {**loop.stage_metrics(result), **(cross_validation.summary(cv_scores) if cv_scores else {})}
            plot_set = plots.stage_plots(splits.get("test"), result.test_output, "dense network", schema)
            plot_set.tables["history"] = result.history
            plot_set.figures["training_curves"] = plots.training_curves_figure(result.history, result.best_epoch)
            with commit_outputs() as outputs:
                features = list(splits["train"].features.columns)
                weights = saved_network(result.network, config, features, result.objective.n_outputs)
                torch.save(weights, outputs.path(args.model))
                outputs.write_json(args.metrics, stage_metrics)
                pngs = plot_set.write(outputs, args.plots_dir)
            checkpoint_store.clear()

            run.log_metrics({k: float(v) for k, v in stage_metrics.items()})
            run.log_metrics(cross_validation.fold_metrics(cv_scores))
            runs.log_pngs(run, pngs)
            network, _ = load_network(args.model)  # the MLflow model is the network DVC versions, read back
            example = splits["test" if "test" in splits else "train"].features.head(5)
            models.log_torch_model(run, torch.nn.Sequential(network, result.objective.output_layer()), example)
    val, test = result.val_metrics, result.test_metrics
    kept = f"epoch {result.best_epoch}/{config.epochs}" if val else f"the last epoch ({config.epochs}, no val split)"
    shown = "test/accuracy" if schema.is_classification else "test/rmse"
    scores = [f"val/loss {result.history['val/loss'].iloc[result.best_epoch - 1]:.4f}"] if val else []
    scores.append(f"{shown} {test[shown]:.4f}" if test else "no test split, so no test metrics")
    print(f"{STAGE}: kept {kept} on {device}, {', '.join(scores)}")
    print(runs.results_line(STAGE, [args.model, args.metrics, args.plots_dir], run))


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
