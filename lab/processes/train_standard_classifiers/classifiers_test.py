"""classifiers.py: params, seeded estimators, cross-validated scoring, selection on val, the reports."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.base import is_classifier, is_regressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from lab.processes.train_standard_classifiers.classifiers import (
    ESTIMATORS,
    Candidate,
    ClassifiersParams,
    ModelName,
    build_model,
    comparison_table,
    fitting_models,
    score_candidate,
    select_best,
    stage_metrics,
    train_and_select,
)
from lib.datasets import Splits
from lib.errors import ReprolabError
from lib.evaluation import METRICS, TASK_METRICS, binary_metrics
from lib.params import ParamsError, ParamsFile
from tests.data import MULTICLASS, REGRESSION

pytestmark = pytest.mark.unittest

STAGE = "train_standard_classifiers"
FAST_MODELS = ["logistic_regression", "naive_bayes", "knn", "random_forest"]
FAST_HYPERPARAMS = {"random_forest": {"n_estimators": 10, "max_depth": 4}}
WriteParams = Callable[[dict[str, Any]], ParamsFile]

# What each name builds, and whether it takes a random_state (for linear_svm: the wrapped LinearSVC's).
EXPECTED: dict[str, tuple[type, bool]] = {
    "logistic_regression": (LogisticRegression, True),
    "naive_bayes": (GaussianNB, False),
    "knn": (KNeighborsClassifier, False),
    "random_forest": (RandomForestClassifier, True),
    "linear_svm": (LinearSVC, True),
    "gradient_boosting": (HistGradientBoostingClassifier, True),
}


def _fast_params(**overrides: Any) -> ClassifiersParams:
    values: dict[str, Any] = {"models": FAST_MODELS, "cv_folds": 3, "hyperparams": FAST_HYPERPARAMS}
    return ClassifiersParams(**{**values, **overrides})


def _params_error(params_file: WriteParams, values: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as caught:
        params_file({STAGE: values}).section(STAGE, ClassifiersParams)
    return str(caught.value)


def _candidate(name: str, val_score: float, cv_mean: float) -> Candidate:
    return Candidate(
        name=name,
        model=GaussianNB(),
        cv_mean=cv_mean,
        cv_std=0.0,
        val_metrics={"val/roc_auc": val_score, "val/accuracy": 1 - val_score},
        val_output=np.zeros(0),
    )


# --- params -------------------------------------------------------------------------------------


def test_params_read_a_full_section(params_file: WriteParams) -> None:
    section = {
        "models": ["knn", "linear_svm"],
        "cv_folds": 4,
        "selection_metric": "f1",
        "hyperparams": {"knn": {"n_neighbors": 3, "weights": "distance"}, "linear_svm": {"C": 0.5}},
        "max_train_rows": {"knn": 50_000},
    }

    params = params_file({STAGE: section}).section(STAGE, ClassifiersParams)

    assert params.model_dump() == section


def test_params_reject_a_model_listed_twice(params_file: WriteParams) -> None:
    message = _params_error(params_file, {"models": ["knn", "naive_bayes", "knn"]})

    assert f"{STAGE}: " in message
    assert "models: each classifier may be listed once" in message


def test_params_reject_an_unknown_classifier_naming_its_position(params_file: WriteParams) -> None:
    message = _params_error(params_file, {"models": ["knn", "svm"]})

    assert f"{STAGE}.models.1: input should be 'logistic_regression'" in message
    assert message.endswith("got 'svm'")


def test_params_reject_hyperparams_for_an_unknown_classifier(params_file: WriteParams) -> None:
    message = _params_error(params_file, {"models": ["knn"], "hyperparams": {"svm": {"C": 1.0}}})

    assert f"{STAGE}.hyperparams.svm" in message


def test_params_reject_no_models(params_file: WriteParams) -> None:
    assert f"{STAGE}.models: " in _params_error(params_file, {"models": []})


@pytest.mark.parametrize(("folds", "accepted"), [(1, False), (2, True), (20, True), (21, False)])
def test_params_bound_cv_folds(params_file: WriteParams, folds: int, accepted: bool) -> None:
    section = {"models": ["knn"], "cv_folds": folds}

    if accepted:
        assert params_file({STAGE: section}).section(STAGE, ClassifiersParams).cv_folds == folds
    else:
        assert f"{STAGE}.cv_folds: " in _params_error(params_file, section)


# --- build_model ---------------------------------------------------------------------------------


def test_expectations_cover_every_classifier_name() -> None:
    assert set(EXPECTED) == {name for name, (classifier, _) in ESTIMATORS.items() if classifier}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_build_model_gives_a_fresh_seeded_estimator(name: ModelName, splits: Splits) -> None:
    expected_type, seeded = EXPECTED[name]

    first = build_model(name, 123, {})
    second = build_model(name, 123, {})

    assert first is not second
    assert is_classifier(first)
    first.fit(*splits["train"])
    with pytest.raises(NotFittedError):
        check_is_fitted(second)
    if name == "linear_svm":  # margins calibrated into probabilities
        assert isinstance(second, CalibratedClassifierCV)
        assert second.ensemble is False
        second = second.estimator
    assert type(second) is expected_type
    if seeded:
        assert second.random_state == 123
    else:
        assert "random_state" not in second.get_params()


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("knn", {"n_neighbors": 3, "weights": "distance"}),
        ("random_forest", {"n_estimators": 7, "max_depth": None}),
        ("linear_svm", {"C": 0.25}),
    ],
)
def test_build_model_applies_overrides(name: ModelName, overrides: dict[str, Any]) -> None:
    model = build_model(name, 0, overrides)

    estimator = model.estimator if name == "linear_svm" else model
    assert {key: estimator.get_params()[key] for key in overrides} == overrides


@pytest.mark.parametrize(("name", "key"), [("knn", "n_neighbours"), ("linear_svm", "n_estimators")])
def test_build_model_rejects_an_unknown_hyperparameter_naming_it(name: ModelName, key: str) -> None:
    with pytest.raises(ReprolabError) as caught:
        build_model(name, 0, {key: 3})

    assert str(caught.value).startswith(f"{STAGE}.hyperparams.{name}.{key}: not a parameter of ")


# --- score_candidate and select_best ------------------------------------------------------------


def test_score_candidate_says_which_model_and_fold_it_is_on(splits: Splits, capsys: pytest.CaptureFixture[str]) -> None:
    score_candidate("naive_bayes", build_model("naive_bayes", 0, {}), splits["train"], None, 3, "accuracy", 9)

    assert capsys.readouterr().err.splitlines() == [f"{STAGE}: naive_bayes: fold {fold}/3" for fold in (1, 2, 3)]


def test_score_candidate_cross_validates_then_refits_on_all_of_train(splits: Splits) -> None:
    model = build_model("logistic_regression", 0, {})
    train_x, train_y = splits["train"]
    val_x, val_y = splits["val"]

    candidate = score_candidate("logistic_regression", model, splits["train"], splits["val"], 4, "accuracy", 9)

    cv = cross_val_score(
        LogisticRegression(max_iter=1000, random_state=0),
        train_x,
        train_y,
        cv=StratifiedKFold(n_splits=4, shuffle=True, random_state=9),
        scoring="accuracy",
    )
    assert candidate.name == "logistic_regression"
    assert candidate.cv_mean == round(float(cv.mean()), 6)
    assert candidate.cv_std == round(float(cv.std()), 6)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)  # the estimator passed in is cloned, not fitted in place
    reference = LogisticRegression(max_iter=1000, random_state=0).fit(train_x, train_y)
    np.testing.assert_array_equal(candidate.model.coef_, reference.coef_)
    np.testing.assert_array_equal(candidate.val_output, reference.predict_proba(val_x)[:, 1])
    assert candidate.val_metrics == binary_metrics(val_y, candidate.val_output, "val")


@pytest.mark.parametrize("overrides", [{"n_neighbors": 0}, {"n_neighbors": "five"}, {"weights": "heavy"}])
def test_score_candidate_reports_a_bad_hyperparameter_value(splits: Splits, overrides: dict[str, Any]) -> None:
    model = build_model("knn", 0, overrides)

    with pytest.raises(ReprolabError) as caught:
        score_candidate("knn", model, splits["train"], splits["val"], 3, "roc_auc", 0)

    message = str(caught.value)
    assert message.startswith(f"{STAGE}.hyperparams.knn: ")
    assert next(iter(overrides)) in message
    assert "\n" not in message


def test_train_and_select_reports_a_bad_hyperparameter_value(splits: Splits) -> None:
    params = _fast_params(hyperparams={"random_forest": {"n_estimators": 0}})

    with pytest.raises(ReprolabError) as caught:
        train_and_select(params, splits, seed=0)

    assert str(caught.value).startswith(f"{STAGE}.hyperparams.random_forest: ")
    assert "n_estimators" in str(caught.value)


def test_select_best_takes_the_highest_val_score() -> None:
    candidates = [_candidate("a", 0.8, 0.9), _candidate("b", 0.95, 0.1), _candidate("c", 0.9, 0.99)]

    assert select_best(candidates, "roc_auc").name == "b"
    assert select_best(candidates, "accuracy").name == "a"


def test_select_best_breaks_a_val_tie_by_cv_mean() -> None:
    candidates = [_candidate("a", 0.9, 0.7), _candidate("b", 0.9, 0.8), _candidate("c", 0.5, 0.99)]

    assert select_best(candidates, "roc_auc").name == "b"


def test_select_best_breaks_a_full_tie_by_list_order() -> None:
    candidates = [_candidate("a", 0.5, 0.5), _candidate("b", 0.9, 0.8), _candidate("c", 0.9, 0.8)]

    assert select_best(candidates, "roc_auc").name == "b"
    assert select_best(candidates[::-1], "roc_auc").name == "c"


def test_select_best_without_val_takes_the_highest_cv_mean_then_list_order() -> None:
    def unvalidated(name: str, cv_mean: float) -> Candidate:
        return Candidate(name, GaussianNB(), cv_mean, 0.0, {}, None)

    candidates = [unvalidated("a", 0.8), unvalidated("b", 0.9), unvalidated("c", 0.9)]

    assert select_best(candidates, "roc_auc").name == "b"
    assert select_best(candidates[::-1], "roc_auc").name == "c"


def test_score_candidate_without_val_has_only_cross_validation_scores(splits: Splits) -> None:
    model = build_model("logistic_regression", 0, {})

    candidate = score_candidate("logistic_regression", model, splits["train"], None, 3, "roc_auc", 0)

    assert candidate.val_metrics == {} and candidate.val_output is None
    assert 0.5 < candidate.cv_mean <= 1


# --- train_and_select and its reports -----------------------------------------------------------


def test_train_and_select_scores_every_model_and_tests_the_best(splits: Splits) -> None:
    test_x, test_y = splits["test"]

    selection = train_and_select(_fast_params(), splits, seed=0)

    assert [c.name for c in selection.candidates] == FAST_MODELS
    assert selection.best in selection.candidates
    best_val = max(c.val_metrics["val/roc_auc"] for c in selection.candidates)
    assert selection.best.val_metrics["val/roc_auc"] == best_val
    assert set(selection.test_metrics) == {f"test/{name}" for name in METRICS}
    assert selection.test_output.shape == (len(test_y),)
    assert ((selection.test_output >= 0) & (selection.test_output <= 1)).all()
    np.testing.assert_array_equal(selection.test_output, selection.best.model.predict_proba(test_x)[:, 1])
    assert selection.test_metrics == binary_metrics(test_y, selection.test_output, "test")
    for candidate in selection.candidates:
        assert ((candidate.val_output >= 0) & (candidate.val_output <= 1)).all()


def test_train_and_select_uses_the_selection_metric(splits: Splits) -> None:
    selection = train_and_select(_fast_params(selection_metric="f1"), splits, seed=0)

    assert selection.best.val_metrics["val/f1"] == max(c.val_metrics["val/f1"] for c in selection.candidates)
    assert selection.best is select_best(selection.candidates, "f1")


def test_train_and_select_is_deterministic_for_a_seed(splits: Splits) -> None:
    first = train_and_select(_fast_params(), splits, seed=5)
    again = train_and_select(_fast_params(), splits, seed=5)
    other = train_and_select(_fast_params(), splits, seed=6)

    assert first.best.name == again.best.name
    assert first.test_metrics == again.test_metrics
    np.testing.assert_array_equal(first.test_output, again.test_output)
    assert pickle.dumps(first.best.model) == pickle.dumps(again.best.model)
    for one, two in zip(first.candidates, again.candidates, strict=True):
        assert (one.cv_mean, one.cv_std, one.val_metrics) == (two.cv_mean, two.cv_std, two.val_metrics)
        assert pickle.dumps(one.model) == pickle.dumps(two.model)
    forest = FAST_MODELS.index("random_forest")
    assert pickle.dumps(first.candidates[forest].model) != pickle.dumps(other.candidates[forest].model)


def test_comparison_table_has_one_row_per_model_and_one_selected(splits: Splits) -> None:
    selection = train_and_select(_fast_params(), splits, seed=0)

    table = comparison_table(selection)

    assert table["classifier"].tolist() == FAST_MODELS
    assert table["selected"].tolist().count(1) == 1
    assert table.loc[table["selected"] == 1, "classifier"].item() == selection.best.name
    assert list(table.columns) == [
        "classifier",
        "cv/roc_auc_mean",
        "cv/roc_auc_std",
        *(f"val/{name}" for name in METRICS),
        "selected",
    ]
    for row, candidate in zip(table.to_dict("records"), selection.candidates, strict=True):
        assert row["cv/roc_auc_mean"] == candidate.cv_mean
        assert {k: row[k] for k in candidate.val_metrics} == candidate.val_metrics


def test_stage_metrics_name_the_selected_model_and_its_scores(splits: Splits) -> None:
    selection = train_and_select(_fast_params(selection_metric="accuracy"), splits, seed=0)

    metrics = stage_metrics(selection)

    best = selection.best
    assert metrics == {
        "selected": best.name,
        "selected_by": "val/accuracy",
        "cv/accuracy_mean": best.cv_mean,
        "cv/accuracy_std": best.cv_std,
        **best.val_metrics,
        **selection.test_metrics,
    }
    assert {f"val/{name}" for name in METRICS} | {f"test/{name}" for name in METRICS} <= set(metrics)


def test_models_above_their_row_limit_are_skipped_with_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    params = ClassifiersParams(
        models=["naive_bayes", "knn", "logistic_regression"], max_train_rows={"knn": 100, "naive_bayes": 1000}
    )

    assert fitting_models(params, 100) == ["naive_bayes", "knn", "logistic_regression"]
    assert capsys.readouterr().err == ""
    assert fitting_models(params, 101) == ["naive_bayes", "logistic_regression"]
    assert capsys.readouterr().err == (
        "train_standard_classifiers: skipping knn: 101 train rows is above max_train_rows.knn = 100\n"
    )


def test_skipping_every_model_is_an_error() -> None:
    params = ClassifiersParams(models=["knn"], max_train_rows={"knn": 10})

    with pytest.raises(ReprolabError, match="every model is skipped at 11 train rows"):
        fitting_models(params, 11)


def test_train_and_select_leaves_out_skipped_models(splits: Splits) -> None:
    params = ClassifiersParams(models=["naive_bayes", "knn"], cv_folds=2, max_train_rows={"knn": 10})

    selection = train_and_select(params, splits, seed=0)

    assert [c.name for c in selection.candidates] == ["naive_bayes"]


# --- split modes: no val, no test ---------------------------------------------------------------


def test_without_val_the_best_cross_validation_mean_is_selected_and_tested(splits: Splits) -> None:
    no_val = {name: part for name, part in splits.items() if name != "val"}

    selection = train_and_select(_fast_params(), no_val, seed=0)

    assert selection.selected_by == "cv/roc_auc_mean"
    assert selection.best.cv_mean == max(c.cv_mean for c in selection.candidates)
    assert all(c.val_metrics == {} for c in selection.candidates)
    assert set(selection.test_metrics) == {f"test/{name}" for name in METRICS}
    metrics = stage_metrics(selection)
    assert metrics["selected_by"] == "cv/roc_auc_mean"
    assert not [key for key in metrics if key.startswith("val/")]
    table = comparison_table(selection)
    assert list(table.columns) == list(comparison_table(train_and_select(_fast_params(), splits, 0)).columns)
    assert table.filter(like="val/").isna().all().all()
    assert table["cv/roc_auc_mean"].tolist() == [c.cv_mean for c in selection.candidates]


def test_without_test_nothing_is_evaluated_on_test(splits: Splits) -> None:
    no_test = {name: part for name, part in splits.items() if name != "test"}

    selection = train_and_select(_fast_params(), no_test, seed=0)
    with_test = train_and_select(_fast_params(), splits, seed=0)

    assert selection.selected_by == "val/roc_auc"
    assert selection.best.name == with_test.best.name
    assert selection.test_metrics == {} and selection.test_output is None
    metrics = stage_metrics(selection)
    assert not [key for key in metrics if key.startswith("test/")]
    assert metrics["val/roc_auc"] == with_test.best.val_metrics["val/roc_auc"]


def test_train_only_selects_by_cross_validation_and_reports_no_held_out_scores(splits: Splits) -> None:
    selection = train_and_select(_fast_params(selection_metric="accuracy"), {"train": splits["train"]}, seed=0)

    metrics = stage_metrics(selection)

    assert metrics == {
        "selected": selection.best.name,
        "selected_by": "cv/accuracy_mean",
        "cv/accuracy_mean": selection.best.cv_mean,
        "cv/accuracy_std": selection.best.cv_std,
    }


# --- other tasks ----------------------------------------------------------------------------------


def test_multiclass_selects_by_macro_f1_and_reports_the_multiclass_metrics(multiclass_splits: Splits) -> None:
    selection = train_and_select(_fast_params(), multiclass_splits, seed=0, schema=MULTICLASS)

    assert selection.selected_by == "val/f1_macro"
    assert set(selection.test_metrics) == {f"test/{name}" for name in TASK_METRICS["multiclass"]}
    assert selection.test_output.shape == (len(multiclass_splits["test"].labels), 3)
    np.testing.assert_allclose(selection.test_output.sum(axis=1), 1.0)
    assert selection.test_metrics["test/accuracy"] > 0.6 and selection.test_metrics["test/roc_auc"] > 0.75
    best = max(c.val_metrics["val/f1_macro"] for c in selection.candidates)
    assert selection.best.val_metrics["val/f1_macro"] == best
    test_x, test_y = multiclass_splits["test"]
    assert selection.test_metrics["test/f1_macro"] == pytest.approx(
        f1_score(test_y, selection.best.model.predict(test_x), average="macro"), abs=1e-6
    )


def test_multiclass_cross_validates_roc_auc_one_vs_rest(multiclass_splits: Splits) -> None:
    params = _fast_params(models=["logistic_regression"], selection_metric="roc_auc")

    selection = train_and_select(params, multiclass_splits, seed=0, schema=MULTICLASS)

    train_x, train_y = multiclass_splits["train"]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    expected = cross_val_score(
        LogisticRegression(max_iter=1000, random_state=0), train_x, train_y, cv=folds, scoring="roc_auc_ovr"
    )
    assert selection.best.cv_mean == pytest.approx(expected.mean(), abs=1e-6)


def test_regression_uses_regressors_and_selects_the_lowest_rmse(regression_splits: Splits) -> None:
    params = _fast_params(models=["logistic_regression", "ridge", "knn", "random_forest"])

    selection = train_and_select(params, regression_splits, seed=0, schema=REGRESSION)

    assert [c.name for c in selection.candidates] == ["ridge", "knn", "random_forest"]
    assert all(is_regressor(c.model) for c in selection.candidates)
    assert selection.selected_by == "val/rmse"
    assert selection.best.val_metrics["val/rmse"] == min(c.val_metrics["val/rmse"] for c in selection.candidates)
    assert selection.best.name == "ridge"  # the data is linear
    assert set(selection.test_metrics) == {"test/rmse", "test/mae", "test/r2"}
    assert selection.test_metrics["test/r2"] > 0.9
    assert selection.best.cv_mean > 0  # rmse, not its negation
    np.testing.assert_array_equal(
        selection.test_output, selection.best.model.predict(regression_splits["test"].features)
    )


def test_regression_cross_validates_on_plain_folds(regression_splits: Splits) -> None:
    selection = train_and_select(
        _fast_params(models=["ridge"], selection_metric="mae"), regression_splits, 0, REGRESSION
    )

    train_x, train_y = regression_splits["train"]
    folds = KFold(n_splits=3, shuffle=True, random_state=0)
    expected = -cross_val_score(Ridge(random_state=0), train_x, train_y, cv=folds, scoring="neg_mean_absolute_error")
    assert selection.best.cv_mean == pytest.approx(expected.mean(), abs=1e-6)
    table = comparison_table(selection)
    assert list(table.columns) == [
        "classifier",
        "cv/mae_mean",
        "cv/mae_std",
        "val/rmse",
        "val/mae",
        "val/r2",
        "selected",
    ]


def test_a_selection_metric_that_does_not_suit_the_task_names_the_key(regression_splits: Splits) -> None:
    with pytest.raises(ReprolabError, match=r"^train_standard_classifiers.selection_metric: roc_auc does not apply"):
        train_and_select(_fast_params(selection_metric="roc_auc"), regression_splits, 0, REGRESSION)


def test_a_model_list_without_a_regressor_is_an_error(
    regression_splits: Splits, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(
        ReprolabError, match=r"^train_standard_classifiers.models: none is a regressor for task regression"
    ):
        train_and_select(_fast_params(models=["naive_bayes"]), regression_splits, 0, REGRESSION)

    assert "skipping naive_bayes: it has no regressor (task regression)" in capsys.readouterr().err


def test_hyperparams_of_a_regressor_only_model_are_checked_in_a_classification_task(splits: Splits) -> None:
    params = _fast_params(hyperparams={"ridge": {"alpha_typo": 1.0}})

    with pytest.raises(ReprolabError, match=r"hyperparams.ridge.alpha_typo: not a parameter of Ridge"):
        train_and_select(params, splits, 0)
