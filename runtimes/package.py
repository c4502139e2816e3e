"""Package the pipeline's selected classifier as a deployable, versioned runtime artefact.

A runtime is a folder `<name>-<version>-<short commit>` (and the same as a zip) holding:
- `model_dir/model/`: an MLflow pyfunc model (`scaled_classifier.py`) that takes the raw feature columns,
  with a signature, an input example and pinned pip requirements; `mlflow models serve` serves it;
- `Dockerfile`: MLflow's own image serving that model, written by `mlflow models generate-dockerfile`
  (which also puts the model at `model_dir/model`, where the Dockerfile copies it from);
- `runtime.json`: where it came from: git commit, params, metrics and the md5 of every pipeline output
  in `dvc.lock` (the data version included).

Nothing is packaged unless DVC's status says every pipeline output is current (lib/pipeline_state), so
the metadata never describes outputs other than the ones packaged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from lib.errors import ReprolabError
from lib.git import git
from lib.params import ParamsFile, Section
from lib.pipeline_state import check_current

if TYPE_CHECKING:
    import pandas as pd

HERE = Path(__file__).resolve().parent
RUNTIME_FILE = HERE / "runtime.yaml"
MODEL_CODE = HERE / "scaled_classifier.py"
CLASSIFIER = "models/classifier.pkl"
PREPROCESSING = "models/preprocessing.json"
METRICS = ("metrics/data.json", "metrics/classifiers.json", "metrics/dnn.json")
# The input example comes from val; with `prepare_data.split: train` or `train_test` there is none, so from train.
EXAMPLE_SPLITS = ("data/processed/val.parquet", "data/processed/train.parquet")
EXAMPLE_ROWS = 5
# The classifier is unpickled by scikit-learn (and SciPy), scaled with NumPy, served through pandas.
REQUIREMENTS = ("scikit-learn", "scipy", "numpy", "pandas")
METADATA_FILE = "runtime.json"
MODEL_DIR = Path("model_dir", "model")  # where `mlflow models generate-dockerfile` puts the model
SHORT_COMMIT = 7


class RuntimeBuildError(ReprolabError):
    """A runtime cannot be built from what is on disk."""


class RuntimeConfig(Section):
    """runtimes/runtime.yaml: the runtime's name and the version of its serving contract."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.]*$")


@dataclass(frozen=True)
class GitState:
    """The commit a project is at, and whether tracked files differ from it."""

    commit: str
    dirty: bool

    @property
    def short(self) -> str:
        """The abbreviated commit used in artefact names."""
        return self.commit[:SHORT_COMMIT]


def read_config(path: Path = RUNTIME_FILE) -> RuntimeConfig:
    """Validate the runtime config file; the error names the file and the bad key."""
    file = ParamsFile.read(path)
    return ParamsFile(file.path, {"runtime": dict(file.data)}).section("runtime", RuntimeConfig)


def git_state(project: Path) -> GitState:
    """HEAD's commit in `project` and whether tracked files (results included) have uncommitted changes."""

    commit, changes = (
        git("rev-parse", "HEAD", cwd=project),
        git("status", "--porcelain", "--untracked-files=no", cwd=project),
    )
    if commit is None or changes is None:
        raise RuntimeBuildError(f"{project}: not a git repository with a commit; a runtime names its commit")
    return GitState(commit, bool(changes))


def artifact_name(config: RuntimeConfig, git: GitState) -> str:
    """`<name>-<version>-<short commit>`, with `-dirty` when the working tree differs from the commit."""
    return f"{config.name}-{config.version}-{git.short}" + ("-dirty" if git.dirty else "")


def lock_outs(lock: Mapping[str, Any]) -> dict[str, str]:
    """Every output recorded in a parsed dvc.lock, as path -> md5 (`.dir` hashes for folders)."""
    return {out["path"]: out["md5"] for stage in (lock.get("stages") or {}).values() for out in stage.get("outs") or []}


def raw_rows(processed: pd.DataFrame, preprocessing: Mapping[str, Any], rows: int) -> pd.DataFrame:
    """The first `rows` of a processed split with the scaling undone: raw feature values, as a client sends."""
    import numpy as np
    import pandas as pd

    features = list(preprocessing["features"])
    scaled = processed[features].head(rows).to_numpy(dtype=np.float64)
    raw = scaled * np.asarray(preprocessing["scale"]) + np.asarray(preprocessing["mean"])
    return pd.DataFrame(np.round(raw, 6), columns=features)


def metadata(
    config: RuntimeConfig,
    git: GitState,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    outs: Mapping[str, str],
    requirements: Sequence[str],
    selected: str,
) -> dict[str, Any]:
    """runtime.json: what the runtime is, and the commit, params, metrics and data it came from."""
    return {
        "name": config.name,
        "version": config.version,
        "artifact": artifact_name(config, git),
        "model": {"selected": selected, "source": CLASSIFIER, "preprocessing": PREPROCESSING},
        "git": {"commit": git.commit, "short": git.short, "dirty": git.dirty},
        "data_version": outs.get("data/processed"),
        "dvc_lock_outs": dict(sorted(outs.items())),
        "params": dict(params),
        "metrics": dict(metrics),
        "requirements": list(requirements),
    }


def save_model(
    folder: Path, project: Path, example: pd.DataFrame, requirements: Sequence[str], tags: Mapping[str, str]
) -> None:
    """Save the MLflow pyfunc model to `folder`: code, artefacts, signature from `example`, requirements."""
    import pickle

    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from runtimes import scaled_classifier as model

    preprocessing = json.loads((project / PREPROCESSING).read_text(encoding="utf-8"))
    with (project / CLASSIFIER).open("rb") as file:
        classifier = pickle.load(file)
    with warnings.catch_warnings():
        # MLflow's hint that integer output columns cannot hold missing values: ours never do.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, model.score(example, classifier, preprocessing))
    mlflow.pyfunc.save_model(
        str(folder),
        python_model=str(MODEL_CODE),
        artifacts={model.CLASSIFIER: str(project / CLASSIFIER), model.PREPROCESSING: str(project / PREPROCESSING)},
        signature=signature,
        input_example=example,
        pip_requirements=list(requirements),
        metadata=dict(tags),
    )


def generate_dockerfile(model: Path, folder: Path) -> None:
    """`mlflow models generate-dockerfile`: `folder`/Dockerfile serving `model`, copied to `folder`/MODEL_DIR."""
    command = [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "--env-manager", "local"]
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    done = subprocess.run([*command, "-m", str(model), "-d", str(folder)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeBuildError(f"mlflow models generate-dockerfile failed for {model}: {why}")


def build(project: Path, out_dir: Path, config: RuntimeConfig) -> Path:
    """Build the runtime from `project`'s pipeline outputs into `out_dir`; return its folder.

    The folder and its zip replace any earlier build of the same name.
    """
    import pandas as pd
    import yaml

    from lib.tracking.models import pip_requirements

    project, out_dir = Path(project).resolve(), Path(out_dir).resolve()
    check_current(project)
    outs = lock_outs(yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8")))
    git = git_state(project)
    name = artifact_name(config, git)
    preprocessing = json.loads((project / PREPROCESSING).read_text(encoding="utf-8"))
    metrics = {path: json.loads((project / path).read_text(encoding="utf-8")) for path in METRICS}
    selected = str(metrics["metrics/classifiers.json"].get("selected", "unknown"))
    requirements = pip_requirements(REQUIREMENTS)
    params = ParamsFile.read(project / "params.yaml").data
    info = metadata(config, git, params, metrics, outs, requirements, selected)
    example_split = next((path for path in EXAMPLE_SPLITS if (project / path).is_file()), EXAMPLE_SPLITS[-1])
    example = raw_rows(pd.read_parquet(project / example_split), preprocessing, EXAMPLE_ROWS)

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}.") as scratch:
        staging = Path(scratch, name)
        tags = {"runtime.artifact": name, "git.commit": git.commit, "runtime.version": config.version}
        save_model(Path(scratch, MODEL_DIR.name), project, example, requirements, tags)
        generate_dockerfile(Path(scratch, MODEL_DIR.name), staging)
        (staging / METADATA_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    (out_dir / f"{name}.zip").unlink(missing_ok=True)
    shutil.make_archive(str(final), "zip", root_dir=out_dir, base_dir=name)
    return final


def runtime_dir(project: Path, out_dir: Path, config: RuntimeConfig) -> Path:
    """The folder of `project`'s current checkout's runtime under `out_dir`; an error when it is not built."""
    folder = Path(out_dir) / artifact_name(config, git_state(project))
    if not (folder / MODEL_DIR / "MLmodel").is_file():
        raise RuntimeBuildError(f"no runtime at {folder}: build it first (make runtime)")
    return folder
