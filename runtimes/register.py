"""Register a runtime in the MLflow Model Registry as `@candidate`, once its goals pass.

`python -m runtimes.register [--runtime DIR]` judges the metrics recorded in the runtime's
`runtime.json` against `goals/goals.yaml`, refuses a runtime built from uncommitted changes, then
logs the runtime (model folder, runtime.json and the zip) to an MLflow run, registers the model under
the runtime's name, tags the version with its commit and artefact, and points the alias at it.
The registry is the tracking URI's (`MLFLOW_TRACKING_URI`, or the local `mlflow.db`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import cli
from lib.errors import ReprolabError
from lib.paths import DEFAULT_EXPERIMENT

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

ALIAS = "candidate"


class RegistrationRefused(ReprolabError):
    """The runtime may not become a candidate: goals unmet, uncommitted changes, or no runtime."""


def read_runtime(folder: Path) -> dict[str, Any]:
    """The runtime's `runtime.json`; the error says how to build one."""
    from runtimes.package import METADATA_FILE, MODEL_DIR

    path = Path(folder) / METADATA_FILE
    if not path.is_file() or not (Path(folder) / MODEL_DIR / "MLmodel").is_file():
        raise RegistrationRefused(f"no runtime at {folder}: build it first (make runtime)")
    return json.loads(path.read_text(encoding="utf-8"))


def goal_failures(info: Mapping[str, Any], goals_file: Path) -> list[str]:
    """The messages of the goals that the runtime's recorded metrics fail (empty when all pass)."""
    from goals.criteria import judge, read_goals

    goals = read_goals(goals_file)
    recorded = info.get("metrics", {})
    metrics = {
        name: recorded.get(model.metrics, f"{model.metrics} is not recorded in the runtime")
        for name, model in goals.models.items()
    }
    return [outcome.message for outcome in judge(goals, metrics) if not outcome.passed]


def check_registrable(info: Mapping[str, Any], goals_file: Path, allow_dirty: bool) -> None:
    """Raise RegistrationRefused unless the goals pass and the runtime names a clean commit."""
    failures = goal_failures(info, goals_file)
    if failures:
        raise RegistrationRefused(f"{info['artifact']}: goals not met: " + "; ".join(failures))
    if info["git"]["dirty"] and not allow_dirty:
        raise RegistrationRefused(
            f"{info['artifact']} was built from uncommitted changes, so no commit describes it: "
            "commit the results, rebuild (make runtime), or pass --allow-dirty"
        )


def register(folder: Path, info: Mapping[str, Any], alias: str = ALIAS) -> ModelVersion:
    """Log the runtime to an MLflow run, register its model, tag the version and set `alias` on it."""
    import mlflow

    from lib.tracking import store
    from runtimes.package import METADATA_FILE, MODEL_DIR

    experiment = info.get("params", {}).get("tracking", {}).get("experiment", DEFAULT_EXPERIMENT)
    store.prepare(experiment)
    folder = Path(folder)
    artifact, commit = info["artifact"], info["git"]["commit"]
    links = {
        "git.commit": commit,
        "runtime.artifact": artifact,
        "runtime.version": info["version"],
        "runtime.selected": info["model"]["selected"],
        "goals": "passed",
    }
    run_tags = {**links, "mlflow.source.git.commit": commit, "dvc.stage": "runtime"}
    with mlflow.start_run(run_name=f"runtime {artifact}", tags=run_tags) as run:
        mlflow.log_artifacts(str(folder / MODEL_DIR), artifact_path=MODEL_DIR.name)
        mlflow.log_artifact(str(folder / METADATA_FILE), artifact_path="runtime")
        zip_path = folder.with_name(f"{folder.name}.zip")
        if zip_path.is_file():
            mlflow.log_artifact(str(zip_path), artifact_path="runtime")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/{MODEL_DIR.name}", info["name"], tags=links)
    client = mlflow.MlflowClient()
    client.update_model_version(
        info["name"],
        version.version,
        description=(
            f"Runtime {artifact}, built from commit {commit}. The artefact (folder and zip) is in run "
            f"{run.info.run_id}, artifacts runtime/{artifact}.zip; serve it with "
            f"`mlflow models serve -m models:/{info['name']}@{alias} --env-manager local`."
        ),
    )
    client.set_registered_model_alias(info["name"], alias, version.version)
    return version


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, check the runtime may be a candidate, register it."""
    from goals.criteria import GOALS_FILE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", type=Path, default=None, help="runtime folder (default: this checkout's)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where runtimes are (default: %(default)s)")
    parser.add_argument("--goals-file", type=Path, default=GOALS_FILE, help="thresholds (default: goals/goals.yaml)")
    parser.add_argument("--alias", default=ALIAS, help="alias to point at the new version (default: %(default)s)")
    parser.add_argument("--allow-dirty", action="store_true", help="register a runtime built from uncommitted work")
    args = parser.parse_args(argv)

    from runtimes import package

    folder = args.runtime or package.runtime_dir(Path("."), args.out, package.read_config())
    info = read_runtime(folder)
    check_registrable(info, args.goals_file, args.allow_dirty)
    done = register(folder, info, args.alias)
    print(
        f"registered {done.name} version {done.version} as @{args.alias} "
        f"(commit {info['git']['short']}, artefact {info['artifact']}, run {done.run_id})"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
