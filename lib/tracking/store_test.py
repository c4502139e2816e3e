"""store.py: the tracking-server check, and the local store anchored at the DVC project root."""

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.errors import ReprolabError
from lib.tracking import runs, store, sync
from lib.tracking.store import ENV_URI, TrackingUnavailable, check_tracking_server

# Each test carries its own marker (no module-wide `pytestmark`): markers add up, and a test that
# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.

# ---- check_tracking_server --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("uri", [None, "file:///tmp/mlruns", "sqlite:///mlflow.db", "./mlruns"])
def test_local_stores_need_no_check(uri: str | None) -> None:
    started = time.monotonic()

    check_tracking_server(uri)

    assert time.monotonic() - started < 0.5


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_a_healthy_server_passes(health_server: http.server.HTTPServer) -> None:
    check_tracking_server(_uri(health_server) + "/")

    assert health_server.paths == ["/health"]  # type: ignore[attr-defined]


@pytest.mark.integration
@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_server_that_answers_a_client_error_passes(health_server: http.server.HTTPServer, status: int) -> None:
    health_server.status = status  # type: ignore[attr-defined]

    check_tracking_server(_uri(health_server))

    assert health_server.paths == ["/health"]  # type: ignore[attr-defined]


@pytest.mark.integration
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
    for name, value in store._HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(ENV_URI, f"http://127.0.0.1:{_closed_port()}")

    with pytest.raises(TrackingUnavailable, match="does not answer"):
        store.prepare("exp")


@pytest.mark.unittest
@pytest.mark.parametrize(("variable", "value"), [(store.ENV_STRICT, "1"), ("REPROLAB_TRACKING", "direct")])
def test_preflight_fails_fast_in_strict_mode_and_for_direct_logging(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(ENV_URI, f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv(variable, value)

    with pytest.raises(TrackingUnavailable, match="does not answer"):
        store.preflight()


@pytest.mark.unittest
def test_preflight_warns_in_one_line_with_the_reason_when_the_server_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(ENV_URI, uri)

    store.preflight()

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: MLflow tracking server {uri} does not answer (")
    assert "refused" in line.lower() and f"{store.ENV_STRICT}=1" in line
    assert store.warned_unreachable


# ---- the default local store, anchored at the DVC project root --------------------------------------


@pytest.mark.unittest
def test_the_local_store_root_is_dvc_root_when_dvc_runs_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert store.local_store_root() == tmp_path.resolve()

    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))

    assert store.local_store_root() == (tmp_path / "project").resolve()
    assert store.local_store_uri(tmp_path / "project") == f"sqlite:///{(tmp_path / 'project').resolve()}/mlflow.db"


@pytest.mark.unittest
@pytest.mark.parametrize(
    ("experiment", "folder"),
    [("reprolab-example", "reprolab-example"), ("/Users/a b/x", "Users-a-b-x"), ("..", "experiment")],
)
def test_local_artifact_locations_are_one_folder_per_experiment_under_mlruns(experiment: str, folder: str) -> None:
    assert store.local_artifact_location(Path("/p"), experiment) == f"file:///p/mlruns/{folder}"


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
    for name, value in store._HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)

    store.preflight()
    with runs.journal_run("stage_x", "exp", {"lr": 0.1}) as recorded:
        runs.log_pngs(recorded, [copy / "curves.png"])
    assert sync.sync_all(project, wait=60) == []

    assert sorted(path.name for path in copy.iterdir()) == ["curves.png"]
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    run_id = run.info.run_id
    assert (run.info.status, run.data.tags["dvc.experiment"]) == ("FINISHED", "lr-1")
    assert run.info.artifact_uri == f"{(project / 'mlruns' / 'exp').as_uri()}/{run_id}/artifacts"
    assert (project / "mlruns" / "exp" / run_id / "artifacts" / "plots" / "curves.png").is_file()


@pytest.mark.integration
@pytest.mark.usefixtures("restore_mlflow_uri")
def test_use_local_store_creates_the_store_and_experiment_once(tmp_path: Path) -> None:
    import mlflow

    first = store.use_local_store("exp", tmp_path)
    again = store.use_local_store("exp", tmp_path)

    assert first == again == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    experiments = [e.name for e in mlflow.MlflowClient(first).search_experiments()]
    assert sorted(experiments) == ["Default", "exp"]
