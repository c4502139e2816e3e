"""models.py: the pinned requirements logged with every model."""

import pytest

from lib.tracking import models
from lib.tracking.models import pip_requirements

# Each test carries its own marker (no module-wide `pytestmark`): markers add up, and a test that
# creates an MLflow store must be `integration` only, so that `-m unittest` stays fast.


@pytest.mark.unittest
def test_pip_requirements_drop_local_build_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"torch": "2.13.0+cpu", "numpy": "2.3.1"}
    monkeypatch.setattr(models.metadata, "version", versions.__getitem__)

    assert pip_requirements(["torch", "numpy"]) == ["torch==2.13.0", "numpy==2.3.1"]


@pytest.mark.unittest
def test_pip_requirements_pin_the_installed_version() -> None:
    import pydantic

    assert pip_requirements(["pydantic"]) == [f"pydantic=={pydantic.VERSION}"]
