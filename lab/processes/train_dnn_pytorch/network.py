"""The network of the `train_dnn_pytorch` stage: every architecture the `architecture` key can name.

How to add one is in lib/training/README.md; torch is imported inside the functions, so that the params
model can read `ARCHITECTURES` without it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lab.processes.train_dnn_pytorch.params import NetworkParams
    from lib.datasets import Splits
    from lib.training.loop import TrainResult


def mlp(n_inputs: int, n_outputs: int, params: NetworkParams) -> nn.Sequential:
    """Linear -> ReLU -> Dropout blocks, then a linear output layer (a plain `nn.Sequential`: it loads without
    this module)."""
    from torch import nn

    layers: list[nn.Module] = []
    width = n_inputs
    for hidden in params.hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(params.dropout)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, n_outputs))


ARCHITECTURES: dict[str, Callable[[int, int, NetworkParams], nn.Module]] = {"mlp": mlp}


def build_network(n_inputs: int, n_outputs: int, params: NetworkParams) -> nn.Module:
    """The untrained network `params.architecture` names, for `n_inputs` features and `n_outputs` outputs."""
    return ARCHITECTURES[params.architecture](n_inputs, n_outputs, params)


def train(params: NetworkParams, splits: Splits, device: torch.device, seed: int, *args: Any, **kw: Any) -> TrainResult:
    """`lib.training.loop.fit` with the network `params` choose (what tuning and the benchmark train)."""
    from lib.training.loop import fit

    return fit(params, partial(build_network, params=params), splits, device, seed, *args, **kw)


def saved_network(network: nn.Module, params: NetworkParams, features: list[str], n_outputs: int) -> dict[str, Any]:
    """What `models/dnn.pt` holds: the weights, and what `load_network` needs to rebuild the network."""
    return {
        "state_dict": network.state_dict(),
        "params": params.model_dump(),
        "n_outputs": n_outputs,
        "features": features,
    }


def load_network(path: Path) -> tuple[nn.Module, list[str]]:
    """The trained network in `path` (written from `saved_network`), in eval mode, and its feature columns."""
    import torch

    from lab.processes.train_dnn_pytorch.params import NetworkParams

    saved = torch.load(path, map_location="cpu", weights_only=True)
    network = build_network(len(saved["features"]), saved["n_outputs"], NetworkParams(**saved["params"]))
    network.load_state_dict(saved["state_dict"])
    return network.eval(), saved["features"]
