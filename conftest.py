"""Project-wide pytest rules: every test is marked `unittest` or `integration`."""

import pytest

KINDS = ("unittest", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail collection for a test that carries neither kind marker, so no test escapes the split."""
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(kind) for kind in KINDS)]
    if unmarked:
        raise pytest.UsageError(f"tests without a 'unittest' or 'integration' marker: {unmarked}")
