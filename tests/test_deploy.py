"""The lock files pin every dependency with hashes and agree with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

# --- the lock files ------------------------------------------------------------------------


def locked(path: Path) -> dict[str, tuple[Requirement, list[str]]]:
    """A lock file's requirements by name: each with its hashes."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found: dict[str, tuple[Requirement, list[str]]] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{path.name}: only pinned requirements: {line}"
        spec, *hashes = re.split(r"\s+--hash=", line)
        requirement = Requirement(spec)
        found[canonicalize_name(requirement.name)] = (requirement, hashes)
    return found


DEV = ROOT / "requirements" / "dev.txt"
RUNTIME = ROOT / "requirements" / "runtime.txt"


def pinned(requirement: Requirement) -> Version:
    [specifier] = requirement.specifier
    assert specifier.operator == "==", str(requirement)
    return Version(specifier.version)


@pytest.mark.parametrize("path", [DEV, RUNTIME], ids=["dev", "runtime"])
def test_lock_pins_every_requirement_with_hashes(path: Path) -> None:
    lock = locked(path)
    assert len(lock) > 20
    for requirement, hashes in lock.values():
        pinned(requirement)
        assert hashes, f"{requirement}: no hash"
        for digest in hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
        assert requirement.url is None


def wanted(project: dict[str, Any], extras: list[str]) -> list[Requirement]:
    """What pyproject asks for with these extras (its own extras followed), plus its
    build backend."""
    name = canonicalize_name(project["project"]["name"])
    found: list[Requirement] = []
    todo = [*project["project"]["dependencies"]]
    done: set[str] = set()
    for extra in extras:
        todo += project["project"]["optional-dependencies"][extra]
        done.add(extra)
    while todo:
        requirement = Requirement(todo.pop(0))
        if canonicalize_name(requirement.name) == name:
            for extra in sorted(requirement.extras - done):
                todo += project["project"]["optional-dependencies"][extra]
                done.add(extra)
            continue
        found.append(requirement)
    return found + [Requirement(r) for r in project["build-system"]["requires"]]


def unlocked(project: dict[str, Any], extras: list[str], path: Path) -> list[str]:
    """The requirements of pyproject that the lock file does not satisfy."""
    lock = locked(path)
    missing = []
    for requirement in wanted(project, extras):
        entry = lock.get(canonicalize_name(requirement.name))
        if entry is None or not requirement.specifier.contains(pinned(entry[0]), prereleases=True):
            missing.append(str(requirement))
            continue
        for extra in requirement.extras:  # psycopg[binary] needs psycopg-binary locked too
            for needed in extra_requirements(requirement.name, extra):
                if canonicalize_name(needed) not in lock:
                    missing.append(f"{requirement} ({needed})")
    return missing


def extra_requirements(distribution: str, extra: str) -> list[str]:
    """What an installed distribution's extra adds (nothing known if not installed)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires(distribution) or []
    except PackageNotFoundError:
        return []
    names = []
    for text in declared:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_lock_files_agree_with_pyproject() -> None:
    assert unlocked(PYPROJECT, ["dev"], DEV) == [], "run requirements/lock (see the README)"
    assert unlocked(PYPROJECT, ["postgresql"], RUNTIME) == [], "run requirements/lock"


def test_a_dependency_added_without_relocking_is_caught() -> None:
    edited = tomllib.loads((ROOT / "pyproject.toml").read_text())
    edited["project"]["dependencies"].append("rich>=13")
    edited["project"]["optional-dependencies"]["test"].append("pytest-timeout>=2")
    pin = next(d for d in edited["project"]["dependencies"] if d.startswith("asyncpraw=="))
    edited["project"]["dependencies"].remove(pin)
    edited["project"]["dependencies"].append("asyncpraw==8.0.4")
    assert unlocked(edited, ["dev"], DEV) == ["rich>=13", "asyncpraw==8.0.4", "pytest-timeout>=2"]
    assert unlocked(edited, ["postgresql"], RUNTIME) == ["rich>=13", "asyncpraw==8.0.4"]


def test_the_image_runs_the_versions_ci_tests() -> None:
    dev, runtime = locked(DEV), locked(RUNTIME)
    for name, (requirement, hashes) in runtime.items():
        assert name in dev, name
        assert str(dev[name][0]) == str(requirement)
        assert dev[name][1] == hashes, name


def test_lock_has_what_the_build_backend_asks_for_an_editable_install() -> None:
    try:
        from hatchling.build import get_requires_for_build_editable
    except ImportError:
        pytest.skip("hatchling is not installed here (it is when installed from the lock)")
    lock = locked(DEV)
    for text in get_requires_for_build_editable():
        requirement = Requirement(text)
        entry = lock.get(canonicalize_name(requirement.name))
        assert entry is not None, f"{text}: add it to requirements/lock"
        assert requirement.specifier.contains(pinned(entry[0]))


def test_ci_installs_from_the_lock_with_hashes() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines() if ".venv/bin/pip" in line]
    assert any("--require-hashes -r requirements/dev.txt" in line for line in lines), lines
    assert any("--no-deps" in line and "-e ." in line for line in lines), lines
    assert any(line.endswith("pip check") for line in lines), lines
    for line in lines:  # nothing else comes from the index unchecked
        assert "--require-hashes" in line or "--no-deps" in line or "pip check" in line, line
