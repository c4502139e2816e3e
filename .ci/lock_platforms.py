"""Does every package in Pipfile.lock have a locked wheel for each platform and Python? (`make lock-platforms`)

Resolves without installing: for each package, its index's file list (the PEP 691 JSON simple API, or the
PEP 503 HTML page) gives the files behind the lock's hashes, and one of them must be a wheel whose tags fit
the platform and Python, for every package whose markers apply there. Fails naming each package that has
none. Needs the package indexes (the network); `--all` checks the platforms the project aims at beyond those
it supports today, and prints the gaps.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

# (platform, Python) pairs the lock must install on; README, "Platforms".
SUPPORTED = [("linux-x86_64", "3.11"), ("linux-aarch64", "3.11")]
PLATFORMS, PYTHONS = ("linux-x86_64", "linux-aarch64", "macos-arm64"), ("3.11", "3.12", "3.13")
AIMED = [(platform, python) for platform in PLATFORMS for python in PYTHONS]
# Packages locked as an sdist only, which install anywhere because they are pure Python (and why).
PURE_SDISTS = {"antlr4-python3-runtime": "pure Python; no wheel was published for 4.9.3 (an mlflow dependency)"}
Files = dict[str, str]  # sha256 -> file name
Fetch = Callable[[str, str], Files]


def platform_tags(platform: str) -> list[str]:
    """The wheel platform tags pip accepts on `platform` (glibc 2.17 to 2.39 on Linux, macOS 11 to 15)."""
    if platform == "macos-arm64":
        return [tag for major in range(15, 10, -1) for tag in mac_platforms((major, 0), "arm64")]
    arch = platform.removeprefix("linux-")
    return [f"manylinux_2_{minor}_{arch}" for minor in range(39, 16, -1)] + [f"manylinux2014_{arch}"]


def supported_tags(platform: str, python: str) -> set[Tag]:
    """Every tag a CPython `python` on `platform` installs."""
    version = tuple(int(part) for part in python.split("."))
    platforms = platform_tags(platform)
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


def wheel_fits(filename: str, tags: set[Tag]) -> bool:
    """Whether `filename` is a wheel with one of `tags`."""
    return filename.endswith(".whl") and not tags.isdisjoint(parse_wheel_filename(filename)[3])


def locked_packages(lock: dict) -> Iterator[tuple[str, dict]]:
    """(name, entry) for every package of the lock's default and develop sections."""
    for section in ("default", "develop"):
        yield from lock.get(section, {}).items()


def gaps(lock: dict, targets: Iterable[tuple[str, str]], fetch: Fetch) -> list[str]:
    """One line per package that has no locked wheel for one of `targets`, grouped per package."""
    indexes = {source["name"]: source["url"] for source in lock["_meta"]["sources"]}
    packages = dict(locked_packages(lock))

    def files(name: str) -> Files | str:
        index = indexes[packages[name].get("index", "pypi")]
        try:
            return fetch(index, name)
        except OSError as exc:
            return f"{index} could not be read ({exc})"

    with ThreadPoolExecutor(16) as pool:
        listings = dict(zip(packages, pool.map(files, packages), strict=True))
    lines = []
    for name, entry in packages.items():
        listing = listings[name]
        if isinstance(listing, str):
            lines.append(f"{name}{entry['version']}: {listing}")
            continue
        locked = [listing[h.removeprefix("sha256:")] for h in entry["hashes"] if h.removeprefix("sha256:") in listing]
        missing = [
            f"{platform} Python {python}"
            for platform, python in targets
            if Marker(entry.get("markers") or "python_version > '0'").evaluate(environment(platform, python))
            and not any(wheel_fits(filename, supported_tags(platform, python)) for filename in locked)
        ]
        only_sdists = locked and not any(filename.endswith(".whl") for filename in locked)
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
