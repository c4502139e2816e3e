"""digests.py: content hashes of files and folders, and fingerprints of values."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.digests import directory_digest, fingerprint

pytestmark = pytest.mark.unittest


def test_fingerprint_changes_with_every_part_and_not_with_key_order() -> None:
    base = {"params": {"lr": 0.1, "epochs": 3}, "seed": 1, "data": {"train.parquet": "ab"}, "processes": 1}

    assert fingerprint(**base) == fingerprint(**dict(reversed(base.items())))
    assert fingerprint(**base) == fingerprint(**{**base, "params": {"epochs": 3, "lr": 0.1}})
    for change in ({"seed": 2}, {"params": {"lr": 0.2, "epochs": 3}}, {"data": {"train.parquet": "ac"}}):
        assert fingerprint(**{**base, **change}) != fingerprint(**base), change


def test_directory_digest_hashes_every_file_by_relative_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "train.parquet").write_bytes(b"one")
    (tmp_path / "sub" / "val.parquet").write_bytes(b"two")
    before = directory_digest(tmp_path)

    (tmp_path / "train.parquet").write_bytes(b"ONE")

    assert sorted(before) == ["sub/val.parquet", "train.parquet"]
    after = directory_digest(tmp_path)
    assert after["train.parquet"] != before["train.parquet"]
    assert after["sub/val.parquet"] == before["sub/val.parquet"]
