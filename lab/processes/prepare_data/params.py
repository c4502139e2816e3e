"""The `prepare_data` section of params.yaml, and the cross-validation folds the training stages will ask for."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from lib.datasets import MODE_SPLITS, TARGET, SplitMode
from lib.params import ParamsFile, Section

BUILTIN_SOURCE = "sklearn:breast_cancer"
SYNTHETIC_SOURCE = "sklearn:make_classification"
TaskSetting = Literal["auto", "binary", "multiclass", "regression"]


class PrepareParams(Section):
    """The `prepare_data` section of params.yaml."""

    source: str = Field(default=BUILTIN_SOURCE, min_length=1)
    target: str = Field(default=TARGET, min_length=1)
    # auto: regression for a float target with many distinct values, binary for 2 classes, multiclass otherwise.
    task: TaskSetting = "auto"
    # The feature columns to keep; null keeps every column but the target.
    features: list[str] | None = None
    # Which splits to write; a size for a split the mode does not write is ignored, so switching
    # modes is a one-key change (`dvc exp run -S prepare_data.split=train` cannot delete keys).
    split: SplitMode = "train_val_test"
    val_size: float = Field(default=0.2, gt=0, lt=1)
    test_size: float = Field(default=0.2, gt=0, lt=1)
    scale: bool = True
    # Only for source 'sklearn:make_classification': a seeded synthetic table for scale tests.
    synthetic_rows: int = Field(default=10_000, ge=100, le=10_000_000)
    synthetic_features: int = Field(default=30, ge=2, le=1_000)
    # Only for the synthetic source: that many of its features become categorical, and this fraction of all
    # feature cells goes missing (the scale benchmark's realistic table).
    synthetic_categorical: int = Field(default=0, ge=0, le=1_000)
    synthetic_missing: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> Self:
        sizes = self.held_out_sizes()
        if sum(sizes.values()) > 0.8:
            keys = " + ".join(f"{name}_size" for name in sizes)
            raise ValueError(f"{keys} must leave at least 20% for training")
        return self

    def held_out_sizes(self) -> dict[str, float]:
        """The fraction of all rows for each held-out split that `split` writes (val, test or neither)."""
        return {name: getattr(self, f"{name}_size") for name in MODE_SPLITS[self.split] if name != "train"}

    def train_fraction(self) -> float:
        """The fraction of all rows the train split keeps."""
        return 1 - sum(self.held_out_sizes().values())


def cv_folds(params: ParamsFile) -> dict[str, int]:
    """The cross-validation folds each training stage asks for, by key (`section.cv_folds`), when it asks for any.
    Only these keys (dvc.yaml lists them) are read: the training stages validate their own sections."""
    folds = {}
    for section in ("train_standard_classifiers", "train_dnn_pytorch"):
        values = params.data.get(section)
        value = values.get("cv_folds") if isinstance(values, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
            folds[f"{section}.cv_folds"] = value
    return folds
