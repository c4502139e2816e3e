"""The network of the `train_dnn_pytorch` stage, chosen by `architecture`; `lib.training` trains it.

An architecture is a function of the feature count and the params that returns an untrained network
ending in one logit. To add one, write it here, list it in `ARCHITECTURES` and in `params.Architecture`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lab.processes.train_dnn_pytorch.params import NetworkParams
from lib.datasets import Splits
from lib.training.loop import TrainResult, fit


def mlp(n_features: int, params: NetworkParams) -> nn.Sequential:
    """Linear -> ReLU -> Dropout blocks ending in one logit (a plain `nn.Sequential`: it loads without this module)."""
    layers: list[nn.Module] = []
    width = n_features
    for hidden in params.hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(params.dropout)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


ARCHITECTURES: dict[str, Callable[[int, NetworkParams], nn.Module]] = {"mlp": mlp}


def build_network(n_features: int, params: NetworkParams) -> nn.Module:
    """The untrained network `params.architecture` names, for `n_features` inputs."""
    return ARCHITECTURES[params.architecture](n_features, params)


def train(params: NetworkParams, splits: Splits, device: torch.device, seed: int, *args: Any, **kw: Any) -> TrainResult:
    """`lib.training.loop.fit` with the network `params` choose (what tuning and the benchmark train)."""
    return fit(params, partial(build_network, params=params), splits, device, seed, *args, **kw)


def saved_network(network: nn.Module, params: NetworkParams, features: list[str]) -> dict[str, Any]:
    """What `models/dnn.pt` holds: the weights, and what `load_network` needs to rebuild the network."""
    shape = {"hidden_layers": list(params.hidden_layers), "dropout": params.dropout}
    return {"state_dict": network.state_dict(), **shape, "features": features}


def load_network(path: Path) -> tuple[nn.Module, list[str]]:
    """The trained network in `path` (written from `saved_network`), in eval mode, and its feature columns."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    params = NetworkParams(hidden_layers=saved["hidden_layers"], dropout=saved["dropout"])
    network = build_network(len(saved["features"]), params)
    network.load_state_dict(saved["state_dict"])
    return network.eval(), saved["features"]
