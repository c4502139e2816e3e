"""Standard scikit-learn classifiers: cross-validate each on train, score on val, keep the best, test it once."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator
from sklearn.base import ClassifierMixin, clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold

from lib.datasets import Split, Splits
from lib.errors import ReprolabError
from lib.evaluation import METRICS, binary_metrics
from lib.params import Section

ClassifierName = Literal[
    "logistic_regression", "naive_bayes", "knn", "random_forest", "linear_svm", "gradient_boosting"
]
SelectionMetric = Literal["accuracy", "balanced_accuracy", "f1", "roc_auc"]
HyperValue = StrictBool | StrictInt | StrictFloat | StrictStr | None


class ClassifiersParams(Section):
    """The `train_standard_classifiers` section of params.yaml."""

    models: list[ClassifierName] = Field(min_length=1)
    cv_folds: int = Field(default=5, ge=2, le=20)
    selection_metric: SelectionMetric = "roc_auc"
    hyperparams: dict[ClassifierName, dict[str, HyperValue]] = Field(default_factory=dict)
    # Classifiers whose cost grows faster than the data are skipped above this many train rows.
    max_train_rows: dict[ClassifierName, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _models_unique(self) -> Self:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models: each classifier may be listed once")
        return self


@dataclass(frozen=True)
class Candidate:
    """One classifier's scores: cross-validation on train and the refit model on val."""

    name: str
    model: ClassifierMixin
    cv_mean: float
    cv_std: float
    val_metrics: dict[str, float]  # empty without a val split
    val_probability: np.ndarray | None


@dataclass(frozen=True)
class Selection:
    """Every candidate, the chosen one, the score that chose it, and its single evaluation on test."""

    candidates: list[Candidate]
    best: Candidate
    selected_by: str  # `val/<metric>`, or `cv/<metric>_mean` without a val split
    test_metrics: dict[str, float]  # empty without a test split
    test_probability: np.ndarray | None


def build_classifier(name: ClassifierName, seed: int, overrides: dict[str, Any]) -> ClassifierMixin:
    """A fresh, seeded estimator for `name` with params overrides applied."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import LinearSVC

    defaults: dict[str, ClassifierMixin] = {
        "logistic_regression": LogisticRegression(max_iter=1000, random_state=seed),
        "naive_bayes": GaussianNB(),
        "knn": KNeighborsClassifier(),
        "random_forest": RandomForestClassifier(n_estimators=100, random_state=seed),
        "linear_svm": LinearSVC(random_state=seed),
        "gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
    }
    model = defaults[name]
    unknown = sorted(set(overrides) - set(model.get_params()))
    if unknown:
        raise ReprolabError(
            f"train_standard_classifiers.hyperparams.{name}.{unknown[0]}: not a parameter of {type(model).__name__}"
        )
    model.set_params(**overrides)
    if name == "linear_svm":  # an SVM gives margins; calibration turns them into probabilities
        return CalibratedClassifierCV(model, ensemble=False)
    return model


def score_candidate(
    name: ClassifierName,
    model: ClassifierMixin,
    train: Split,
    val: Split | None,
    folds: int,
    metric: SelectionMetric,
    seed: int,
) -> Candidate:
    """Cross-validate `model` on train, refit it on all of train, and score it on val (if there is one).

    Each fold is announced on stderr (`random_forest: fold 3/5`) before it is fitted: the scores are
    `cross_val_score`'s, fold by fold.
    """
    train_x, train_y = train
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scorer = get_scorer(metric)
    cv_scores = []
    try:
        for fold, (fit, held) in enumerate(splitter.split(train_x, train_y), start=1):
            print(f"train_standard_classifiers: {name}: fold {fold}/{folds}", file=sys.stderr, flush=True)
            fold_model = clone(model).fit(train_x.iloc[fit], train_y[fit])
            cv_scores.append(scorer(fold_model, train_x.iloc[held], train_y[held]))
        fitted = clone(model).fit(train_x, train_y)
    except ValueError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ReprolabError(f"train_standard_classifiers.hyperparams.{name}: {first_line}") from None
    probability = None if val is None else fitted.predict_proba(val.features)[:, 1]
    return Candidate(
        name=name,
        model=fitted,
        cv_mean=round(float(np.mean(cv_scores)), 6),
        cv_std=round(float(np.std(cv_scores)), 6),
        val_metrics={} if val is None else binary_metrics(val.labels, probability, "val"),
        val_probability=probability,
    )


def select_best(candidates: list[Candidate], metric: SelectionMetric) -> Candidate:
    """The highest `val/<metric>` (without val: CV mean); ties go to the higher CV mean, then to list order."""
    return max(candidates, key=lambda c: (c.val_metrics.get(f"val/{metric}", c.cv_mean), c.cv_mean))  # first of equals


def fitting_models(params: ClassifiersParams, train_rows: int) -> list[ClassifierName]:
    """The models in params whose `max_train_rows` admits `train_rows`; each skipped one is logged."""
    kept = []
    for name in params.models:
        limit = params.max_train_rows.get(name, train_rows)
        if train_rows > limit:
            print(
                f"train_standard_classifiers: skipping {name}: {train_rows} train rows is above "
                f"max_train_rows.{name} = {limit}",
                file=sys.stderr,
            )
        else:
            kept.append(name)
    if not kept:
        raise ReprolabError(
            f"train_standard_classifiers.max_train_rows: every model is skipped at {train_rows} train rows"
        )
    return kept


def train_and_select(params: ClassifiersParams, splits: Splits, seed: int) -> Selection:
    """Score every classifier in params, pick the best, and evaluate it on test (when there is a test split)."""
    for name, overrides in params.hyperparams.items():  # a typo under an unlisted model is still a typo
        build_classifier(name, seed, overrides)
    metric = params.selection_metric
    candidates = []
    for name in fitting_models(params, len(splits["train"].labels)):
        model = build_classifier(name, seed, params.hyperparams.get(name, {}))
        candidates.append(
            score_candidate(name, model, splits["train"], splits.get("val"), params.cv_folds, metric, seed)
        )
    best = select_best(candidates, metric)
    selected_by = f"val/{metric}" if "val" in splits else f"cv/{metric}_mean"
    if "test" not in splits:
        return Selection(candidates, best, selected_by, {}, None)
    test_x, test_y = splits["test"]
    test_probability = best.model.predict_proba(test_x)[:, 1]
    return Selection(candidates, best, selected_by, binary_metrics(test_y, test_probability, "test"), test_probability)


def comparison_table(selection: Selection, metric: SelectionMetric) -> pd.DataFrame:
    """One row per classifier: CV and val scores, and whether it was selected."""
    # Without a val split the val columns are there, empty: one schema for `dvc plots diff` across modes.
    no_val = dict.fromkeys((f"val/{name}" for name in METRICS), float("nan"))
    rows = [
        {
            "classifier": c.name,
            f"cv/{metric}_mean": c.cv_mean,
            f"cv/{metric}_std": c.cv_std,
            **(c.val_metrics or no_val),
            "selected": int(c is selection.best),
        }
        for c in selection.candidates
    ]
    return pd.DataFrame(rows)


def stage_metrics(selection: Selection, metric: SelectionMetric) -> dict[str, Any]:
    """The metrics file: the selected classifier, the score that chose it, its CV, val and test scores."""
    best = selection.best
    return {
        "selected": best.name,
        "selected_by": selection.selected_by,
        f"cv/{metric}_mean": best.cv_mean,
        f"cv/{metric}_std": best.cv_std,
        **best.val_metrics,
        **selection.test_metrics,
    }
