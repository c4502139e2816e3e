"""Print the manifest of a Python environment: each file's SHA-256 and each link's target, one a line, sorted.

Run it with the system's Python, never the checked environment's own (lab/docs/runners.md):
`python3.11 -I .ci/environment_manifest.py <environment folder>`
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def entry(root: Path, path: Path) -> str:
    """One line of the manifest: `<sha256> <path>` for a file, `link <target> <path>` for a link."""
    relative = path.relative_to(root).as_posix()
    if path.is_symlink():
        return f"link {os.readlink(path)} {relative}"
    with path.open("rb") as file:
        return f"{hashlib.file_digest(file, 'sha256').hexdigest()} {relative}"


def manifest(root: Path) -> list[str]:
    """The manifest's lines for the environment in `root` (linked folders are listed, not followed)."""
    paths = sorted(path for path in root.rglob("*") if path.is_symlink() or path.is_file())
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib lets go of the GIL on large files
        return list(pool.map(lambda path: entry(root, path), paths))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: environment_manifest.py <environment folder>")
    sys.stdout.write("".join(f"{line}\n" for line in manifest(Path(sys.argv[1]))))
