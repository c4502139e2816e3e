"""Training throughput of the dense network as the stage runs it (`network.train`, val scored and a checkpoint
written every epoch), next to a bare PyTorch loop of the same network, optimiser, batches and data.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lab.processes.train_dnn_pytorch.network import build_network, train
from lab.processes.train_dnn_pytorch.params import NetworkParams
from lib.datasets import Split, Splits
from lib.params import ParamsFile
from lib.paths import PARAMS_FILE
from lib.torch_data import features_to_tensor, resolve_device, sharded_batches
from lib.training.checkpoints import CheckpointStore
from lib.training.objectives import BINARY_OBJECTIVE

SEED = 0


def synthetic_splits(rows: int, features: int) -> Splits:
    """Seeded `make_classification` rows, 80 % train and 20 % val (what the stage trains and scores on)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 2, random_state=SEED)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    cut = int(rows * 0.8)
    return {"train": Split(frame.iloc[:cut], y[:cut]), "val": Split(frame.iloc[cut:].reset_index(drop=True), y[cut:])}


def stage_epoch_seconds(params: NetworkParams, splits: Splits, device: torch.device, folder: Path) -> list[float]:
    """Seconds between `on_epoch` calls of one `train`: an epoch's training, its val scoring and the checkpoint."""
    stamps: list[float] = []

    def on_epoch(_: int, __: dict[str, float]) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    store = CheckpointStore(folder, "benchmark", log=lambda _: None)
    train(params, splits, device, SEED, on_epoch, progress=False, checkpoints=store, log=lambda _: None)
    store.clear()
    return np.diff(stamps).tolist()


def bare_epoch_seconds(params: NetworkParams, splits: Splits, device: torch.device) -> list[float]:
    """Seconds of each epoch after the first of a plain loop: shuffled batches, forward, loss, backward, step."""
    torch.manual_seed(SEED)
    features, labels = splits["train"]
    x, y = features_to_tensor(features, device), BINARY_OBJECTIVE.targets(labels, device)
    network = build_network(x.shape[1], 1, params).to(device).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    generator = torch.Generator().manual_seed(SEED)
    stamps = []
    for _ in range(params.epochs):
        for xb, yb, _ in sharded_batches(x, y, params.batch_size, generator):
            optimiser.zero_grad(set_to_none=True)
            nn.functional.binary_cross_entropy_with_logits(network(xb), yb).backward()
            optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())
    return np.diff(stamps).tolist()


def measure(params: NetworkParams, splits: Splits, device: torch.device, repeats: int) -> dict[str, float]:
    """Median per-epoch samples/s of the stage's loop and of the bare loop, alternating `repeats` times."""
    stage: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        bare_epoch_seconds(params, splits, device)  # warm-up: allocator, kernels, thread pools
        for _ in range(repeats):
            stage += stage_epoch_seconds(params, splits, device, Path(folder))
            bare += bare_epoch_seconds(params, splits, device)
    rows = len(splits["train"].labels)
    rates = {"stage": rows / statistics.median(stage), "bare": rows / statistics.median(bare)}
    return {"rows": rows, **rates, "ratio": rates["stage"] / rates["bare"]}


def report(results: Sequence[dict[str, float]], params: NetworkParams, device: torch.device, command: str) -> str:
    """The page's figures: the machine, the network, a table of the results and the command."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        f"Measured {date.today().isoformat()} on {platform.machine()} {platform.system()}, {os.cpu_count()} logical "
        f"CPUs, {where}; Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}.",
        f"Network {params.hidden_layers}, dropout {params.dropout}, Adam lr {params.lr}, batch size "
        f"{params.batch_size}, {params.epochs} epochs per repeat (the first of each left out as warm-up).",
        "",
        "| train rows | stage loop (samples/s) | bare loop (samples/s) | ratio |",
        "|---:|---:|---:|---:|",
        *(f"| {r['rows']:,} | {r['stage']:,.0f} | {r['bare']:,.0f} | {r['ratio']:.2f} |" for r in results),
    ]
    return "\n".join([*lines, "", "Reproduce:", "", "```", command, "```", ""])


def main(argv: Sequence[str] | None = None) -> None:
    """Measure at each `--rows`, print the figures, and put them into the `--out` page when given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000], help="synthetic rows (80 %% train)")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per repeat; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, help="markdown page whose figures to replace")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    configured = ParamsFile.read(PARAMS_FILE).section("train_dnn_pytorch", NetworkParams)
    params = configured.model_copy(update={"epochs": args.epochs, "device": args.device})
    results = [measure(params, synthetic_splits(rows, args.features), device, args.repeats) for rows in args.rows]
    command = "python -m benchmarks.dnn_throughput " + " ".join(sys.argv[1:] if argv is None else argv)
    text = report(results, params, device, command.strip())
    print(text)
    if args.out is not None:  # the figures run from "Measured" to the first section heading
        page = args.out.read_text(encoding="utf-8")
        start, end = page.index("\nMeasured "), page.index("\n## ")
        args.out.write_text(f"{page[: start + 1]}{text}{page[end:]}", encoding="utf-8")


if __name__ == "__main__":
    main()
