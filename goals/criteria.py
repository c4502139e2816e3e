"""The goals file, and each criterion in it judged against a pipeline's metrics in one line.

`goals.yaml` names, for each model, the metrics file the pipeline writes and the bounds its metrics must
meet, plus comparisons ("the network may fall short of the selected classifier by at most a margin").
`model_goals_test.py` and `runtimes.register` both judge with `judge`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lib.errors import ReprolabError
from lib.params import Section

GOALS_FILE = Path(__file__).with_name("goals.yaml")
NAME_KEY = "selected"  # a metrics file may name its model here (metrics/classifiers.json does)
Metrics = Mapping[str, Mapping[str, Any] | str]  # model name -> its metrics, or why they are missing


class GoalsError(ReprolabError):
    """The goals file is missing or malformed."""


class NoTestSplit(GoalsError):
    """The outputs hold no test metrics (`prepare_data.split: train`), so no goal can be judged."""


class ModelGoals(Section):
    """One model's metrics file and the bounds its metrics must stay within."""

    metrics: str = Field(min_length=1)
    label: str = Field(min_length=1)
    minimum: dict[str, float] = Field(default_factory=dict)
    maximum: dict[str, float] = Field(default_factory=dict)


class Comparison(Section):
    """`model` may fall short of `baseline` by at most `max_shortfall[metric]` (higher is better)."""

    model: str
    baseline: str
    max_shortfall: dict[str, float] = Field(min_length=1)


class Goals(BaseModel):
    """The whole goals file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    models: dict[str, ModelGoals] = Field(min_length=1)
    comparisons: list[Comparison] = Field(default_factory=list)

    @model_validator(mode="after")
    def _comparisons_name_models(self) -> Self:
        for name in (name for c in self.comparisons for name in (c.model, c.baseline)):
            if name not in self.models:
                raise ValueError(f"comparisons: '{name}' is not one of the models {sorted(self.models)}")
        return self


@dataclass(frozen=True)
class Outcome:
    """One criterion judged: `passed`, and one line naming the metric, its value and the goal."""

    id: str
    value: float | None
    goal: float
    passed: bool
    message: str


def read_goals(path: Path = GOALS_FILE) -> Goals:
    """Parse and validate the goals file; the error names the file and the bad key."""
    import yaml

    try:
        return Goals.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise GoalsError(f"{path}: goals file not found") from None
    except yaml.YAMLError:
        raise GoalsError(f"{path}: not valid YAML") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise GoalsError(f"{path}: {'.'.join(map(str, error['loc'])) or 'top level'}: {error['msg']}") from None


def read_metrics(outputs_dir: Path, goals: Goals) -> dict[str, dict[str, Any] | str]:
    """Each model's metrics file under `outputs_dir`, or the reason it could not be read."""
    found: dict[str, dict[str, Any] | str] = {}
    for name, model in goals.models.items():
        try:
            found[name] = json.loads((Path(outputs_dir) / model.metrics).read_text(encoding="utf-8"))
        except FileNotFoundError:
            found[name] = f"{model.metrics} not found under {outputs_dir}: run the pipeline first (make run)"
        except (OSError, json.JSONDecodeError) as exc:
            found[name] = f"{model.metrics} under {outputs_dir} is not readable JSON ({type(exc).__name__})"
    return found


def _value(goals: Goals, metrics: Metrics, name: str, metric: str) -> tuple[float | None, str]:
    """(the metric's value, the model's label) or (None, why it is missing)."""
    found, source = metrics[name], goals.models[name].metrics
    if isinstance(found, str):
        return None, found
    if metric.startswith("test/") and not any(str(key).startswith("test/") for key in found):
        raise NoTestSplit(
            f"the goals need a test split, and {source} holds no test metrics: set prepare_data.split "
            "to train_test or train_val_test, then run the pipeline (make run)"
        )
    value = found.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{metric} is not a number in {source} (it holds {sorted(found)})"
    label = goals.models[name].label
    return float(value), f"{label} ({found[NAME_KEY]})" if isinstance(found.get(NAME_KEY), str) else label


def _bound(goals: Goals, metrics: Metrics, name: str, metric: str, goal: float, relation: str) -> Outcome:
    check = f"{name}:{metric}{relation}"
    value, who = _value(goals, metrics, name, metric)
    if value is None:
        return Outcome(check, None, goal, False, who)
    passed = value >= goal if relation == ">=" else value <= goal
    side = {">=": ("below", "at or above"), "<=": ("above", "at or below")}[relation][passed]
    return Outcome(check, value, goal, passed, f"{metric} of {who} is {value:g}, {side} the goal {goal:g}")


def _comparison(goals: Goals, metrics: Metrics, c: Comparison, metric: str, margin: float) -> Outcome:
    check = f"{c.model}-vs-{c.baseline}:{metric}"
    value, who = _value(goals, metrics, c.model, metric)
    baseline, against = _value(goals, metrics, c.baseline, metric)
    if value is None or baseline is None:
        return Outcome(check, value, margin, False, who if value is None else against)
    shortfall = round(baseline - value, 6)
    gap, passed = "not" if shortfall <= 0 else f"{shortfall:g}", shortfall <= margin
    message = (
        f"{metric} of {who} is {value:g}, {gap} below {against}'s {baseline:g}: "
        f"{'within' if passed else 'more than'} the allowed margin {margin:g}"
    )
    return Outcome(check, value, margin, passed, message)


def judge(goals: Goals, metrics: Metrics) -> list[Outcome]:
    """Every criterion of `goals` judged against `metrics` (model name -> its metrics, or why they are missing).

    In file order: each model's minimums and maximums, then the comparisons. Ids read
    `network:test/roc_auc>=` and `network-vs-classifier:test/accuracy`. Raises NoTestSplit when a test
    metric is wanted from a metrics file that holds none.
    """
    outcomes = []
    for name, model in goals.models.items():
        for relation, bounds in ((">=", model.minimum), ("<=", model.maximum)):
            outcomes += [_bound(goals, metrics, name, metric, goal, relation) for metric, goal in bounds.items()]
    for c in goals.comparisons:
        outcomes += [_comparison(goals, metrics, c, metric, margin) for metric, margin in c.max_shortfall.items()]
    return outcomes
