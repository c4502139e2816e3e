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


def json_text(data: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, trailing newline (byte-identical for equal data)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


class Outputs:
    """Temporary paths for a set of outputs, moved into place together by `commit_outputs`."""

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}

    def path(self, final: Path) -> Path:
        """A temporary path to write `final` to; its parent directory is created."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        self._pending[final] = temporary
        return temporary

    def write_text(self, final: Path, text: str) -> None:
        """Stage `text` for `final`."""
        self.path(final).write_text(text, encoding="utf-8")

    def write_json(self, final: Path, data: Any) -> None:
        """Stage `data` as stable JSON for `final`."""
        self.write_text(final, json_text(data))

    def _commit(self) -> None:
        for final, temporary in self._pending.items():
            os.replace(temporary, final)

    def _discard(self) -> None:
        for temporary in self._pending.values():
            temporary.unlink(missing_ok=True)


@contextmanager
def commit_outputs() -> Iterator[Outputs]:
    """Yield an `Outputs`; on success every staged file replaces its final path, on error none does."""
    outputs = Outputs()
    try:
        yield outputs
    except BaseException:
        outputs._discard()
        raise
    outputs._commit()
