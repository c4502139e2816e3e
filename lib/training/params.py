"""How a network is trained: the keys every architecture shares in its params section (torch-free)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from lib.params import Section


class TrainingParams(Section):
    """Optimiser, schedule, epochs, device and selection: a stage's params model adds its network's keys."""

    section: ClassVar[str] = "training"  # the params.yaml section, named in errors about these keys
    lr: float = Field(default=1e-3, gt=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=32, ge=1)
    epochs: int = Field(default=50, ge=1)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = False
    deterministic: bool = False
    # The val metric that picks the kept epoch; it must suit the data's task (auto: roc_auc, f1_macro or rmse).
    selection_metric: Literal[
        "auto", "loss", "accuracy", "balanced_accuracy", "roc_auc", "log_loss", "f1_macro", "rmse", "mae", "r2"
    ] = "loss"
    cv_folds: int = Field(default=0, ge=0)

    @field_validator("cv_folds")
    @classmethod
    def _folds_off_or_several(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (off) or at least 2")
        return value
