"""The locked versions in requirements/ agree with the ranges in pyproject.toml.

`bash requirements/lock` writes both files; these tests catch a dependency added to
pyproject.toml and not locked (or locked and no longer declared), a lock refreshed
against other ranges, and the two locks drifting apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked(name: str) -> dict[str, dict]:
    """{package: {"version", "hashes", "direct"}} from a `uv pip compile --generate-hashes` file."""
    packages: dict[str, dict] = {}
    current = None
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            current = packages[canonicalize_name(match.group(1))] = {"version": match.group(2), "hashes": 0, "direct": False}
        elif current is not None and "--hash=sha256:" in line:
            current["hashes"] += 1
        elif current is not None and line.strip().startswith("# via") and "camgate (pyproject.toml)" in line:
            current["direct"] = True
    return packages


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in (project["optional-dependencies"][extra] if extra else project["dependencies"])]


@pytest.mark.parametrize(("lock", "requirements"), [
    ("runtime.txt", lambda: declared()),
    ("test.txt", lambda: declared() + declared("test")),
], ids=["runtime", "test"])
def test_the_lock_holds_exactly_the_declared_dependencies_within_their_ranges(lock, requirements):
    packages = locked(lock)
    wanted = {canonicalize_name(requirement.name): requirement for requirement in requirements()}
    direct = {name for name, package in packages.items() if package["direct"]}
    assert direct == set(wanted), f"{lock} and pyproject.toml disagree: refresh with `bash requirements/lock`"
    for name, requirement in wanted.items():
        version = packages[name]["version"]
        assert requirement.specifier.contains(version, prereleases=True), f"{lock}: {name}=={version} is outside {requirement.specifier}"


def test_every_locked_package_carries_a_hash_and_both_locks_pin_the_same_versions():
    runtime, test = locked("runtime.txt"), locked("test.txt")
    for packages in (runtime, test):
        assert all(package["hashes"] for package in packages.values())
    assert set(runtime) <= set(test)
    assert {name: package["version"] for name, package in runtime.items()} == {name: test[name]["version"] for name in runtime}
