"""Acceptance criteria: read the goals file, judge metrics against it, say what failed and by how much.

The goals file (`goals/goals.yaml`) names, for each model, the metrics file the pipeline writes and the
thresholds its metrics must meet, plus comparisons between models ("the network may fall short of the
selected classifier by at most a margin"). Everything here is pure except the two small readers; the
pytest checks in `model_goals_test.py` and `runtimes.register` both call `evaluate`.
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
# A metrics file may name the model it describes under this key (metrics/classifiers.json does).
NAME_KEY = "selected"
TEST_PREFIX = "test/"


class GoalsError(ReprolabError):
    """The goals file is missing or malformed."""


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
        for comparison in self.comparisons:
            for name in (comparison.model, comparison.baseline):
                if name not in self.models:
                    raise ValueError(f"comparisons: '{name}' is not one of the models {sorted(self.models)}")
        return self


@dataclass(frozen=True)
class Outcome:
    """One criterion judged: `passed`, and a message that names the metric, its value and the goal."""

    id: str
    metric: str
    value: float | None
    goal: float
    passed: bool
    message: str


def read_goals(path: Path = GOALS_FILE) -> Goals:
    """Parse and validate the goals file; the error names the file and the bad key."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoalsError(f"{path}: goals file not found") from None
    except yaml.YAMLError:
        raise GoalsError(f"{path}: not valid YAML") from None
    try:
        return Goals.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "top level"
        raise GoalsError(f"{path}: {key}: {error['msg']}") from None


def read_metrics(outputs_dir: Path, goals: Goals) -> dict[str, dict[str, Any] | str]:
    """Each model's metrics file under `outputs_dir`, or the reason it could not be read."""
    found: dict[str, dict[str, Any] | str] = {}
    for name, model in goals.models.items():
        path = Path(outputs_dir) / model.metrics
        try:
            found[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            found[name] = f"{model.metrics} not found under {outputs_dir}: run the pipeline first (make run)"
        except (OSError, json.JSONDecodeError) as exc:
            found[name] = f"{model.metrics} under {outputs_dir} is not readable JSON ({type(exc).__name__})"
    return found


def criteria_ids(goals: Goals) -> list[str]:
    """A stable id per criterion, in file order: `network:test/roc_auc>=`, `network-vs-classifier:test/accuracy`."""
    return [outcome.id for outcome in evaluate(goals, dict.fromkeys(goals.models, "not read"))]


def _number(value: float) -> str:
    return f"{value:g}"


def _label(goals: Goals, name: str, metrics: Mapping[str, Any] | str) -> str:
    label = goals.models[name].label
    if isinstance(metrics, Mapping) and isinstance(metrics.get(NAME_KEY), str):
        return f"{label} ({metrics[NAME_KEY]})"
    return label


def _no_test_split(source: str) -> str:
    return (
        f"the goals need a test split, and {source} holds no test metrics: set prepare_data.split "
        "to train_test or train_val_test, then run the pipeline (make run)"
    )


def _has_test_metrics(metrics: Mapping[str, Any]) -> bool:
    return any(str(key).startswith(TEST_PREFIX) for key in metrics)


def missing_test_split(goals: Goals, metrics: Mapping[str, Mapping[str, Any] | str]) -> str | None:
    """Why no goal can be judged, or None: a metrics file the goals read holds no test metric at all.

    That happens when the pipeline ran without a test split (`prepare_data.split: train`).
    """
    for name, model in goals.models.items():
        wanted = [*model.minimum, *model.maximum]
        wanted += [metric for c in goals.comparisons if name in (c.model, c.baseline) for metric in c.max_shortfall]
        found = metrics.get(name)
        if (
            isinstance(found, Mapping)
            and not _has_test_metrics(found)
            and any(metric.startswith(TEST_PREFIX) for metric in wanted)
        ):
            return _no_test_split(model.metrics)
    return None


def _value(metrics: Mapping[str, Any] | str, metric: str, source: str) -> tuple[float | None, str | None]:
    """(the metric's value, None) or (None, why it is missing)."""
    if isinstance(metrics, str):
        return None, metrics
    if metric.startswith(TEST_PREFIX) and not _has_test_metrics(metrics):
        return None, _no_test_split(source)
    value = metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{metric} is not a number in {source} (it holds {sorted(metrics)})"
    return float(value), None


def _bound(
    goals: Goals, metrics: Mapping[str, Mapping[str, Any] | str], name: str, metric: str, goal: float, is_minimum: bool
) -> Outcome:
    source = metrics[name]
    check_id = f"{name}:{metric}{'>=' if is_minimum else '<='}"
    value, missing = _value(source, metric, goals.models[name].metrics)
    if value is None:
        return Outcome(check_id, metric, None, goal, False, str(missing))
    passed = value >= goal if is_minimum else value <= goal
    relation = ("at or above" if passed else "below") if is_minimum else ("at or below" if passed else "above")
    message = f"{metric} of {_label(goals, name, source)} is {_number(value)}, {relation} the goal {_number(goal)}"
    return Outcome(check_id, metric, value, goal, passed, message)


def _comparison(
    goals: Goals, metrics: Mapping[str, Mapping[str, Any] | str], comparison: Comparison, metric: str, margin: float
) -> Outcome:
    check_id = f"{comparison.model}-vs-{comparison.baseline}:{metric}"
    value, missing = _value(metrics[comparison.model], metric, goals.models[comparison.model].metrics)
    baseline, baseline_missing = _value(metrics[comparison.baseline], metric, goals.models[comparison.baseline].metrics)
    if value is None or baseline is None:
        return Outcome(check_id, metric, value, margin, False, str(missing or baseline_missing))
    shortfall = round(baseline - value, 6)
    passed = shortfall <= margin
    who = _label(goals, comparison.model, metrics[comparison.model])
    against = _label(goals, comparison.baseline, metrics[comparison.baseline])
    if shortfall <= 0:
        gap = f"not below {against}'s {_number(baseline)}"
    else:
        gap = f"{_number(shortfall)} below {against}'s {_number(baseline)}"
    verdict = "within" if passed else "more than"
    message = f"{metric} of {who} is {_number(value)}, {gap}: {verdict} the allowed margin {_number(margin)}"
    return Outcome(check_id, metric, value, margin, passed, message)


def evaluate(goals: Goals, metrics: Mapping[str, Mapping[str, Any] | str]) -> list[Outcome]:
    """Judge every criterion of `goals` against `metrics` (model name -> its metrics, or why it is missing).

    Returns one Outcome per criterion, in the order of `criteria_ids`.
    """
    outcomes = []
    for name, model in goals.models.items():
        outcomes += [_bound(goals, metrics, name, metric, goal, True) for metric, goal in model.minimum.items()]
        outcomes += [_bound(goals, metrics, name, metric, goal, False) for metric, goal in model.maximum.items()]
    for comparison in goals.comparisons:
        outcomes += [
            _comparison(goals, metrics, comparison, metric, margin)
            for metric, margin in comparison.max_shortfall.items()
        ]
    return outcomes


def summary_markdown(outcomes: list[Outcome], outputs_dir: Path) -> str:
    """A Markdown table of every criterion, for a CI job summary."""
    failed = sum(not outcome.passed for outcome in outcomes)
    verdict = "all passed" if not failed else f"{failed} of {len(outcomes)} failed"
    lines = [
        f"### Goals: {verdict}",
        "",
        f"Outputs judged: `{outputs_dir}`",
        "",
        "| | criterion | value | goal | result |",
        "|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        value = "–" if outcome.value is None else _number(outcome.value)
        mark = "pass" if outcome.passed else "**FAIL**"
        lines.append(f"| {mark} | `{outcome.id}` | {value} | {_number(outcome.goal)} | {outcome.message} |")
    return "\n".join(lines) + "\n"
