"""tracking.py: param flattening, run tags, the tracking-server check, and runs in a real local store."""

import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib import tracking
from lib.errors import ReprolabError
from lib.tracking import (
    ENV_BRANCH,
    ENV_PIPELINE_RUN_ID,
    ENV_URI,
    TrackingUnavailable,
    check_tracking_server,
    flatten,
    pip_requirements,
    pipeline_run_id,
    run_tags,
)

# Each test carries its own marker (no module-wide `pytestmark`): markers add up, and the test that
# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.

# Variables that steer run tags or HTTP requests; each test starts without them.
_ENVIRONMENT = (
    ENV_URI,
    ENV_PIPELINE_RUN_ID,
    ENV_BRANCH,
    "GITHUB_SHA",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "GITHUB_REF_TYPE",
    "RUNNER_NAME",
    "DVC_EXP_NAME",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No CI, proxy or tracking variables from the outer shell, and no cached pipeline run id."""
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    pipeline_run_id.cache_clear()
    yield
    pipeline_run_id.cache_clear()


@pytest.fixture
def fake_git(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, ...], str | None]:
    """Answers to `git` commands, keyed by their arguments; the real git is never run."""
    answers: dict[tuple[str, ...], str | None] = {
        ("rev-parse", "HEAD"): "c0ffee",
        ("rev-parse", "--abbrev-ref", "HEAD"): "feature/x",
        ("status",): "",
    }
    monkeypatch.setattr(tracking, "_git", lambda *args: answers[args[:1] if args[0] == "status" else args])
    return answers


# ---- flatten and pip_requirements -------------------------------------------------------------------


@pytest.mark.unittest
def test_flatten_joins_nested_keys_with_dots_and_stringifies_values() -> None:
    params = {"a": {"b": 1, "c": {"d": 0.5}}, "e": [1, 2], "f": None, "g": True}

    assert flatten(params) == {"a.b": "1", "a.c.d": "0.5", "e": "[1, 2]", "f": "None", "g": "True"}


@pytest.mark.unittest
def test_flatten_of_an_empty_mapping_and_with_a_prefix() -> None:
    assert flatten({}) == {}
    assert flatten({"x": {"y": 2}}, prefix="train.") == {"train.x.y": "2"}


@pytest.mark.unittest
def test_pip_requirements_drop_local_build_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"torch": "2.13.0+cpu", "numpy": "2.3.1"}
    monkeypatch.setattr(tracking.metadata, "version", versions.__getitem__)

    assert pip_requirements(["torch", "numpy"]) == ["torch==2.13.0", "numpy==2.3.1"]


@pytest.mark.unittest
def test_pip_requirements_pin_the_installed_version() -> None:
    import pydantic

    assert pip_requirements(["pydantic"]) == [f"pydantic=={pydantic.VERSION}"]


# ---- check_tracking_server --------------------------------------------------------------------------


@pytest.mark.unittest
@pytest.mark.parametrize("uri", [None, "file:///tmp/mlruns", "sqlite:///mlflow.db", "./mlruns"])
def test_local_stores_need_no_check(uri: str | None) -> None:
    started = time.monotonic()

    check_tracking_server(uri)

    assert time.monotonic() - started < 0.5


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.unittest
def test_a_closed_port_is_unavailable_within_seconds() -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()

    with pytest.raises(TrackingUnavailable) as caught:
        check_tracking_server(uri)

    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"MLflow tracking server {uri} does not answer (")
    assert message.endswith(f"); start it, or unset {ENV_URI} to log to the local store")
    assert "refused" in message.lower()
    assert "\n" not in message
    assert isinstance(caught.value, ReprolabError)


@pytest.mark.unittest
def test_a_silent_server_is_unavailable_after_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel accepts connections, nobody ever answers
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()

        with pytest.raises(TrackingUnavailable) as caught:
            check_tracking_server(uri, timeout=0.5)

    assert 0.4 < time.monotonic() - started < 5
    assert str(caught.value) == (
        f"MLflow tracking server {uri} does not answer (timed out); "
        f"start it, or unset {ENV_URI} to log to the local store"
    )


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("uri", "reason"), [("http://127.0.0.1:port", "nonnumeric port: 'port'"), ("http://[::1", "Invalid IPv6 URL")]
)
def test_a_malformed_uri_is_a_one_line_error(uri: str, reason: str) -> None:

    with pytest.raises(TrackingUnavailable) as caught:
        check_tracking_server(uri)

    assert str(caught.value) == (
        f"MLflow tracking server {uri} does not answer ({reason}); "
        f"start it, or unset {ENV_URI} to log to the local store"
    )


@pytest.mark.unittest
def test_a_server_that_does_not_speak_http_is_a_one_line_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def greet() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=greet, daemon=True)
        thread.start()
        with pytest.raises(TrackingUnavailable) as caught:
            check_tracking_server(uri, timeout=2)
        thread.join(timeout=2)

    assert str(caught.value) == (
        f"MLflow tracking server {uri} does not answer (SSH-2.0-OpenSSH_9.6); "
        f"start it, or unset {ENV_URI} to log to the local store"
    )


class _Health(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the server's `status`, recording the paths asked for."""

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    """An HTTP server on 127.0.0.1 that answers with `server.status` (200 unless a test changes it)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.status = 200  # type: ignore[attr-defined]
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _uri(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.unittest
def test_a_healthy_server_passes(health_server: http.server.HTTPServer) -> None:
    check_tracking_server(_uri(health_server) + "/")

    assert health_server.paths == ["/health"]  # type: ignore[attr-defined]


@pytest.mark.unittest
@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_server_that_answers_a_client_error_passes(health_server: http.server.HTTPServer, status: int) -> None:
    health_server.status = status  # type: ignore[attr-defined]

    check_tracking_server(_uri(health_server))

    assert health_server.paths == ["/health"]  # type: ignore[attr-defined]


@pytest.mark.unittest
@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_unavailable(health_server: http.server.HTTPServer, status: int) -> None:
    health_server.status = status  # type: ignore[attr-defined]
    uri = _uri(health_server)

    with pytest.raises(TrackingUnavailable) as caught:
        check_tracking_server(uri)

    assert str(caught.value) == (
        f"MLflow tracking server {uri} does not answer (HTTP {status}); "
        f"start it, or unset {ENV_URI} to log to the local store"
    )


@pytest.mark.unittest
def test_prepare_checks_the_server_before_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in tracking._HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(ENV_URI, f"http://127.0.0.1:{_closed_port()}")

    with pytest.raises(TrackingUnavailable, match="does not answer"):
        tracking.prepare("exp")


# ---- pipeline_run_id and run_tags -------------------------------------------------------------------


@pytest.mark.unittest
def test_pipeline_run_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PIPELINE_RUN_ID, "run-2024-01")

    assert pipeline_run_id() == "run-2024-01"


@pytest.mark.unittest
def test_pipeline_run_id_without_the_environment_is_a_stable_hex_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "_dvc_ancestor", lambda: None)

    first = pipeline_run_id()

    assert len(first) == 32
    int(first, 16)
    assert pipeline_run_id() == first


@pytest.mark.unittest
def test_pipeline_run_id_is_shared_by_stages_of_one_dvc_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "_dvc_ancestor", lambda: (4242, 1700000000.5))
    first = pipeline_run_id()
    pipeline_run_id.cache_clear()
    second = pipeline_run_id()
    pipeline_run_id.cache_clear()
    monkeypatch.setattr(tracking, "_dvc_ancestor", lambda: (4243, 1700000000.5))

    assert first == second
    assert pipeline_run_id() != first


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_tie_a_run_to_code_stage_and_pipeline_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PIPELINE_RUN_ID, "pipe-1")
    monkeypatch.setenv("RUNNER_NAME", "runner-7")

    tags = run_tags("train_forest")

    assert tags == {
        "mlflow.source.git.commit": "c0ffee",
        "git.commit": "c0ffee",
        "git.branch": "feature/x",
        "git.dirty": "false",
        "dvc.stage": "train_forest",
        "pipeline_run_id": "pipe-1",
        "runner": "runner-7",
    }


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_runner_defaults_to_the_host_name() -> None:
    assert run_tags("s")["runner"] == socket.gethostname()


@pytest.mark.unittest
def test_run_tags_report_a_dirty_tree_but_not_pipeline_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("code.py", "dvc.lock", "metrics/dnn.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", *command], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "untracked.txt").write_text("new\n")
    (tmp_path / "dvc.lock").write_text("v2\n")  # DVC rewrites these during `dvc repro`
    (tmp_path / "metrics/dnn.json").write_text("v2\n")

    assert run_tags("s")["git.dirty"] == "false"

    (tmp_path / "code.py").write_text("v2\n")

    assert run_tags("s")["git.dirty"] == "true"


@pytest.mark.unittest
def test_run_tags_without_git_say_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "_git", lambda *args: None)

    tags = run_tags("s")

    assert (tags["git.commit"], tags["git.branch"], tags["git.dirty"]) == ("unknown", "unknown", "unknown")


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_take_the_tag_only_from_a_tag_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF_NAME", "v1.2.0")
    assert "git.tag" not in run_tags("s")

    monkeypatch.setenv("GITHUB_REF_TYPE", "tag")
    tags = run_tags("s")

    assert tags["git.tag"] == "v1.2.0"
    assert tags["git.branch"] == "feature/x"


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_take_the_branch_from_a_branch_ref_and_the_commit_from_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF_TYPE", "branch")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.setenv("GITHUB_SHA", "abc123")

    tags = run_tags("s")

    assert (tags["git.branch"], tags["git.commit"], tags["mlflow.source.git.commit"]) == ("main", "abc123", "abc123")
    assert "git.tag" not in tags


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_the_branch_variable_overrides_ci_and_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_HEAD_REF", "pr-branch")
    assert run_tags("s")["git.branch"] == "pr-branch"

    monkeypatch.setenv(ENV_BRANCH, "chosen")

    assert run_tags("s")["git.branch"] == "chosen"


@pytest.mark.unittest
@pytest.mark.usefixtures("fake_git")
def test_run_tags_add_the_device_and_dvc_experiment_when_known(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "device" not in run_tags("s")
    assert "dvc.experiment" not in run_tags("s")

    monkeypatch.setenv("DVC_EXP_NAME", "exp-abc")
    tags = run_tags("s", device="cuda")

    assert (tags["device"], tags["dvc.experiment"]) == ("cuda", "exp-abc")


# ---- a real local MLflow store ----------------------------------------------------------------------


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store in tmp_path, with artifacts under tmp_path too."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv(ENV_URI, uri)
    monkeypatch.setenv(ENV_PIPELINE_RUN_ID, "pipe-42")
    for name, value in tracking._HTTP_DEFAULTS.items():  # prepare() sets these; restore them after
        monkeypatch.setenv(name, value)
    return uri


@pytest.mark.integration
def test_stage_run_logs_params_tags_nested_runs_and_plots(local_store: str, tmp_path: Path) -> None:
    import mlflow

    png = tmp_path / "curves.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")  # log_pngs logs the file as it is; its content is not read

    tracking.prepare("exp")
    with tracking.stage_run("stage_x", {"a": {"b": 1}, "seed": 7}, device="cpu") as parent_id:
        tracking.log_pngs([png])
        with tracking.stage_run("stage_x", {"fold": 0}, nested_name="fold_0") as child_id:
            pass
    assert mlflow.active_run() is None

    client = mlflow.MlflowClient(local_store)
    parent, child = client.get_run(parent_id), client.get_run(child_id)
    experiment = client.get_experiment_by_name("exp")
    assert experiment is not None
    assert parent.info.experiment_id == experiment.experiment_id
    assert parent.info.run_name == "stage_x"
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"a.b": "1", "seed": "7"}
    assert parent.data.tags["dvc.stage"] == "stage_x"
    assert parent.data.tags["pipeline_run_id"] == "pipe-42"
    assert parent.data.tags["device"] == "cpu"
    assert [a.path for a in client.list_artifacts(parent_id, "plots")] == ["plots/curves.png"]
    assert child.info.run_name == "fold_0"
    assert child.data.params == {"fold": "0"}
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert child.data.tags["dvc.stage"] == "stage_x"

    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id], filter_string="tags.dvc.stage = 'stage_x'")
    assert sorted(runs["run_id"]) == sorted([parent_id, child_id])


@pytest.mark.integration
def test_stage_run_resumes_a_run_that_exists_and_starts_a_new_one_otherwise(local_store: str) -> None:
    import mlflow

    tracking.prepare("exp")
    with tracking.stage_run("stage_x", {"lr": 0.1}) as first_id:
        mlflow.log_metrics({"train/loss": 0.5}, step=1)
    with tracking.stage_run("stage_x", {"lr": 0.1}, resume_run_id=first_id) as resumed_id:
        assert tracking.logged_steps(resumed_id, "train/loss") == {1}
        mlflow.log_metrics({"train/loss": 0.4}, step=2)
    with tracking.stage_run("stage_x", {"lr": 0.1}, resume_run_id="0" * 32) as new_id:
        pass

    client = mlflow.MlflowClient(local_store)
    assert resumed_id == first_id and new_id != first_id
    assert [m.step for m in client.get_metric_history(first_id, "train/loss")] == [1, 2]
    assert client.get_run(first_id).data.params == {"lr": "0.1"}
    assert client.get_run(new_id).data.params == {"lr": "0.1"}
    assert tracking.logged_steps(new_id, "train/loss") == set()
    assert not tracking.resumable_run("0" * 32)


# ---- the default local store, anchored at the DVC project root --------------------------------------


@pytest.fixture
def restore_mlflow_uri() -> Iterator[None]:
    """use_local_store() sets MLflow's process-wide tracking URI, which outranks the environment: undo it."""
    from mlflow.tracking._tracking_service import utils

    saved = utils._tracking_uri
    yield
    utils._tracking_uri = saved


@pytest.mark.unittest
def test_the_local_store_root_is_dvc_root_when_dvc_runs_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking.local_store_root() == tmp_path.resolve()

    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))

    assert tracking.local_store_root() == (tmp_path / "project").resolve()
    assert tracking.local_store_uri(tmp_path / "project") == f"sqlite:///{(tmp_path / 'project').resolve()}/mlflow.db"


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("experiment", "folder"),
    [("reprolab-example", "reprolab-example"), ("/Users/a b/x", "Users-a-b-x"), ("..", "experiment")],
)
def test_local_artifact_locations_are_one_folder_per_experiment_under_mlruns(experiment: str, folder: str) -> None:
    assert tracking.local_artifact_location(Path("/p"), experiment) == f"file:///p/mlruns/{folder}"


@pytest.mark.integration
@pytest.mark.usefixtures("restore_mlflow_uri")
def test_a_queued_experiment_logs_to_the_store_of_the_parent_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage run in DVC's temporary copy (.dvc/tmp/exps/...) with DVC_ROOT at the project: nothing stays
    in the copy; the run and its artifacts are in the project's store."""
    import mlflow

    project = tmp_path / "project"
    copy = project / ".dvc" / "tmp" / "exps" / "tmpabc"
    copy.mkdir(parents=True)
    (copy / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(project))
    monkeypatch.setenv("DVC_EXP_NAME", "lr-1")
    for name, value in tracking._HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)

    tracking.prepare("exp")
    with tracking.stage_run("stage_x", {"lr": 0.1}) as run_id:
        tracking.log_pngs([copy / "curves.png"])

    assert sorted(path.name for path in copy.iterdir()) == ["curves.png"]
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlflow.db")
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags["dvc.experiment"]) == ("FINISHED", "lr-1")
    assert run.info.artifact_uri == f"{(project / 'mlruns' / 'exp').as_uri()}/{run_id}/artifacts"
    assert (project / "mlruns" / "exp" / run_id / "artifacts" / "plots" / "curves.png").is_file()


@pytest.mark.integration
@pytest.mark.usefixtures("restore_mlflow_uri")
def test_use_local_store_creates_the_store_and_experiment_once(tmp_path: Path) -> None:
    import mlflow

    first = tracking.use_local_store("exp", tmp_path)
    again = tracking.use_local_store("exp", tmp_path)

    assert first == again == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    experiments = [e.name for e in mlflow.MlflowClient(first).search_experiments()]
    assert sorted(experiments) == ["Default", "exp"]


@pytest.mark.integration
def test_epoch_logger_logs_the_epochs_a_kill_cut_off_and_skips_those_already_logged(local_store: str) -> None:
    import mlflow

    tracking.prepare("exp")
    with tracking.stage_run("stage_x", {"lr": 0.1}) as run_id:
        mlflow.log_metrics({"train/loss": 0.5, "val/loss": 0.6}, step=1)
    history = [{"epoch": 1, "train/loss": 0.5, "val/loss": 0.6}, {"epoch": 2, "train/loss": 0.4, "val/loss": 0.5}]
    with tracking.stage_run("stage_x", {"lr": 0.1}, resume_run_id=run_id):
        log_epoch = tracking.epoch_logger(run_id, history, resumed=True)
        log_epoch(2, {"train/loss": 0.4, "val/loss": 0.5})  # already replayed from the history
        log_epoch(3, {"train/loss": 0.3, "val/loss": 0.45})

    client = mlflow.MlflowClient(local_store)
    train_loss = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in train_loss] == [(1, 0.5), (2, 0.4), (3, 0.3)]
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [1, 2, 3]
