"""Each stage's entry point on bad input: one clear line, a non-zero exit, nothing written."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support import free_port, run, shrunk_params

pytestmark = pytest.mark.integration

PREPARE = "lab.processes.prepare_data.main"
CLASSIFIERS = "lab.processes.train_standard_classifiers.main"
DNN = "lab.processes.train_dnn_pytorch.main"
OUTPUT_ARGS = {
    PREPARE: ["--out-dir", "out/data", "--preprocessing", "out/pre.pkl", "--metrics", "out/data.json"],
    CLASSIFIERS: [
        "--data-dir",
        "data/processed",
        "--model",
        "out/m.pkl",
        "--metrics",
        "out/c.json",
        "--plots-dir",
        "out/p",
    ],
    DNN: ["--data-dir", "data/processed", "--model", "out/m.pt", "--metrics", "out/d.json", "--plots-dir", "out/p"],
}


def _stage(project: Path, module: str, params: dict | str, **env: str) -> tuple[int, list[str], float]:
    """Run `module` with `params` (a dict, or raw YAML text); return (exit code, stderr lines, seconds)."""
    text = params if isinstance(params, str) else yaml.safe_dump(params)
    (project / "bad.yaml").write_text(text)
    start = time.monotonic()
    done = run([sys.executable, "-m", module, "--params", "bad.yaml", *OUTPUT_ARGS[module]], project, **env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, lines, time.monotonic() - start


def _without(params: dict, section: str, key: str | None = None) -> dict:
    copy = yaml.safe_load(yaml.safe_dump(params))
    if key is None:
        del copy[section]
    else:
        del copy[section][key]
    return copy


def _with(section: str, **values: object) -> dict:
    return shrunk_params({section: values})


BAD_PARAMS = [
    pytest.param(
        PREPARE, _with("prepare_data", test_fraction=0.3), "prepare_data.test_fraction: unknown key", id="unknown-key"
    ),
    pytest.param(
        PREPARE,
        _with("prepare_data", val_size="0.2"),
        "prepare_data.val_size: input should be a valid number",
        id="wrong-type",
    ),
    pytest.param(
        PREPARE,
        _with("prepare_data", test_size=1.5),
        "prepare_data.test_size: input should be less than 1",
        id="out-of-range",
    ),
    pytest.param(
        PREPARE, _without(shrunk_params(), "prepare_data"), "missing section 'prepare_data'", id="missing-section"
    ),
    pytest.param(PREPARE, {**shrunk_params(), "seed": -1}, "seed: must be an integer", id="bad-seed"),
    pytest.param(
        CLASSIFIERS,
        _with("train_standard_classifiers", models=["svm_rbf"]),
        "train_standard_classifiers.models.0: input should be",
        id="unknown-classifier",
    ),
    pytest.param(
        CLASSIFIERS,
        _with("train_standard_classifiers", cv_folds=1),
        "train_standard_classifiers.cv_folds: input should be greater than or equal to 2",
        id="cv-folds",
    ),
    pytest.param(
        CLASSIFIERS,
        _with("train_standard_classifiers", hyperparams={"knn": {"neighbours": 3}}),
        "train_standard_classifiers.hyperparams.knn.neighbours: not a parameter",
        id="unknown-hyperparam",
    ),
    pytest.param(
        DNN, _with("train_dnn_pytorch", lr=0), "train_dnn_pytorch.lr: input should be greater than 0", id="lr-zero"
    ),
    pytest.param(
        DNN,
        _with("train_dnn_pytorch", device="tpu"),
        "train_dnn_pytorch.device: input should be 'auto', 'cpu' or 'cuda'",
        id="device",
    ),
    pytest.param(DNN, _without(shrunk_params(), "tracking"), "missing section 'tracking'", id="missing-tracking"),
    pytest.param(DNN, "train_dnn_pytorch: [unclosed\n", "bad.yaml: not valid YAML (line 2)", id="invalid-yaml"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy whose data/processed exists, so the training stages get as far as their params."""
    from tests.support import make_project_copy

    project = make_project_copy(tmp_path_factory.mktemp("entry") / "project", shrunk_params())
    done = run([sys.executable, "-m", PREPARE], project, MLFLOW_TRACKING_URI=f"sqlite:///{project}/mlflow.db")
    assert done.returncode == 0, done.stderr
    return project


@pytest.mark.parametrize(("module", "params", "message"), BAD_PARAMS)
def test_bad_params_give_one_line_and_write_nothing(
    prepared: Path, module: str, params: dict | str, message: str
) -> None:
    code, lines, _ = _stage(prepared, module, params)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert not (prepared / "out").exists()


def test_missing_input_data_is_named(prepared: Path) -> None:
    (prepared / "bad.yaml").write_text(yaml.safe_dump(shrunk_params()))
    done = run(
        [
            sys.executable,
            "-m",
            DNN,
            "--params",
            "bad.yaml",
            "--data-dir",
            "nowhere",
            "--model",
            "out/m.pt",
            "--metrics",
            "out/d.json",
            "--plots-dir",
            "out/p",
        ],
        prepared,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: nowhere/train.parquet: data file not found (run the prepare_data stage first)"
    assert not (prepared / "out").exists()


def test_malformed_input_data_is_named(prepared: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for split in ("train", "val", "test"):
        (broken / f"{split}.parquet").write_bytes((prepared / "data/processed" / f"{split}.parquet").read_bytes())
    (broken / "val.parquet").write_text("not,parquet\n1,2\n")
    (prepared / "bad.yaml").write_text(yaml.safe_dump(shrunk_params()))
    done = run(
        [
            sys.executable,
            "-m",
            CLASSIFIERS,
            "--params",
            "bad.yaml",
            "--data-dir",
            str(broken),
            "--model",
            "out/m.pkl",
            "--metrics",
            "out/c.json",
            "--plots-dir",
            "out/p",
        ],
        prepared,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {broken}/val.parquet: not a readable Parquet file (ArrowInvalid)"
    assert not (prepared / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n", "table.csv: no rows, only a header"),
        ("a,b,label\n1,,x\n3,,y\n" + "5,,x\n7,,y\n" * 10, "table.csv: column 'b' is entirely empty"),
        ("a,b,label\n1,2,x\n3,4,\n" + "5,6,x\n7,8,y\n" * 10, "table.csv: target 'label' is missing in 1 of 22 rows"),
        ("a,b,label\n" + "5,6,x\n" * 30, "table.csv: target 'label' has only one class, 'x'"),
        ("a,b,label\n1,2,y\n" + "5,6,x\n" * 30, "table.csv: class 'y' has 1 rows, at least 10 are needed to split"),
        ("a,label\n" + "5,x\n" * 30, "table.csv: no column 'b' (named in prepare_data.features)"),
    ],
    ids=["no-rows", "empty-column", "target-gaps", "one-class", "small-class", "missing-column"],
)
def test_a_bad_user_table_gets_one_line_and_writes_nothing(prepared: Path, text: str, message: str) -> None:
    (prepared / "table.csv").write_text(text)
    params = _with("prepare_data", source="table.csv", target="label", features=["a", "b"])
    code, lines, _ = _stage(prepared, PREPARE, params)
    assert code == 2
    assert lines == [f"error: {message}"]
    assert not (prepared / "out").exists()


def test_a_class_too_small_for_the_classifiers_cv_folds_is_named_before_any_output(prepared: Path) -> None:
    (prepared / "table.csv").write_text("a,label\n" + "1,y\n" * 12 + "5,x\n" * 40)
    params = shrunk_params({"prepare_data": {"source": "table.csv", "target": "label"}})
    params["train_standard_classifiers"]["cv_folds"] = 10
    code, lines, _ = _stage(prepared, PREPARE, params)
    assert code == 2
    assert lines == [
        "error: table.csv: class 'y' has 12 rows, at least 17 are needed for train_standard_classifiers.cv_folds = 10 "
        "(each fold needs one in the train split)"
    ]
    assert not (prepared / "out").exists()


@pytest.mark.parametrize("module", [PREPARE, CLASSIFIERS, DNN])
def test_an_output_folder_that_cannot_be_written_is_named_before_any_work(prepared: Path, module: str) -> None:
    (prepared / "out").write_text("a file where the outputs' folder should be")
    try:
        code, lines, seconds = _stage(prepared, module, shrunk_params())
    finally:
        (prepared / "out").unlink()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: out/") and "'out' is a file, not a folder" in lines[0]
    assert not (prepared / ".checkpoints").exists()  # no training started
    assert seconds < 120  # imports only; loose, as the suite runs two at a time


def test_an_unreachable_tracking_server_fails_fast_before_training_in_strict_mode(prepared: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    code, lines, seconds = _stage(prepared, DNN, shrunk_params(), MLFLOW_TRACKING_URI=uri, REPROLAB_TRACKING_STRICT="1")
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: MLflow tracking server {uri} does not answer"), lines
    # Seconds, not the minutes MLflow's own retries would take; loose, as the suite runs two at a time.
    assert seconds < 30
    assert not (prepared / "out").exists()


def test_an_unreachable_tracking_server_is_one_warning_and_the_stage_completes(prepared: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    journaled = {"REPROLAB_TRACKING": "journal", "REPROLAB_SYNC_PATIENCE": "5"}
    code, lines, _ = _stage(prepared, PREPARE, shrunk_params(), MLFLOW_TRACKING_URI=uri, **journaled)
    assert code == 0, lines
    assert len(lines) == 1 and lines[0].startswith(f"warning: MLflow tracking server {uri} does not answer"), lines
    assert (prepared / "out" / "data.json").is_file()
    # The run waits in its journal: nothing of it is lost.
    recorded = [path for path in (prepared / ".reprolab" / "journal").glob("*-prepare_data-*.jsonl")]
    assert any('"op":"update_run","status":"FINISHED"' in path.read_text() for path in recorded)
    shutil.rmtree(prepared / "out")  # the module's other tests expect none


def test_a_stage_logs_to_a_tracking_server(prepared: Path, mlflow_server: str) -> None:
    import mlflow

    params = shrunk_params()
    (prepared / "good.yaml").write_text(yaml.safe_dump(params))
    done = run(
        [sys.executable, "-m", PREPARE, "--params", "good.yaml", *OUTPUT_ARGS[PREPARE]],
        prepared,
        MLFLOW_TRACKING_URI=mlflow_server,
        GITHUB_REF_TYPE="tag",
        GITHUB_REF_NAME="run-server-test",
    )
    assert done.returncode == 0, done.stderr
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("reprolab-example")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.tags["git.tag"] == "run-server-test"
    assert found.data.tags["dvc.stage"] == "prepare_data"
    assert found.data.metrics["train/rows"] == 341
    assert found.data.tags["task"] == "binary"
    assert {"pre.pkl", "schema.json"} <= {a.path for a in client.list_artifacts(found.info.run_id)}
    # The last line says where the results are: the outputs, and the run the sync makes on the server.
    key = found.data.tags["reprolab.journal_key"]
    where = (
        f"out/data, out/pre.pkl, out/data.json; MLflow run 'prepare_data' of experiment 'reprolab-example' "
        f"(tag reprolab.journal_key={key}): {mlflow_server}/#/experiments"
    )
    assert done.stdout.splitlines()[-1] == f"prepare_data: results in {where}", done.stdout


@pytest.mark.parametrize("module", [PREPARE, CLASSIFIERS, DNN])
def test_help_answers_without_heavy_imports(module: str, tmp_path: Path) -> None:
    probe = (
        f"import sys, runpy; sys.argv = ['x', '--help']\n"
        f"try:\n    runpy.run_module('{module}', run_name='__main__')\nexcept SystemExit as exit:\n"
        f"    assert exit.code == 0\n"
        f"heavy = sorted(m for m in ('torch', 'sklearn', 'mlflow', 'pandas', 'matplotlib') if m in sys.modules)\n"
        f"print('HEAVY', heavy)\n"
    )
    from lib.paths import PROJ_ROOT

    done = run([sys.executable, "-c", probe], PROJ_ROOT)
    assert done.returncode == 0, done.stderr
    assert "--params" in done.stdout and "HEAVY []" in done.stdout, done.stdout
