"""The deployment files do what the README says: systemd, the lock files."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from modbot.cli.main import EXIT_USAGE
from tests.conftest import ROOT, run_cli

DEPLOY = ROOT / "deploy"


# --- systemd -----------------------------------------------------------------------------


def unit(path: Path) -> dict[str, list[str]]:
    """A systemd unit's settings as ``Section.Key`` -> its values, in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


SERVICE = unit(DEPLOY / "modbot.service")


def exec_start_arguments(env_file: Path) -> list[str]:
    """ExecStart's arguments to modbot, with this env file for the unit's."""
    [command] = SERVICE["Service.ExecStart"]
    words = shlex.split(command)
    assert words[0].endswith("/modbot")
    named = words.index("--env-file") + 1
    return [*words[1:named], str(env_file), *words[named + 1 :]]


@pytest.mark.parametrize(
    ("case", "env_file"),
    [
        ("a bad setting", "MODBOT_POLL_INTERVAL=0\n"),
        ("a misspelt value", "MODBOT_MAINTENANCE=perhaps\n"),
        ("no env file", None),
        # Even root cannot read /proc/self/mem from its start: a stand-in for an env file
        # the modbot user may not read (its mode or group wrong).
        ("an unreadable env file", "/proc/self/mem"),
    ],
)
async def test_systemd_does_not_restart_a_configuration_error(
    case: str, env_file: str | None, tmp_path: Path
) -> None:
    assert SERVICE["Service.Restart"] == ["on-failure"]
    [prevent] = SERVICE["Service.RestartPreventExitStatus"]
    path = tmp_path / "modbot.env"
    if env_file is not None and env_file.startswith("/"):
        path = Path(env_file)
    elif env_file is not None:
        path.write_text(env_file)
    result = await run_cli(*exec_start_arguments(path), env={}, cwd=tmp_path)
    assert result.code == int(prevent) == EXIT_USAGE, case
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err


def test_systemd_keeps_secrets_off_command_lines() -> None:
    [command] = SERVICE["Service.ExecStart"]
    assert "--env-file /etc/modbot/modbot.env" in command
    assert "MODBOT_" not in command
    assert "Service.Environment" not in SERVICE  # it would outrank the env file's values
    header = (DEPLOY / "modbot.service").read_text().splitlines()
    by_hand = [line for line in header if line.startswith("#") and "modbot " in line]
    assert any("--env-file /etc/modbot/modbot.env status" in line for line in by_hand)
    for line in header:
        assert "xargs" not in line
        assert "$(" not in line
        assert not re.search(r"MODBOT_\w*(PASSWORD|SECRET|TOKEN)\w*=", line), line
    # The bot reads its env file itself, as its own user: root's, readable by the group.
    assert (
        "install -m 640 -g modbot /opt/modbot/.env.example /etc/modbot/modbot.env"
        in (DEPLOY / "modbot.service").read_text()
    )


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
