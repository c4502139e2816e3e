"""torch_data.py: device choice, tensors from frames and mini-batches."""

import numpy as np
import pandas as pd
import pytest
import torch

from lib.errors import ReprolabError
from lib.torch_data import features_to_tensor, resolve_device, sharded_batches

pytestmark = pytest.mark.unittest

CPU = torch.device("cpu")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks behaviour without CUDA")


def test_cpu_resolves_to_cpu() -> None:
    assert resolve_device("cpu") == CPU


@needs_no_cuda
def test_auto_is_cpu_without_cuda() -> None:
    assert resolve_device("auto") == CPU


@needs_no_cuda
def test_cuda_without_cuda_is_an_error_naming_it() -> None:
    with pytest.raises(ReprolabError) as caught:
        resolve_device("cuda")

    assert str(caught.value) == "device: 'cuda' requested but CUDA is not available (use 'auto' or 'cpu')"


def test_auto_and_cuda_follow_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
    with pytest.raises(ReprolabError, match="'cuda'"):
        resolve_device("cuda")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")


@pytest.mark.cuda
def test_cuda_resolves_on_a_cuda_machine() -> None:
    device = resolve_device("cuda")

    assert device.type == "cuda"
    assert resolve_device("auto").type == "cuda"
    assert torch.zeros(1, device=device).device.type == "cuda"


def test_features_to_tensor_gives_float32_features_on_the_device() -> None:
    features = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": np.array([4, 5, 6], dtype=np.int64)})

    x = features_to_tensor(features, CPU)

    assert (x.dtype, tuple(x.shape), x.device) == (torch.float32, (3, 2), CPU)
    assert x.tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]


def _rows(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose features and label both carry the row number, so pairing can be checked."""
    x = torch.arange(n, dtype=torch.float32).reshape(-1, 1).repeat(1, 2)
    return x, x[:, :1] * 10


def _batches(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    return list(sharded_batches(x, y, size, torch.Generator().manual_seed(seed)))


def test_batches_shuffle_every_row_exactly_once() -> None:
    x, y = _rows(10)

    parts = _batches(x, y, 3, seed=0)

    assert [len(bx) for bx, _, _ in parts] == [count for _, _, count in parts] == [3, 3, 3, 1]
    seen_x = torch.cat([bx for bx, _, _ in parts])
    seen_y = torch.cat([by for _, by, _ in parts])
    assert sorted(seen_x[:, 0].tolist()) == list(range(10))
    assert seen_x[:, 0].tolist() != list(range(10))
    assert torch.equal(seen_y, seen_x[:, :1] * 10)


def test_batches_repeat_with_the_same_generator_seed() -> None:
    x, y = _rows(12)

    def order(seed: int) -> list[float]:
        return torch.cat([bx for bx, _, _ in _batches(x, y, 5, seed)])[:, 0].tolist()

    assert order(7) == order(7)
    assert order(7) != order(8)


def test_batches_with_a_batch_larger_than_the_data() -> None:
    x, y = _rows(3)

    parts = _batches(x, y, 8, seed=0)

    assert len(parts) == 1 and parts[0][2] == 3
    assert sorted(parts[0][0][:, 0].tolist()) == [0.0, 1.0, 2.0]


def test_sharded_batches_split_every_global_batch_over_the_ranks() -> None:
    x, y = _rows(11)
    plain = _batches(x, y, 4, seed=2)

    shards = [list(sharded_batches(x, y, 4, torch.Generator().manual_seed(2), rank, 2)) for rank in (0, 1)]

    assert [[len(bx) for bx, _, _ in rank] for rank in shards] == [[2, 2, 2], [2, 2, 1]]
    for step, (global_x, global_y, _) in enumerate(plain):
        (x0, y0, count0), (x1, y1, count1) = shards[0][step], shards[1][step]
        assert count0 == count1 == len(global_x)
        assert torch.equal(torch.cat([x0, x1]), global_x) and torch.equal(torch.cat([y0, y1]), global_y)
