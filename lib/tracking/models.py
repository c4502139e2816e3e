"""Model logging: a DataFrame signature, an input example and pinned requirements, quickly.

A stage records its model in its run's journal (no MLflow import); the sync logs it with `log_model`."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from lib.tracking.journal import Run


def pip_requirements(packages: Sequence[str]) -> list[str]:
    """Exact `name==version` pins of installed packages, local build labels (`+cpu`) dropped."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in packages]


def log_model(flavour: Any, model: Any, example: pd.DataFrame, output: Any, packages: Sequence[str], name: str) -> None:
    """Log `model` with `flavour` (mlflow.sklearn or mlflow.pytorch) into the active run, pickled (decision
    0002), quietly, with a signature from the DataFrame `example` and the model's `output` for it."""
    from mlflow.models import infer_signature

    logger = logging.getLogger(flavour.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # MLflow's own check of the input example wraps a read-only pandas array in a tensor.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            flavour.log_model(
                model,
                name=name,
                signature=infer_signature(example, output),
                input_example=example,
                serialization_format="pickle",
                pip_requirements=pip_requirements(packages),
            )
    finally:
        logger.setLevel(level)


def log_sklearn_model(run: Run, model: Any, example: pd.DataFrame) -> None:
    """Record a fitted scikit-learn model for `run`, with a DataFrame signature and pinned requirements,
    pickled: MLflow's default, skops, walks all of scikit-learn on import (5 s a run)."""
    packages = ["scikit-learn", "numpy", "pandas", "scipy"]
    run.log_model("sklearn", model, example, model.predict(example), packages)


def log_torch_model(run: Run, network: Any, example: pd.DataFrame) -> None:
    """Record for `run` a torch module that maps a float32 feature frame to outputs, with a DataFrame signature."""
    import torch

    example = example.astype("float32")
    with torch.no_grad():
        output = network(torch.tensor(example.to_numpy())).numpy()
    run.log_model("pytorch", network, example, output, ["torch", "numpy", "pandas"])
