"""Stage `train_dnn_pytorch`: train a dense network, keep its best epoch, test it."""

from collections.abc import Sequence
from pathlib import Path

from lib import cli

STAGE = "train_dnn_pytorch"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and params, train, write outputs, log the run with per-epoch metrics."""
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="train/val/test Parquet files")
    parser.add_argument("--model", type=Path, default=Path("models/dnn.pt"), help="kept weights and architecture")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/dnn.json"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots/dnn"))
    args = parser.parse_args(argv)

    from lab.processes.train_dnn_pytorch import densenet
    from lib import plots, tracking
    from lib.datasets import read_splits
    from lib.outputs import commit_outputs
    from lib.params import ParamsFile
    from lib.torch_data import resolve_device

    params = ParamsFile.read(args.params)
    seed = params.seed()
    config = params.section(STAGE, densenet.DenseNetParams)
    experiment = params.section("tracking", tracking.TrackingParams).experiment
    splits = read_splits(args.data_dir)
    device = resolve_device(config.device)
    tracking.prepare(experiment)

    import mlflow
    import torch

    with tracking.stage_run(STAGE, {"seed": seed, STAGE: config.model_dump()}, device=str(device)):

        def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=epoch, synchronous=False)

        result = densenet.train(config, splits, device, seed, on_epoch=log_epoch)

        plot_set = plots.evaluation_plots(splits["test"][1], result.test_probability, "dense network")
        plot_set.tables["history"] = result.history
        plot_set.figures["training_curves"] = plots.training_curves_figure(result.history, result.best_epoch)
        stage_metrics = densenet.stage_metrics(result)
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

        mlflow.log_metrics({k: float(v) for k, v in stage_metrics.items()})
        tracking.log_pngs(pngs)
        tracking.log_torch_model(torch.nn.Sequential(result.network, torch.nn.Sigmoid()), splits["test"][0].head(5))
    print(
        f"{STAGE}: best epoch {result.best_epoch}/{config.epochs} on {device}, "
        f"val/loss {result.val_metrics['val/log_loss']:.4f}, test/accuracy {result.test_metrics['test/accuracy']:.4f}"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
