"""The lock's platform check (.ci/lock_platforms.py), against a made-up index: no network."""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import pytest

from lib.paths import PROJ_ROOT

pytestmark = pytest.mark.unittest

_spec = importlib.util.spec_from_file_location("lock_platforms", PROJ_ROOT / ".ci" / "lock_platforms.py")
lock_platforms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_platforms)

INDEX = {
    "pure": {"a" * 64: "pure-1.0-py3-none-any.whl"},
    "native": {
        "b" * 64: "native-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "c" * 64: "native-2.0-cp312-cp312-macosx_11_0_arm64.whl",
        "d" * 64: "native-2.0-cp312-cp312-manylinux_2_28_aarch64.whl",  # on the index, not in the lock
    },
    "winonly": {"e" * 64: "winonly-1.0-py3-none-win_amd64.whl"},
    "antlr4-python3-runtime": {"f" * 64: "antlr4-python3-runtime-4.9.3.tar.gz"},
    "builds": {"9" * 64: "builds-0.1.tar.gz"},
}


def lock(**packages: dict) -> dict:
    sources = [{"name": "pypi", "url": "https://pypi.example/simple", "verify_ssl": True}]
    return {"_meta": {"sources": sources}, "default": packages}


def fetch(index: str, name: str) -> dict[str, str]:
    assert index == "https://pypi.example/simple"
    if name not in INDEX:
        raise OSError("404")
    return INDEX[name]


def entry(*digits: str, markers: str | None = None) -> dict:
    return {"version": "==1.0", "hashes": [f"sha256:{d * 64}" for d in digits]} | (
        {"markers": markers} if markers else {}
    )


def test_a_pure_python_wheel_fits_every_platform_and_python() -> None:
    assert lock_platforms.gaps(lock(pure=entry("a")), lock_platforms.AIMED, fetch) == []


def test_names_each_platform_and_python_a_native_package_lacks_a_locked_wheel_for() -> None:
    targets = [("linux-x86_64", "3.11"), ("linux-x86_64", "3.12"), ("macos-arm64", "3.12"), ("linux-aarch64", "3.12")]
    # The aarch64 wheel is on the index but not among the lock's hashes: it does not count.
    assert lock_platforms.gaps(lock(native=entry("b", "c")), targets, fetch) == [
        "native==1.0: no locked wheel for linux-x86_64 Python 3.12, linux-aarch64 Python 3.12"
    ]


def test_markers_leave_out_the_platforms_a_package_is_not_for() -> None:
    windows_only = entry("e", markers="sys_platform == 'win32'")
    assert lock_platforms.gaps(lock(winonly=windows_only), lock_platforms.AIMED, fetch) == []
    assert (
        lock_platforms.gaps(
            lock(native=entry("b", markers="python_version < '3.12'")), [("linux-x86_64", "3.12")], fetch
        )
        == []
    )


def test_an_sdist_passes_only_for_a_package_known_to_be_pure_python() -> None:
    targets = [("macos-arm64", "3.13")]
    assert lock_platforms.gaps(lock(**{"antlr4-python3-runtime": entry("f")}), targets, fetch) == []
    assert lock_platforms.gaps(lock(builds=entry("9")), targets, fetch) == [
        "builds==1.0: only an sdist is locked for macos-arm64 Python 3.13"
    ]


def test_an_index_that_cannot_be_read_is_named() -> None:
    assert lock_platforms.gaps(lock(gone=entry("a")), [("linux-x86_64", "3.11")], fetch) == [
        "gone==1.0: https://pypi.example/simple could not be read (404)"
    ]


def test_the_html_page_of_an_index_without_the_json_api_gives_the_files_by_hash(monkeypatch) -> None:
    page = (
        b'<a href="https://files.example/whl/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl#sha256='
        + b"1" * 64
        + b'">x</a>'
    )

    class Response:
        headers: ClassVar = {"Content-Type": "text/html"}

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self) -> bytes:
            return page

    monkeypatch.setattr(lock_platforms.urllib.request, "urlopen", lambda request, timeout: Response())
    assert lock_platforms.fetch_index("https://index.example/whl/cpu", "torch") == {
        "1" * 64: "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    }
