"""The `train_dnn_pytorch` section of params.yaml (read without importing torch)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from lib.training.params import TrainingParams

# The names `network.ARCHITECTURES` builds.
Architecture = Literal["mlp"]


class NetworkParams(TrainingParams):
    """The network's shape, and how it is trained (`TrainingParams`)."""

    section: ClassVar[str] = "train_dnn_pytorch"
    architecture: Architecture = "mlp"
    hidden_layers: list[Annotated[int, Field(ge=1)]] = Field(default=[32, 16], min_length=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
