"""Torch helpers for small tabular data: device choice, tensors kept on the device, batches sliced there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from lib.errors import ReprolabError

if TYPE_CHECKING:
    import pandas as pd


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else CPU; asking for `cuda` without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ReprolabError("device: 'cuda' requested but CUDA is not available (use 'auto' or 'cpu')")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def features_to_tensor(features: pd.DataFrame, device: torch.device) -> torch.Tensor:
    """Features as a float32 tensor moved to `device` once."""
    return torch.tensor(features.to_numpy(dtype="float32"), device=device)


def sharded_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator, rank: int = 0, world_size: int = 1
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """This rank's slice of every shuffled global mini-batch of `batch_size` rows, and that batch's row count.

    Every rank draws the same permutation. Slicing on the device avoids a DataLoader's per-sample Python work.
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator).to(x.device)
    per_rank = batch_size // world_size
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size][rank * per_rank : (rank + 1) * per_rank]
        yield x[index], y[index], min(batch_size, n - start)
