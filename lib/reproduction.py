"""`make verify`: whether HEAD's pipeline, re-run in a scratch clone, reproduces the committed outputs.

The clone shares this project's DVC cache; the three verdicts are explained in lab/docs/reproducibility.md.
"""

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lib.git import git
from lib.pipeline_state import lock_outputs

TOLERANCE = 1e-6  # the one setting: the largest difference in a metric or plot value still called reproduced


@dataclass
class Verdict:
    """What a comparison found: outputs whose bytes differ, and values that differ by more than the tolerance."""

    changed: list[str] = field(default_factory=list)
    largest: float = 0.0
    failures: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The verdict in one line."""
        if self.failures:
            return f"not reproduced: {'; '.join(self.failures)}"
        if not self.changed:
            return "identical: every output has the committed bytes"
        judged = f" (judged by the metrics: {', '.join(self.unchecked)})" if self.unchecked else ""
        differ = f"bytes differ in {', '.join(self.changed)}{judged}"
        return f"reproduced within {TOLERANCE:g} (largest difference {self.largest:.3g}); {differ}"


def _numbers(value: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON document flattened to `a/b/0` -> value."""
    if isinstance(value, list):
        value = dict(enumerate(value))
    if isinstance(value, Mapping):
        return {key: item for name, part in value.items() for key, item in _numbers(part, f"{prefix}{name}/").items()}
    return {prefix.rstrip("/"): value}


def compare_text(path: str, before: str, after: str, verdict: Verdict) -> None:
    """Add the metrics (JSON) or plot cells (CSV) of `after` that differ from `before` by more than TOLERANCE."""
    if path.endswith(".csv"):
        import pandas as pd

        old, new = pd.read_csv(io.StringIO(before)), pd.read_csv(io.StringIO(after))
        if old.shape != new.shape or list(old.columns) != list(new.columns):
            verdict.failures.append(
                f"{path}: committed {len(old)} rows {list(old.columns)}, now {len(new)} rows {list(new.columns)}"
            )
            return
        before_values, after_values = _numbers(old.to_dict("records")), _numbers(new.to_dict("records"))
    else:
        before_values, after_values = _numbers(json.loads(before)), _numbers(json.loads(after))
    for key in sorted(before_values.keys() | after_values.keys()):
        old, new = before_values.get(key), after_values.get(key)
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new))
        if numeric and math.isclose(old, new, rel_tol=0, abs_tol=TOLERANCE * (1 + 1e-9)):
            verdict.largest = max(verdict.largest, abs(old - new))
        elif old != new and not (numeric and math.isnan(old) and math.isnan(new)):
            verdict.failures.append(f"{path} {key}: committed {old!r}, now {new!r}")


def committed_text(project: Path, path: str, md5: str) -> str | None:
    """The committed content of output `path`: from the DVC cache, else from git (metrics), else None."""
    cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return cached.read_text(encoding="utf-8") if cached.is_file() else git("show", f"HEAD:{path}", cwd=project)


def compare(project: Path, scratch: Path, committed: Mapping[str, Any]) -> Verdict:
    """Compare the outputs `scratch` produced with those `committed` (dvc.lock's content at the commit)."""
    verdict = Verdict()
    before = lock_outputs(committed)
    after = lock_outputs(yaml.safe_load((scratch / "dvc.lock").read_text(encoding="utf-8")))
    for path in sorted(before.keys() | after.keys()):
        if before.get(path) == after.get(path):
            continue
        verdict.changed.append(path)
        if path not in before or path not in after:
            missing = "no longer produced" if path in before else "not in the committed dvc.lock"
            verdict.failures.append(f"{path}: {missing}")
            continue
        text = committed_text(project, path, before[path]) if path.endswith((".json", ".csv")) else None
        if text is None:
            verdict.unchecked.append(path)
        else:
            compare_text(path, text, (scratch / path).read_text(encoding="utf-8"), verdict)
    return verdict


def reproduce(project: Path, scratch: Path) -> None:
    """Clone `project`'s HEAD into `scratch`, sharing its DVC cache, and run the whole pipeline there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "DVC_"))}
    env["REPROLAB_PIPELINE_RUN_ID"] = "verify"
    for args in (
        ["git", "clone", "--quiet", "--no-hardlinks", str(project), str(scratch)],
        ["dvc", "cache", "dir", "--local", str(project / ".dvc" / "cache")],
        ["dvc", "checkout", "--quiet", "--allow-missing"],
        ["dvc", "repro", "--force", "--quiet"],
    ):
        done = subprocess.run(
            args, cwd=scratch if args[0] == "dvc" else project, env=env, capture_output=True, text=True
        )
        if done.returncode and args[1] != "checkout":
            raise SystemExit(f"verify: `{' '.join(args)}` failed:\n{(done.stdout + done.stderr)[-3000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    """Reproduce HEAD in a scratch copy and print the verdict; 1 when it did not reproduce."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    project = Path.cwd()
    committed = yaml.safe_load(git("show", "HEAD:dvc.lock") or "{}")
    if not lock_outputs(committed):
        message = "this commit has no results in dvc.lock to compare with (run the pipeline and commit first)"
        print(f"verify: {message}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="reprolab-verify-") as folder:
        scratch = Path(folder) / "project"
        head = git("rev-parse", "--short", "HEAD")
        print(f"verify: running the pipeline of {head} in a scratch copy ...", flush=True)
        reproduce(project, scratch)
        verdict = compare(project, scratch, committed)
    print(f"verify: {verdict.line()}")
    return 1 if verdict.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
