"""Register a runtime in MLflow's Model Registry as `@candidate`, once its goals pass on a clean commit.

The metrics recorded in its runtime.json are judged against goals/goals.yaml (runtimes/README.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goals.criteria import GOALS_FILE, judge, read_goals
from lib import cli
from lib.errors import ReprolabError
from lib.paths import DEFAULT_EXPERIMENT
from runtimes.build import METADATA_FILE, MODEL_DIR, built_runtime, read_config, runtime_dir

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion


class RegistrationRefused(ReprolabError):
    """The runtime may not become a candidate: goals unmet, or built from uncommitted changes."""


def check_registrable(info: Mapping[str, Any], goals_file: Path, allow_dirty: bool) -> None:
    """Raise RegistrationRefused unless the runtime's recorded metrics meet the goals and it names a clean commit."""
    goals, recorded = read_goals(goals_file), info.get("metrics", {})
    metrics = {
        name: recorded.get(model.metrics, f"{model.metrics} is not recorded in the runtime")
        for name, model in goals.models.items()
    }
    if failures := [outcome.message for outcome in judge(goals, metrics) if not outcome.passed]:
        raise RegistrationRefused(f"{info['artifact']}: goals not met: " + "; ".join(failures))
    if info["git"]["dirty"] and not allow_dirty:
        raise RegistrationRefused(
            f"{info['artifact']} was built from uncommitted changes, so no commit describes it: "
            "commit the results, rebuild (make runtime), or pass --allow-dirty"
        )


def register(folder: Path, info: Mapping[str, Any], alias: str) -> ModelVersion:
    """Log the runtime to an MLflow run, register its model, tag and describe the version, set `alias` on it."""
    import mlflow

    from lib.tracking import store

    store.prepare(info["params"].get("tracking", {}).get("experiment", DEFAULT_EXPERIMENT))
    name, artifact, commit = info["name"], info["artifact"], info["git"]["commit"]
    tags = {"git.commit": commit, "runtime.artifact": artifact, "runtime.version": info["version"], "goals": "passed"}
    tags["runtime.selected"] = info["model"]["selected"]
    run_tags = {**tags, "mlflow.source.git.commit": commit, "dvc.stage": "runtime"}
    with mlflow.start_run(run_name=f"runtime {artifact}", tags=run_tags) as run:
        mlflow.log_artifacts(str(folder / MODEL_DIR), artifact_path=MODEL_DIR.name)
        mlflow.log_artifact(str(folder / METADATA_FILE), artifact_path="runtime")
        if (zip_path := folder.with_name(f"{folder.name}.zip")).is_file():
            mlflow.log_artifact(str(zip_path), artifact_path="runtime")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/{MODEL_DIR.name}", name, tags=tags)
    client = mlflow.MlflowClient()
    description = (
        f"Runtime {artifact}, built from commit {commit}. The artefact (folder and zip) is in run "
        f"{run.info.run_id}, artifacts runtime/{artifact}.zip; serve it with "
        f"`mlflow models serve -m models:/{name}@{alias} --env-manager local`."
    )
    client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, alias, version.version)
    return version


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, check the runtime may be a candidate, register it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", type=Path, default=None, help="runtime folder (default: this checkout's)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where runtimes are (default: %(default)s)")
    parser.add_argument("--goals-file", type=Path, default=GOALS_FILE, help="thresholds (default: goals/goals.yaml)")
    parser.add_argument("--alias", default="candidate", help="alias to point at the new version (default: %(default)s)")
    parser.add_argument("--allow-dirty", action="store_true", help="register a runtime built from uncommitted work")
    args = parser.parse_args(argv)
    folder = built_runtime(args.runtime) if args.runtime else runtime_dir(Path("."), args.out, read_config())
    info = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    check_registrable(info, args.goals_file, args.allow_dirty)
    done = register(folder, info, args.alias)
    print(
        f"registered {done.name} version {done.version} as @{args.alias} "
        f"(commit {info['git']['short']}, artefact {info['artifact']}, run {done.run_id})"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
