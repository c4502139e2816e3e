"""goals.yaml as a validated model, and each of its criteria judged against a pipeline's metrics in one line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Self

from pydantic import Field, ValidationError, model_validator

from lib.errors import ReprolabError
from lib.evaluation import GREATER_IS_BETTER
from lib.params import Section

GOALS_FILE = Path(__file__).with_name("goals.yaml")
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
    """`model` may fall short of `baseline` (be lower, or higher where lower is better) by `max_shortfall[metric]`."""

    model: str
    baseline: str
    max_shortfall: dict[str, float] = Field(min_length=1)


class Goals(Section):
    """The whole goals file."""

    models: dict[str, ModelGoals] = Field(min_length=1)
    comparisons: list[Comparison] = Field(default_factory=list)

    @model_validator(mode="after")
    def _comparisons_name_models(self) -> Self:
        for name in (name for c in self.comparisons for name in (c.model, c.baseline)):
            if name not in self.models:
                raise ValueError(f"comparisons: '{name}' is not one of the models {sorted(self.models)}")
        return self


class Outcome(NamedTuple):
    """One criterion judged: its id, the value and goal, `passed`, and one line saying so."""

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
    """Each model's metrics file under `outputs_dir`, or why it is missing."""
    found: dict[str, dict[str, Any] | str] = {}
    for name, model in goals.models.items():
        try:
            found[name] = json.loads((Path(outputs_dir) / model.metrics).read_text(encoding="utf-8"))
        except FileNotFoundError:
            found[name] = f"{model.metrics} not found under {outputs_dir}: run the pipeline first (make run)"
    return found


def _value(goals: Goals, metrics: Metrics, name: str, metric: str) -> tuple[float | None, str]:
    """(the metric's value, who it belongs to) or (None, why it is missing)."""
    found, model = metrics[name], goals.models[name]
    if isinstance(found, str):
        return None, found
    if metric.startswith("test/") and not any(str(key).startswith("test/") for key in found):
        raise NoTestSplit(
            f"the goals need a test split, and {model.metrics} holds no test metrics: set prepare_data.split "
            "to train_test or train_val_test, then run the pipeline (make run)"
        )
    value = found.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{metric} is not a number in {model.metrics} (it holds {sorted(found)})"
    selected = found.get("selected")  # a metrics file may name its model (metrics/classifiers.json does)
    return float(value), f"{model.label} ({selected})" if isinstance(selected, str) else model.label


def judge(goals: Goals, metrics: Metrics) -> list[Outcome]:
    """Every criterion in file order, models' bounds then comparisons; NoTestSplit when no test metric is there."""
    outcomes = []
    for name, model in goals.models.items():
        for relation, bounds in ((">=", model.minimum), ("<=", model.maximum)):
            for metric, goal in bounds.items():
                value, who = _value(goals, metrics, name, metric)
                passed = value is not None and (value >= goal if relation == ">=" else value <= goal)
                side = {">=": ("below", "at or above"), "<=": ("above", "at or below")}[relation][passed]
                message = who if value is None else f"{metric} of {who} is {value:g}, {side} the goal {goal:g}"
                outcomes.append(Outcome(f"{name}:{metric}{relation}", value, goal, passed, message))
    for c in goals.comparisons:
        for metric, margin in c.max_shortfall.items():
            check = f"{c.model}-vs-{c.baseline}:{metric}"
            value, who = _value(goals, metrics, c.model, metric)
            baseline, against = _value(goals, metrics, c.baseline, metric)
            if value is None or baseline is None:
                outcomes.append(Outcome(check, value, margin, False, who if value is None else against))
                continue
            higher_is_better = GREATER_IS_BETTER.get(metric.rsplit("/", 1)[-1], True)
            shortfall = round(baseline - value if higher_is_better else value - baseline, 6)
            passed = shortfall <= margin
            worse = "below" if higher_is_better else "above"
            message = (
                f"{metric} of {who} is {value:g}, {'not' if shortfall <= 0 else f'{shortfall:g}'} {worse} {against}'s "
                f"{baseline:g}: {'within' if passed else 'more than'} the allowed margin {margin:g}"
            )
            outcomes.append(Outcome(check, value, margin, passed, message))
    return outcomes
