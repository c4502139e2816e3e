"""Project-wide pytest rules: every test is marked `unittest` or `integration` (or `goals`, under goals/)."""

import os

import pytest

KINDS = ("unittest", "integration", "goals")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail collection for a test that carries neither kind marker, so no test escapes the split."""
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(kind) for kind in KINDS)]
    if unmarked:
        raise pytest.UsageError(f"tests without a 'unittest', 'integration' or 'goals' marker: {unmarked}")
    needing_cuda = [item for item in items if item.get_closest_marker("cuda")]
    if needing_cuda:
        import torch  # only when a CUDA test was collected: most runs never pay for the import

        if not torch.cuda.is_available():
            for item in needing_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


def pytest_configure(config: pytest.Config) -> None:
    """Tests never reach the network: MLflow's usage telemetry is off for them and their children."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    # Tests read MLflow right after a run ends: each waits for its sync (tests/support.py's clean_env keeps it).
    os.environ.setdefault("REPROLAB_STAGE_SYNC_WAIT", "120")
