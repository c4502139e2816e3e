"""Standard scikit-learn models, classifiers or regressors as the task needs: cross-validate each on train,
score on val, keep the best, test it once."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator
from sklearn import ensemble, linear_model, naive_bayes, neighbors, svm
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold

from lib.datasets import BINARY, Schema, Split, Splits
from lib.errors import ReprolabError
from lib.evaluation import GREATER_IS_BETTER, TASK_METRICS, selection_metric, task_metrics
from lib.params import Section

# What each model name builds: (classifier, regressor), None where it suits only the other kind of task. Every
# estimator that takes a random_state gets the seed.
ESTIMATORS: dict[str, tuple[Any, Any]] = {
    "logistic_regression": (partial(linear_model.LogisticRegression, max_iter=1000), None),
    "naive_bayes": (naive_bayes.GaussianNB, None),
    "linear_regression": (None, linear_model.LinearRegression),
    "ridge": (None, linear_model.Ridge),
    "knn": (neighbors.KNeighborsClassifier, neighbors.KNeighborsRegressor),
    "random_forest": (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor),
    "linear_svm": (svm.LinearSVC, svm.LinearSVR),
    "gradient_boosting": (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor),
}
ModelName = Literal[tuple(ESTIMATORS)]
HyperValue = StrictBool | StrictInt | StrictFloat | StrictStr | None
SelectionMetric = Literal[
    "auto", "accuracy", "balanced_accuracy", "f1", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2"
]
# scikit-learn's scorer where its name is not the metric's; a `neg_` scorer's values are negated back.
SCORERS = {"log_loss": "neg_log_loss", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}


class ClassifiersParams(Section):
    """The `train_standard_classifiers` section of params.yaml."""

    models: list[ModelName] = Field(min_length=1)
    cv_folds: int = Field(default=5, ge=2, le=20)
    # auto: roc_auc (binary), f1_macro (multiclass), rmse (regression)
    selection_metric: SelectionMetric = "auto"
    hyperparams: dict[ModelName, dict[str, HyperValue]] = Field(default_factory=dict)
    # Models whose cost grows faster than the data are skipped above this many train rows.
    max_train_rows: dict[ModelName, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _models_unique(self) -> Self:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models: each classifier may be listed once")
        return self


@dataclass(frozen=True)
class Candidate:
    """One model's scores: cross-validation on train and the refit model on val (its output: `model_output`)."""

    name: str
    model: BaseEstimator
    cv_mean: float
    cv_std: float
    val_metrics: dict[str, float]  # empty without a val split
    val_output: np.ndarray | None


@dataclass(frozen=True)
class Selection:
    """Every candidate, the chosen one, the score that chose it, and its single evaluation on test."""

    candidates: list[Candidate]
    best: Candidate
    task: str
    metric: str  # the selection metric, `auto` resolved
    selected_by: str  # `val/<metric>`, or `cv/<metric>_mean` without a val split
    test_metrics: dict[str, float]  # empty without a test split
    test_output: np.ndarray | None


def build_model(name: ModelName, seed: int, overrides: dict[str, Any], task: str = "binary") -> BaseEstimator:
    """A fresh, seeded estimator of `name` for `task` with params overrides applied; for a model without one
    for `task`, the other kind's (so that its overrides are checked all the same)."""
    kinds = ESTIMATORS[name]
    model = (kinds[task == "regression"] or kinds[task != "regression"])()
    if "random_state" in model.get_params():
        model.set_params(random_state=seed)
    unknown = sorted(set(overrides) - set(model.get_params()))
    if unknown:
        raise ReprolabError(
            f"train_standard_classifiers.hyperparams.{name}.{unknown[0]}: not a parameter of {type(model).__name__}"
        )
    model.set_params(**overrides)
    if isinstance(model, svm.LinearSVC):  # an SVM gives margins; calibration turns them into probabilities
        return CalibratedClassifierCV(model, ensemble=False)
    return model


def model_output(model: BaseEstimator, features: pd.DataFrame, schema: Schema) -> np.ndarray:
    """What the task's metrics score: class-1 probabilities, a probability per class code, or predictions."""
    if not schema.is_classification:
        return model.predict(features).astype(np.float64)
    probability = model.predict_proba(features)
    if schema.task == "binary":
        return probability[:, 1]
    table = np.zeros((len(features), schema.n_classes))
    table[:, model.classes_] = probability  # a class missing from train keeps probability 0
    return table


def score_candidate(
    name: ModelName,
    model: BaseEstimator,
    train: Split,
    val: Split | None,
    folds: int,
    metric: str,
    seed: int,
    schema: Schema = BINARY,
) -> Candidate:
    """Cross-validate `model` on train (each fold announced on stderr), refit it on all of train, score it on val.
    `metric` is resolved (not `auto`); the CV scores are its values, sign included."""
    train_x, train_y = train
    scoring = "roc_auc_ovr" if metric == "roc_auc" and schema.task == "multiclass" else SCORERS.get(metric, metric)
    scorer, sign = get_scorer(scoring), -1 if scoring.startswith("neg_") else 1
    splitter = (StratifiedKFold if schema.is_classification else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    cv_scores = []
    try:
        for fold, (fit, held) in enumerate(splitter.split(train_x, train_y), start=1):
            print(f"train_standard_classifiers: {name}: fold {fold}/{folds}", file=sys.stderr, flush=True)
            fold_model = clone(model).fit(train_x.iloc[fit], train_y[fit])
            cv_scores.append(sign * scorer(fold_model, train_x.iloc[held], train_y[held]))
        fitted = clone(model).fit(train_x, train_y)
    except ValueError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise ReprolabError(f"train_standard_classifiers.hyperparams.{name}: {first_line}") from None
    output = None if val is None else model_output(fitted, val.features, schema)
    return Candidate(
        name=name,
        model=fitted,
        cv_mean=round(float(np.mean(cv_scores)), 6),
        cv_std=round(float(np.std(cv_scores)), 6),
        val_metrics={} if val is None else task_metrics(schema.task, val.labels, output, "val"),
        val_output=output,
    )


def select_best(candidates: list[Candidate], metric: str) -> Candidate:
    """The best `val/<metric>` (without val: CV mean); ties go to the better CV mean, then to list order."""
    sign = 1 if GREATER_IS_BETTER[metric] else -1
    return max(candidates, key=lambda c: (sign * c.val_metrics.get(f"val/{metric}", c.cv_mean), sign * c.cv_mean))


def fitting_models(params: ClassifiersParams, train_rows: int, task: str = "binary") -> list[ModelName]:
    """The models in params that suit `task` and whose `max_train_rows` admits `train_rows`; logs each skipped."""
    kind = "regressor" if task == "regression" else "classifier"
    suited = [name for name, kinds in ESTIMATORS.items() if kinds[task == "regression"]]
    kept = []
    for name in params.models:
        limit = params.max_train_rows.get(name, train_rows)
        if name not in suited:
            why = f"it has no {kind} (task {task})"
        elif train_rows > limit:
            why = f"{train_rows} train rows is above max_train_rows.{name} = {limit}"
        else:
            kept.append(name)
            continue
        print(f"train_standard_classifiers: skipping {name}: {why}", file=sys.stderr)
    if not set(suited) & set(params.models):
        raise ReprolabError(
            f"train_standard_classifiers.models: none is a {kind} for task {task}; list some of {', '.join(suited)}"
        )
    if not kept:
        raise ReprolabError(
            f"train_standard_classifiers.max_train_rows: every model is skipped at {train_rows} train rows"
        )
    return kept


def train_and_select(params: ClassifiersParams, splits: Splits, seed: int, schema: Schema = BINARY) -> Selection:
    """Score every model in params that suits the task, pick the best, and evaluate it on test (if any)."""
    for name, overrides in params.hyperparams.items():  # a typo under an unlisted model is still a typo
        build_model(name, seed, overrides, schema.task)
    metric = selection_metric(schema.task, params.selection_metric, "train_standard_classifiers.selection_metric")
    candidates = []
    for name in fitting_models(params, len(splits["train"].labels), schema.task):
        model = build_model(name, seed, params.hyperparams.get(name, {}), schema.task)
        candidates.append(
            score_candidate(name, model, splits["train"], splits.get("val"), params.cv_folds, metric, seed, schema)
        )
    best = select_best(candidates, metric)
    selected_by = f"val/{metric}" if "val" in splits else f"cv/{metric}_mean"
    test = splits.get("test")
    output = None if test is None else model_output(best.model, test.features, schema)
    test_metrics = {} if test is None else task_metrics(schema.task, test.labels, output, "test")
    return Selection(candidates, best, schema.task, metric, selected_by, test_metrics, output)


def comparison_table(selection: Selection) -> pd.DataFrame:
    """One row per model: CV and val scores, and whether it was selected."""
    metric = selection.metric
    # Without a val split the val columns are there, empty: one schema for `dvc plots diff` across modes.
    no_val = dict.fromkeys((f"val/{name}" for name in TASK_METRICS[selection.task]), float("nan"))
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


def stage_metrics(selection: Selection) -> dict[str, Any]:
    """The metrics file: the selected model, the score that chose it, its CV, val and test scores."""
    best, metric = selection.best, selection.metric
    return {
        "selected": best.name,
        "selected_by": selection.selected_by,
        f"cv/{metric}_mean": best.cv_mean,
        f"cv/{metric}_std": best.cv_std,
        **best.val_metrics,
        **selection.test_metrics,
    }
