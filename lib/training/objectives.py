"""What a network is trained to do for each task: its output width, loss, scored outputs and served output layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lib.datasets import BINARY, Schema

LOSSES = {  # each task's loss, on raw outputs
    "binary": nn.functional.binary_cross_entropy_with_logits,
    "multiclass": nn.functional.cross_entropy,
    "regression": nn.functional.mse_loss,
}


@dataclass(frozen=True)
class Objective:
    """A task's training objective; `target_mean` and `target_scale` standardise a regression target, so that
    one learning rate suits any target's scale."""

    schema: Schema = BINARY
    target_mean: float = 0.0
    target_scale: float = 1.0

    @classmethod
    def for_labels(cls, schema: Schema, train_labels: np.ndarray) -> Objective:
        """The objective for `schema`'s task, standardising a regression target by `train_labels`."""
        if schema.is_classification:
            return cls(schema)
        labels = np.asarray(train_labels, dtype=np.float64)
        return cls(schema, float(labels.mean()), float(labels.std()) or 1.0)

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def n_outputs(self) -> int:
        """The network's output width: a logit per class for multiclass, else one."""
        return self.schema.n_classes if self.task == "multiclass" else 1

    def targets(self, labels: np.ndarray, device: torch.device) -> torch.Tensor:
        """Labels as the loss takes them: class codes (multiclass), else a float32 column (standardised)."""
        if self.task == "multiclass":
            return torch.tensor(np.asarray(labels, dtype=np.int64), device=device)
        values = (np.asarray(labels, dtype=np.float64) - self.target_mean) / self.target_scale
        return torch.tensor(values.astype("float32"), device=device).reshape(-1, 1)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss summed over the batch (float32 whatever the autocast dtype of `outputs`)."""
        return LOSSES[self.task](outputs.float(), targets, reduction="sum")

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """How many rows of the batch are classified right (0 for regression), on the device."""
        if self.task == "binary":
            return ((outputs >= 0).float() == targets).sum()
        if self.task == "multiclass":
            return (outputs.argmax(dim=1) == targets).sum()
        return torch.zeros((), device=outputs.device)

    def scored(self, outputs: torch.Tensor) -> np.ndarray:
        """Raw outputs as `lib.evaluation.task_metrics` scores them: probabilities, or values in target units."""
        outputs = outputs.float()
        if self.task == "binary":
            return torch.sigmoid(outputs).squeeze(1).cpu().numpy().astype(np.float64)
        if self.task == "multiclass":
            return torch.softmax(outputs, dim=1).cpu().numpy().astype(np.float64)
        values = outputs.squeeze(1).cpu().numpy().astype(np.float64)
        return values * self.target_scale + self.target_mean

    def loss_of_scored(self, metrics: dict[str, float], prefix: str) -> float:
        """The training loss on a scored split, from its metrics (log loss; MSE in standardised units)."""
        if self.schema.is_classification:
            return metrics[f"{prefix}/log_loss"]
        return round((metrics[f"{prefix}/rmse"] / self.target_scale) ** 2, 6)

    def output_layer(self) -> nn.Module:
        """The plain torch layer that turns raw outputs into served ones (the MLflow model ends in it)."""
        if self.task == "binary":
            return nn.Sigmoid()
        if self.task == "multiclass":
            return nn.Softmax(dim=1)
        layer = nn.Linear(1, 1)
        with torch.no_grad():
            layer.weight.fill_(self.target_scale)
            layer.bias.fill_(self.target_mean)
        return layer.requires_grad_(False)


BINARY_OBJECTIVE = Objective()
