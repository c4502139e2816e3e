"""Does every package in Pipfile.lock have a locked wheel for each platform and Python? (`make lock-platforms`)

Resolves without installing, from each package index's file list (PEP 691 JSON, else the PEP 503 page):
one of the files behind the lock's hashes must be a wheel that fits. `--all` adds the aimed-at platforms.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import re
import sys
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

# (platform, Python) pairs the lock must install on; README, "Platforms".
SUPPORTED = [("linux-x86_64", "3.11"), ("linux-aarch64", "3.11")]
AIMED = list(itertools.product(("linux-x86_64", "linux-aarch64", "macos-arm64"), ("3.11", "3.12", "3.13")))
# Packages locked as an sdist only, which install anywhere because they are pure Python (and why).
PURE_SDISTS = {"antlr4-python3-runtime": "pure Python; no wheel was published for 4.9.3 (an mlflow dependency)"}
Files = dict[str, str]  # sha256 -> file name


@functools.cache
def supported_tags(platform: str, python: str) -> set[Tag]:
    """Every tag a CPython `python` on `platform` installs (glibc 2.17 to 2.39 on Linux, macOS 11 to 15)."""
    if platform == "macos-arm64":
        platforms = [tag for major in range(15, 10, -1) for tag in mac_platforms((major, 0), "arm64")]
    else:
        arch = platform.removeprefix("linux-")
        platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(39, 16, -1)] + [f"manylinux2014_{arch}"]
    version = tuple(int(part) for part in python.split("."))
    return set(cpython_tags(version, platforms=platforms)) | set(compatible_tags(version, platforms=platforms))


def environment(platform: str, python: str) -> dict[str, str]:
    """The values PEP 508 markers are evaluated against on `platform` with CPython `python`."""
    system, machine = ("Darwin", "arm64") if platform.startswith("macos") else ("Linux", platform.split("-")[1])
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": system.lower(),
        "platform_system": system,
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def fetch_index(index: str, name: str) -> Files:
    """The files of project `name` on the simple index `index`, by sha256 (JSON API, else the HTML page)."""
    request = urllib.request.Request(
        f"{index.rstrip('/')}/{canonicalize_name(name)}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read().decode()
        if "json" in response.headers.get("Content-Type", ""):
            files = json.loads(body)["files"]
            return {file["hashes"]["sha256"]: file["filename"] for file in files if "sha256" in file["hashes"]}
    links = re.findall(r'href="[^"#]*/([^/"#]+)#sha256=([0-9a-f]{64})"', body)
    return {digest: urllib.request.unquote(filename) for filename, digest in links}


def gaps(lock: dict, targets: Iterable[tuple[str, str]], fetch: Callable[[str, str], Files]) -> list[str]:
    """One line per package that has no locked wheel for one of `targets`, grouped per package."""
    indexes = {source["name"]: source["url"] for source in lock["_meta"]["sources"]}
    packages = {name: entry for section in ("default", "develop") for name, entry in lock.get(section, {}).items()}

    def files(name: str) -> Files | str:
        index = indexes[packages[name].get("index", "pypi")]
        try:
            return fetch(index, name)
        except OSError as exc:
            return f"{index} could not be read ({exc})"

    with ThreadPoolExecutor(16) as pool:
        listings = list(pool.map(files, packages))
    lines = []
    for (name, entry), listing in zip(packages.items(), listings, strict=True):
        if isinstance(listing, str):
            lines.append(f"{name}{entry['version']}: {listing}")
            continue
        locked = [listing[h.removeprefix("sha256:")] for h in entry["hashes"] if h.removeprefix("sha256:") in listing]
        wheels = [parse_wheel_filename(filename)[3] for filename in locked if filename.endswith(".whl")]
        missing = [
            f"{platform} Python {python}"
            for platform, python in targets
            if Marker(entry.get("markers") or "python_version > '0'").evaluate(environment(platform, python))
            and all(supported_tags(platform, python).isdisjoint(tags) for tags in wheels)
        ]
        only_sdists = locked and not wheels
        if missing and not (only_sdists and canonicalize_name(name) in PURE_SDISTS):
            kind = "only an sdist is locked" if only_sdists else "no locked wheel"
            lines.append(f"{name}{entry['version']}: {kind} for {', '.join(missing)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Check Pipfile.lock for the supported platforms (or, with --all, the aimed-at ones); 1 naming the gaps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=Path("Pipfile.lock"))
    parser.add_argument("--all", action="store_true", help="also the platforms the project aims at (prints the gaps)")
    args = parser.parse_args(argv)
    targets = AIMED if args.all else SUPPORTED
    found = gaps(json.loads(args.lock.read_text()), targets, fetch_index)
    names = "; ".join(f"{platform} Python {python}" for platform, python in targets)
    for line in found:
        print(f"error: {args.lock}: {line}", file=sys.stderr)
    print(f"{args.lock}: {'gaps in' if found else 'every package has a locked wheel for'} {names}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
