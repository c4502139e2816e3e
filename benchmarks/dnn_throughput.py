"""Training throughput of the dense network as the stage runs it, next to a bare PyTorch loop.

The stage's loop is `network.train` (`lib.training.loop.fit`) with what the stage adds to every epoch:
scoring val and writing a checkpoint. The bare loop trains the same network with the same optimiser,
batch size and data, already on the device, and does nothing else. Both run in this process on seeded
synthetic data, alternating, and the figures are medians of per-epoch samples/s after warm-up epochs.

    .venv/bin/python -m benchmarks.dnn_throughput --out lab/docs/benchmarks-dnn.md
"""

from __future__ import annotations

import argparse
import itertools
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
from lib.torch_data import resolve_device
from lib.training.checkpoints import CheckpointStore

SEED = 0
TITLE = """# Dense network: training throughput in the stage against a bare PyTorch loop

`benchmarks/dnn_throughput.py` trains the network of `params.yaml` on seeded synthetic data (80 % train,
20 % val) twice in one process, alternating: through `network.train` exactly as the stage runs it (val
scored and a checkpoint written every epoch), and through a bare loop of the same model, optimiser, batch
size and on-device data that only shuffles, steps and does nothing else. Figures are medians of
per-epoch samples/s, the first epoch of each repeat left out as warm-up (plus one whole warm-up run).
"""
# Kept in the page `--out` writes; the figures in it were measured when each change was made.
NOTES = """
## Reading it
- At 16,000 train rows the stage reaches 0.92 of the bare loop (0.92 both on a loaded machine and on a
  quiet one). What remains is per batch: the stage sums the loss and counts correct predictions on the
  device for its train metrics (no host sync per batch; one per epoch).
- At the example's size (272 train rows here, 341 in the pipeline: 9 to 11 batches an epoch) the target
  is missed: 0.43 on a quiet machine (0.64 on a loaded one, where the bare loop is slower too). A bare
  epoch takes about 8 ms, and the stage adds fixed costs per epoch that do not grow with the data: the
  checkpoint, about 7 ms (`torch.save` of about 30 small tensors, each its own record in the zip
  archive; 23% of the stage's time in a profile at this size), and scoring val, about 1 ms. The
  checkpoint every epoch is what the resume guarantee needs; at this size a whole 50-epoch training
  takes under a second either way.

## What was changed after profiling
- The first measurement put the checkpoint at 11 ms an epoch and growing: the history (one dict of
  floats per epoch) was pickled object by object, about 2,000 `persistent_id` calls per save by epoch
  200. It is now stored as one JSON string; a save is about 7 ms under load (4 ms quiet) whatever the
  epoch. The legacy (non-zip) `torch.save` format was tried and is slower (6.4 ms against 4.2 ms).
- With torch's default of 2 intra-op threads on this loaded 2-core machine, both loops ran at about
  2,000 samples/s, ten times slower than with 1 thread (OpenMP workers waiting on cores other jobs
  hold). The ratio was about 1.0 then, because both loops paid it. The stage does not change torch's
  thread count; on a loaded small machine, `OMP_NUM_THREADS=1` speeds the network up by that much.
- `make sweep` runs its experiments with `OMP_NUM_THREADS` (and MKL's and OpenBLAS's) set to the cores
  divided by the parallel jobs, so two trainings on two cores do not wait on each other's threads.
"""


def synthetic_splits(rows: int, features: int) -> Splits:
    """Seeded `make_classification` rows, 80 % train and 20 % val (what the stage trains and scores on)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=features, n_informative=features // 2, random_state=SEED)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)]).astype("float64")
    cut = int(rows * 0.8)
    return {
        "train": Split(frame.iloc[:cut].reset_index(drop=True), y[:cut].astype(np.int64)),
        "val": Split(frame.iloc[cut:].reset_index(drop=True), y[cut:].astype(np.int64)),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_epoch_seconds(params: NetworkParams, splits: Splits, device: torch.device, folder: Path) -> list[float]:
    """Seconds of each epoch after the first of one `train` call with val scoring and checkpoints.

    An epoch's time runs from one `on_epoch` call to the next, so it holds the previous epoch's
    checkpoint, this epoch's training and its val scoring: everything the stage does per epoch.
    """
    stamps: list[float] = []

    def on_epoch(_: int, __: dict[str, float]) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    store = CheckpointStore(folder, "benchmark", log=lambda _: None)
    train(params, splits, device, SEED, on_epoch=on_epoch, progress=False, checkpoints=store, log=lambda _: None)
    store.clear()
    return [b - a for a, b in itertools.pairwise(stamps)]


def bare_epoch_seconds(params: NetworkParams, splits: Splits, device: torch.device) -> list[float]:
    """Seconds of each epoch after the first of a plain loop: shuffle, forward, loss, backward, step."""
    torch.manual_seed(SEED)
    features, labels = splits["train"]
    x = torch.tensor(features.to_numpy(dtype="float32"), device=device)
    y = torch.tensor(labels.astype("float32"), device=device).reshape(-1, 1)
    network = build_network(x.shape[1], params).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(SEED)
    network.train()
    seconds = []
    for _ in range(params.epochs):
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(x.shape[0], generator=generator).to(device)
        for begin in range(0, x.shape[0], params.batch_size):
            index = order[begin : begin + params.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss_fn(network(x[index]), y[index]).backward()
            optimiser.step()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def measure(params: NetworkParams, splits: Splits, device: torch.device, repeats: int) -> dict[str, float]:
    """Median per-epoch samples/s of the stage's loop and of the bare loop, alternating `repeats` times."""
    rows = len(splits["train"].labels)
    stage: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        bare_epoch_seconds(params, splits, device)  # warm-up: allocator, kernels, thread pools
        for _ in range(repeats):
            stage += stage_epoch_seconds(params, splits, device, Path(folder))
            bare += bare_epoch_seconds(params, splits, device)
    stage_rate = rows / statistics.median(stage)
    bare_rate = rows / statistics.median(bare)
    return {"rows": rows, "stage": stage_rate, "bare": bare_rate, "ratio": stage_rate / bare_rate}


def machine(device: torch.device) -> str:
    """One line naming the machine, the device and the library versions."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} logical CPUs, {where}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )


def report(results: Sequence[dict[str, float]], params: NetworkParams, device: torch.device, command: str) -> str:
    """The benchmark's markdown section: a table of the figures, the machine and the command."""
    lines = [
        TITLE,
        f"Measured {date.today().isoformat()} on {machine(device)}.",
        f"Network {params.hidden_layers}, dropout {params.dropout}, Adam lr {params.lr}, batch size "
        f"{params.batch_size}, {params.epochs} epochs per repeat (the first of each left out as warm-up).",
        "",
        "| train rows | stage loop (samples/s) | bare loop (samples/s) | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(f"| {result['rows']:,} | {result['stage']:,.0f} | {result['bare']:,.0f} | {result['ratio']:.2f} |")
    lines += ["", "Reproduce:", "", "```", command, "```", NOTES]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure at each `--rows`, print the table, and write it to `--out` when given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000], help="synthetic rows (80 %% train)")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per repeat; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, help="markdown file to write the results to")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    configured = ParamsFile.read(PARAMS_FILE).section("train_dnn_pytorch", NetworkParams)
    params = configured.model_copy(update={"epochs": args.epochs, "device": args.device})
    results = []
    for rows in args.rows:
        result = measure(params, synthetic_splits(rows, args.features), device, args.repeats)
        results.append(result)
        print(
            f"{result['rows']:>9,} train rows: stage {result['stage']:,.0f} samples/s, "
            f"bare {result['bare']:,.0f} samples/s, ratio {result['ratio']:.2f}",
            flush=True,
        )
    command = "python -m benchmarks.dnn_throughput " + " ".join(sys.argv[1:] if argv is None else argv)
    text = report(results, params, device, command.strip())
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
