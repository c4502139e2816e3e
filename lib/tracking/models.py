"""Model logging: a DataFrame signature, an input example and pinned requirements, quickly."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def pip_requirements(packages: Sequence[str]) -> list[str]:
    """Exact `name==version` pins of installed packages, local build labels (`+cpu`) dropped."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in packages]


@contextmanager
def _pickle_warning_silenced(flavour: str) -> Iterator[None]:
    """Silence MLflow's per-save pickle warning for `flavour` (decision 0002 records the choice)."""
    logger = logging.getLogger(f"mlflow.{flavour}")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def log_sklearn_model(model: Any, example: pd.DataFrame, name: str = "model") -> str:
    """Log a fitted scikit-learn model with a DataFrame signature and pinned requirements.

    Pickled rather than MLflow's default skops: importing skops walks all of scikit-learn (5 s a run).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    with _pickle_warning_silenced("sklearn"):
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
            pip_requirements=pip_requirements(["scikit-learn", "numpy", "pandas", "scipy"]),
        )
    return info.model_uri


def log_torch_model(network: Any, example: pd.DataFrame, name: str = "model") -> str:
    """Log a torch module that maps a float32 feature frame to outputs, with a DataFrame signature."""
    import warnings

    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    example = example.astype("float32")
    with torch.no_grad():
        output = network(torch.tensor(example.to_numpy(dtype=np.float32))).numpy()
    with _pickle_warning_silenced("pytorch"), warnings.catch_warnings():
        # MLflow's own check of the input example wraps a read-only pandas array in a tensor.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        info = mlflow.pytorch.log_model(
            network,
            name=name,
            signature=infer_signature(example, output),
            input_example=example,
            serialization_format="pickle",
            pip_requirements=pip_requirements(["torch", "numpy", "pandas"]),
        )
    return info.model_uri
