"""Split a validated table into the splits of `prepare_data.split`, stratified for classification only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lib.datasets import Split, SplitMode, Splits


def split_dataset(
    features: pd.DataFrame,
    labels: np.ndarray,
    val_size: float,
    test_size: float,
    seed: int,
    mode: SplitMode = "train_val_test",
    stratify: bool = True,
) -> Splits:
    """Split into the splits of `mode` (`train`: every row, in order); sizes are fractions of all rows, and with
    `stratify` each split keeps the class proportions of the whole table."""
    from sklearn.model_selection import train_test_split

    if mode == "train":
        return {"train": Split(features, labels)}
    rest_x, test_x, rest_y, test_y = train_test_split(
        features, labels, test_size=test_size, stratify=labels if stratify else None, random_state=seed
    )
    if mode == "train_test":
        return {"train": Split(rest_x, rest_y), "test": Split(test_x, test_y)}
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=val_size / (1 - test_size), stratify=rest_y if stratify else None, random_state=seed
    )
    return {"train": Split(train_x, train_y), "val": Split(val_x, val_y), "test": Split(test_x, test_y)}
