"""Write a stage's outputs all or nothing: each file is staged beside its final path and renamed into place
only when every write succeeded, so a failure never leaves half-written outputs behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lib.errors import ReprolabError


class Outputs:
    """Temporary paths for a set of outputs, moved into place together by `commit_outputs`."""

    def __init__(self) -> None:
        self.pending: dict[Path, Path] = {}  # final path -> temporary path

    def path(self, final: Path) -> Path:
        """A temporary path to write `final` to; its parent directory is created."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.pending[final] = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        return self.pending[final]

    def write_text(self, final: Path, text: str) -> None:
        """Stage `text` for `final`."""
        self.path(final).write_text(text, encoding="utf-8")

    def write_json(self, final: Path, data: Any) -> None:
        """Stage `data` for `final` as indented JSON with sorted keys: equal data, equal bytes."""
        self.write_text(final, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextmanager
def commit_outputs() -> Iterator[Outputs]:
    """Yield an `Outputs`; on success every staged file replaces its final path, on error none does."""
    outputs = Outputs()
    try:
        yield outputs
    except BaseException:
        for temporary in outputs.pending.values():
            temporary.unlink(missing_ok=True)
        raise
    for final, temporary in outputs.pending.items():
        os.replace(temporary, final)


class OutputError(ReprolabError):
    """An output path cannot be written."""


def check_writable(paths: Iterable[Path]) -> None:
    """Raise an OutputError naming the first of `paths` (files or folders) whose folder, or its nearest existing
    ancestor, does not take a new file; called before any work, so a read-only folder ends a stage at once."""
    for path in map(Path, paths):
        folder = path if path.is_dir() else path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{path}: cannot be written: '{folder}' is a file, not a folder")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise OutputError(f"{path}: cannot be written: '{folder}' is not writable ({exc.strerror})") from None
