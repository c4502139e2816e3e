"""The `train_dnn_pytorch` section of params.yaml (read without importing torch)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator

from lab.processes.train_dnn_pytorch.network import ARCHITECTURES
from lib.training.params import TrainingParams


class NetworkParams(TrainingParams):
    """The network's shape, and how it is trained (`TrainingParams`)."""

    section: ClassVar[str] = "train_dnn_pytorch"
    architecture: str = "mlp"  # a name in network.ARCHITECTURES
    hidden_layers: list[Annotated[int, Field(ge=1)]] = Field(default=[32, 16], min_length=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)

    @field_validator("architecture")
    @classmethod
    def _architecture_known(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"'{value}' is not an architecture in network.py (one of {', '.join(ARCHITECTURES)})")
        return value
