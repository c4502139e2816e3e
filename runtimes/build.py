"""Build this checkout's runtime (`python -m runtimes.build --out dist`), or print its model folder (`--locate`).

The runtime's layout, and why it is built this way, are in runtimes/README.md and decision 0004.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml
from pydantic import Field

from lib import cli
from lib.errors import ReprolabError
from lib.git import git
from lib.params import ParamsFile, Section
from lib.pipeline_state import check_current, lock_outputs

HERE = Path(__file__).resolve().parent
CLASSIFIER, PREPROCESSING, SCHEMA = "models/classifier.pkl", "models/preprocessing.pkl", "data/processed/schema.json"
METRICS = ("metrics/data.json", "metrics/classifiers.json", "metrics/dnn.json")
EXAMPLE_SPLIT = "data/processed/train.parquet"  # the one split every `prepare_data.split` writes
# The model and the preprocessing are unpickled by scikit-learn (and SciPy), run on NumPy, served through pandas.
REQUIREMENTS = ("scikit-learn", "scipy", "numpy", "pandas")
METADATA_FILE = "runtime.json"
MODEL_DIR = Path("model_dir", "model")  # where `mlflow models generate-dockerfile` puts the model


class RuntimeBuildError(ReprolabError):
    """A runtime cannot be built from what is on disk."""


class RuntimeConfig(Section):
    """runtimes/runtime.yaml: the runtime's name and the version of its serving contract."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.]*$")


class GitState(NamedTuple):
    """The commit a project is at, and whether tracked files differ from it."""

    commit: str
    dirty: bool


def read_config(path: Path = HERE / "runtime.yaml") -> RuntimeConfig:
    """Validate the runtime config file; the error names the file and the bad key."""
    return ParamsFile(path, {"runtime": dict(ParamsFile.read(path).data)}).section("runtime", RuntimeConfig)


def git_state(project: Path) -> GitState:
    """HEAD's commit in `project` and whether tracked files (results included) have uncommitted changes."""
    commit = git("rev-parse", "HEAD", cwd=project)
    changes = git("status", "--porcelain", "--untracked-files=no", cwd=project)
    if commit is None or changes is None:
        raise RuntimeBuildError(f"{project}: not a git repository with a commit; a runtime names its commit")
    return GitState(commit, bool(changes))


def artifact_name(config: RuntimeConfig, git: GitState) -> str:
    """`<name>-<version>-<short commit>`, with `-dirty` when the working tree differs from the commit."""
    return f"{config.name}-{config.version}-{git.commit[:7]}" + ("-dirty" if git.dirty else "")


def raw_rows(processed: pd.DataFrame, preprocessing: Any, rows: int) -> pd.DataFrame:
    """The first `rows` of a processed split as the raw columns a client sends, in the train file's order: numbers
    unscaled by prepare_data's fitted `preprocessing` (imputed cells keep the value imputed), one-hot as categories."""
    head = processed.head(rows).drop(columns=["target"], errors="ignore").to_numpy(dtype=np.float64)
    columns = {}
    for name, pipeline, inputs in preprocessing.transformers_:
        if name == "remainder" or not len(inputs):
            continue
        block = head[:, preprocessing.output_indices_[name]]
        last = pipeline.steps[-1][1]
        if hasattr(last, "categories_"):  # the one-hot encoder: back to the category names
            values = last.inverse_transform(block).astype(object)
        else:  # the scaler; without it the numbers were only imputed
            values = np.round(last.inverse_transform(block) if hasattr(last, "scale_") else block, 6)
        columns.update({str(column): pd.Series(values[:, i], dtype=values.dtype) for i, column in enumerate(inputs)})
    return pd.DataFrame({str(name): columns[str(name)] for name in preprocessing.feature_names_in_})


def metadata(
    config: RuntimeConfig, git: GitState, params: Mapping[str, Any], metrics: Mapping[str, Any], outs: Mapping[str, str]
) -> dict[str, Any]:
    """runtime.json: what the runtime is, and the commit, params, metrics and data it came from."""
    selected = str(metrics.get("metrics/classifiers.json", {}).get("selected", "unknown"))
    return {
        "name": config.name,
        "version": config.version,
        "artifact": artifact_name(config, git),
        "model": {"selected": selected, "source": CLASSIFIER, "preprocessing": PREPROCESSING, "schema": SCHEMA},
        "git": {"commit": git.commit, "short": git.commit[:7], "dirty": git.dirty},
        "data_version": outs.get("data/processed"),
        "dvc_lock_outs": dict(sorted(outs.items())),
        "params": dict(params),
        "metrics": dict(metrics),
    }


def generate_dockerfile(model: Path, folder: Path) -> None:
    """`mlflow models generate-dockerfile`: `folder`/Dockerfile serving `model`, copied to `folder`/MODEL_DIR."""
    command = [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "--env-manager", "local"]
    done = subprocess.run([*command, "-m", str(model), "-d", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeBuildError(f"mlflow models generate-dockerfile failed for {model}: {why}")


def save_model(folder: Path, model: Path, preprocessing: Path, schema: Path, example_split: Path) -> None:
    """Save the MLflow pyfunc model (`tabular_model.py` over the three files) in `folder`, with five raw rows of
    `example_split` as its input example, from which MLflow infers the signature."""
    import mlflow.pyfunc

    from lib.tracking.models import pip_requirements
    from runtimes import tabular_model

    fitted = pickle.loads(preprocessing.read_bytes())  # prepare_data's own output, as the model is
    example = raw_rows(pd.read_parquet(example_split), fitted, rows=5)
    with warnings.catch_warnings():
        # MLflow's hint that integer output columns cannot hold missing values: ours never do.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        mlflow.pyfunc.save_model(  # models from code
            str(folder),
            python_model=str(HERE / "tabular_model.py"),
            artifacts={
                tabular_model.MODEL: str(model),
                tabular_model.PREPROCESSING: str(preprocessing),
                tabular_model.SCHEMA: str(schema),
            },
            input_example=example,
            pip_requirements=pip_requirements(REQUIREMENTS),
        )


def build(project: Path, out_dir: Path, config: RuntimeConfig) -> Path:
    """Build the runtime from `project`'s current outputs into `out_dir`, replacing one of the same name."""
    project, out_dir = Path(project).resolve(), Path(out_dir).resolve()
    check_current(project)
    state = git_state(project)
    name = artifact_name(config, state)
    metrics = {path: json.loads((project / path).read_text(encoding="utf-8")) for path in METRICS}
    outs = lock_outputs(yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8")))
    info = metadata(config, state, ParamsFile.read(project / "params.yaml").data, metrics, outs)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}.") as scratch:
        model, staging = Path(scratch, "model"), Path(scratch, name)
        save_model(model, project / CLASSIFIER, project / PREPROCESSING, project / SCHEMA, project / EXAMPLE_SPLIT)
        generate_dockerfile(model, staging)
        (staging / METADATA_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    shutil.make_archive(str(final), "zip", root_dir=out_dir, base_dir=name)  # replaces an earlier zip
    return final


def built_runtime(folder: Path) -> Path:
    """`folder` when it holds a built runtime (its model and runtime.json); an error that says to build one."""
    if not (folder / MODEL_DIR / "MLmodel").is_file() or not (folder / METADATA_FILE).is_file():
        raise RuntimeBuildError(f"no runtime at {folder}: build it first (make runtime)")
    return folder


def runtime_dir(project: Path, out_dir: Path, config: RuntimeConfig) -> Path:
    """The folder of `project`'s current checkout's runtime under `out_dir`; an error when it is not built."""
    return built_runtime(Path(out_dir) / artifact_name(config, git_state(project)))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, build the runtime from the pipeline's outputs (or find it), print where it is."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where runtimes go (default: %(default)s)")
    parser.add_argument("--locate", action="store_true", help="print the built runtime's model folder, build nothing")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per copied file otherwise
    if args.locate:
        print(runtime_dir(Path("."), args.out, read_config()) / MODEL_DIR)
        return
    folder = build(Path("."), args.out, read_config())
    print(f"runtime: {folder} (and {folder.name}.zip)")
    print(f"serve it: mlflow models serve -m {folder / MODEL_DIR} --env-manager local (or make serve)")


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
