"""Write a stage's outputs all or nothing.

A stage computes everything first, then stages each file beside its final path and renames them all
into place only when every write succeeded, so a failure never leaves half-written outputs behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
