"""Content hashes: of a file, of every file in a folder, and of a set of values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (`md5` is what DVC records in dvc.lock)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def directory_digest(directory: Path, algorithm: str = "sha256") -> dict[str, str]:
    """The digest of every file under `directory`, keyed by its path relative to it."""
    directory = Path(directory)
    return {
        path.relative_to(directory).as_posix(): file_digest(path, algorithm)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def fingerprint(**parts: Any) -> str:
    """A SHA-256 of `parts` (params, seed, data digests, ...) as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
