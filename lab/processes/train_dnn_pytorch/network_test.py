"""network.py and params.py: the params, the MLP's shape, training it, and reading `models/dnn.pt` back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lab.processes.train_dnn_pytorch.network import ARCHITECTURES, build_network, load_network, saved_network, train
from lab.processes.train_dnn_pytorch.params import NetworkParams
from lib.datasets import Split, Splits
from lib.errors import ReprolabError
from lib.params import ParamsError, ParamsFile
from lib.training.checkpoints import CheckpointStore
from lib.training.cross_validation import cross_validate_and_fit

pytestmark = pytest.mark.unittest

STAGE = "train_dnn_pytorch"
CPU = torch.device("cpu")
WriteParams = Callable[[dict[str, Any]], ParamsFile]


# --- params -------------------------------------------------------------------------------------


def test_params_defaults_are_valid(params_file: WriteParams) -> None:
    params = params_file({STAGE: {}}).section(STAGE, NetworkParams)

    assert (params.architecture, params.hidden_layers) == ("mlp", [32, 16])
    assert (params.device, params.selection_metric) == ("auto", "loss")
    assert (params.lr_schedule, params.mixed_precision, params.cv_folds) == ("constant", False, 0)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"architecture": "resnet"}, "architecture"),
        ({"hidden_layers": []}, "hidden_layers"),
        ({"hidden_layers": [8, 0]}, "hidden_layers.1"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"lr": 0}, "lr"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 2.5}, "epochs"),
        ({"device": "tpu"}, "device"),
        ({"selection_metric": "f1"}, "selection_metric"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"mixed_precision": "yes"}, "mixed_precision"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"cv_folds": -2}, "cv_folds"),
    ],
)
def test_params_reject_a_bad_value_naming_the_key(params_file: WriteParams, values: dict[str, Any], key: str) -> None:
    with pytest.raises(ParamsError) as caught:
        params_file({STAGE: values}).section(STAGE, NetworkParams)

    assert f"{STAGE}.{key}: " in str(caught.value)


def test_params_reject_an_unknown_key(params_file: WriteParams) -> None:
    with pytest.raises(ParamsError) as caught:
        params_file({STAGE: {"learning_rate": 0.1}}).section(STAGE, NetworkParams)

    assert str(caught.value).endswith(f"{STAGE}.learning_rate: unknown key")


def test_params_are_read_without_importing_torch() -> None:
    code = "import sys, lab.processes.train_dnn_pytorch.params; assert 'torch' not in sys.modules"

    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_every_architecture_in_the_registry_is_accepted_and_builds(params_file: WriteParams) -> None:
    for name in ARCHITECTURES:
        params = params_file({STAGE: {"architecture": name}}).section(STAGE, NetworkParams)

        assert build_network(6, 3, params)(torch.zeros(2, 6)).shape == (2, 3)


def test_an_unknown_architecture_names_the_registry() -> None:
    with pytest.raises(ValueError, match=r"'resnet' is not an architecture in network.py \(one of mlp\)"):
        NetworkParams(architecture="resnet")


# --- the network ----------------------------------------------------------------------------------


def test_build_network_stacks_linear_relu_dropout_blocks_and_ends_in_one_logit() -> None:
    network = build_network(6, 1, NetworkParams(hidden_layers=[8, 4], dropout=0.25))

    assert type(network) is nn.Sequential
    assert [type(layer) for layer in network] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    linears = [layer for layer in network if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(6, 8), (8, 4), (4, 1)]
    assert all(layer.p == 0.25 for layer in network if isinstance(layer, nn.Dropout))
    assert network(torch.zeros(5, 6)).shape == (5, 1)


def test_the_saved_network_loads_back_with_the_same_outputs(splits: Splits, tmp_path: Path) -> None:
    params = NetworkParams(hidden_layers=[8], epochs=3, batch_size=32, device="cpu")
    result = train(params, splits, CPU, 0, progress=False)
    features = list(splits["train"].features.columns)
    torch.save(saved_network(result.network, params, features, 1), tmp_path / "dnn.pt")

    network, columns = load_network(tmp_path / "dnn.pt")

    assert columns == features and not network.training
    x = torch.tensor(splits["test"].features.to_numpy(dtype="float32"))
    with torch.no_grad():
        assert torch.equal(network(x), result.network(x))
    assert result.history["val/loss"].iloc[-1] < result.history["val/loss"].iloc[0]


def test_errors_about_training_keys_name_the_stages_section(tmp_path: Path) -> None:
    few = Split(pd.DataFrame({"f0": np.arange(10, dtype=np.float64)}), np.array([0] * 8 + [1] * 2))
    build = partial(build_network, params=NetworkParams())

    with pytest.raises(ReprolabError, match=r"^train_dnn_pytorch.cv_folds: 3 folds need .* the smaller class has 2$"):
        cross_validate_and_fit(NetworkParams(cv_folds=3), build, {"train": few}, CPU, 0, CheckpointStore(tmp_path, "k"))
