"""The deployment files do what the README says: systemd, Docker, compose, the lock files.

No Docker engine runs where these tests do, so the files are read for what a build or a
start would do with them; ``docker compose config`` checks compose.yaml where a Docker
client with compose is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from modbot.cli.main import EXIT_USAGE
from tests.conftest import ROOT, run_cli

DEPLOY = ROOT / "deploy"
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


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


# --- Dockerfile ----------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
            pending = ""
    return found


DOCKERFILE = instructions(DEPLOY / "Dockerfile")


def seconds(duration: str) -> float:
    """A Docker duration (``30s``, ``1m``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_docker_base_image_is_python_311_pinned_by_digest() -> None:
    stages = {args.split()[-1] for word, args in DOCKERFILE if word == "FROM" and " AS " in args}
    for word, args in DOCKERFILE:
        if word != "FROM":
            continue
        image = args.split()[0]
        if image.split("$")[0] in stages:
            continue  # a stage of this file
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-bookworm)?@sha256:[0-9a-f]{64}", image)


def test_docker_installs_dependencies_in_a_layer_before_the_source() -> None:
    words = [(word, args) for word, args in DOCKERFILE]
    copies = [i for i, (word, _) in enumerate(words) if word == "COPY"]
    runs = [i for i, (word, _) in enumerate(words) if word == "RUN"]
    [lock_copy] = [i for i in copies if words[i][1].split()[0] == "requirements/runtime.txt"]
    [deps] = [i for i in runs if "-r requirements/runtime.txt" in words[i][1]]
    assert "--require-hashes" in words[deps][1]
    source = [i for i in copies if i != lock_copy]
    assert source, "the source is copied"
    assert lock_copy < deps < min(source), "a code change must not reinstall the dependencies"
    [project] = [i for i in runs if re.search(r"pip install .*--no-deps.* \.( |$)", words[i][1])]
    assert project > max(source)
    assert "--no-build-isolation" in words[project][1]  # its build backend is locked too


def test_docker_health_check_every_30_to_60_seconds_and_runs_as_non_root() -> None:
    [health] = [args for word, args in DOCKERFILE if word == "HEALTHCHECK"]
    options = dict(re.findall(r"--([\w-]+)=(\S+)", health))
    assert 30 <= seconds(options["interval"]) <= 60
    assert '["modbot", "check", "--live"]' in health
    users = [(i, args) for i, (word, args) in enumerate(DOCKERFILE) if word == "USER"]
    [cmd] = [i for i, (word, _) in enumerate(DOCKERFILE) if word == "CMD"]
    assert users, "a USER"
    assert users[-1][0] < cmd
    assert users[-1][1] not in ("root", "0", "0:0")


def dockerignored(path: str, rules: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last rule matching
    the path or one of its folders decides, ``!`` re-includes."""
    ignored = False
    for rule in rules:
        keep = rule.startswith("!")
        pattern = re.escape(rule.removeprefix("!").strip("/"))
        pattern = pattern.replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        pattern = pattern.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(re.fullmatch(pattern, prefix) for prefix in prefixes):
            ignored = not keep
    return ignored


def test_dockerignore_sends_what_the_build_copies_and_no_secret() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = [args.split()[0] for word, args in DOCKERFILE if word == "COPY"]
    copied += [name for word, args in DOCKERFILE if word == "COPY" for name in args.split()[1:-1]]
    for source in copied:
        assert not dockerignored(source, rules), source
    for needed in ("modbot/app.py", "modbot/core/records.py", "templates/incident.md.j2"):
        assert not dockerignored(needed, rules), needed
    for left_out in (
        ".env",
        "deploy/postgres.env",
        "modbot.sqlite3",
        "modbot.toml",
        ".venv/bin/python",
        ".git/HEAD",
        ".ci/snudown/node_modules/snudown-js/package.json",
        "tests/test_cli.py",
        "modbot/__pycache__/app.cpython-311.pyc",
        "requirements/dev.txt",
    ):
        assert dockerignored(left_out, rules), left_out


# --- compose.yaml --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def bots(services: dict[str, Any]) -> dict[str, Any]:
    return {
        name: service
        for name, service in services.items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def test_compose_runs_two_bots_on_one_postgresql() -> None:
    services = compose()["services"]
    two = bots(services)
    assert len(two) == 2
    [database] = [name for name, s in services.items() if "postgres:" in s.get("image", "")]
    assert re.search(r"@sha256:[0-9a-f]{64}$", services[database]["image"])
    urls = {bot["environment"]["MODBOT_DATABASE"] for bot in two.values()}
    [url] = urls  # one database for both
    parts = urlsplit(url)
    assert parts.scheme == "postgresql"
    assert parts.hostname == database
    assert parts.password is None  # the password comes from an env file (PGPASSWORD)
    for bot in two.values():
        assert bot["build"]["context"] == ".."
        assert bot["depends_on"][database]["condition"] == "service_healthy"
        assert len({bot["hostname"] for bot in two.values()}) == 2  # status tells them apart


def test_compose_health_checks() -> None:
    services = compose()["services"]
    for name, bot in bots(services).items():
        check = bot["healthcheck"]
        assert check["test"] == ["CMD", "modbot", "check", "--live"], name
        assert 30 <= seconds(check["interval"]) <= 60, name
    [database] = [s for s in services.values() if "postgres:" in s.get("image", "")]
    assert "pg_isready" in database["healthcheck"]["test"]


def every_string(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in [str(key), *every_string(value)]]
    if isinstance(node, list):
        return [s for item in node for s in every_string(item)]
    return [str(node)]


def test_compose_takes_secrets_from_env_files_only() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for key in service.get("environment", {}):
            assert not any(word in key.upper() for word in SECRET_WORDS), (name, key)
        for env_file in service["env_file"]:
            path = (DEPLOY / env_file).resolve().relative_to(ROOT)
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", "--no-index", str(path)], cwd=ROOT, check=False
            )
            assert ignored.returncode == 0, f"{path} must be git-ignored: it holds secrets"
    for text in every_string(compose()):
        assert not re.search(r"://[^/@\s]*:[^/@\s]*@", text), "a password in a URL"
    example = (DEPLOY / "postgres.env.example").read_text()
    assert re.findall(r"^(\w+)=(.*)$", example, re.M) == [
        ("POSTGRES_PASSWORD", ""),
        ("PGPASSWORD", ""),
    ]


def has_docker_compose() -> bool:
    """Whether a Docker client with Compose v2 is installed (the old ``docker-compose``
    1.x knows an older schema, without ``name``, and is not used)."""
    if shutil.which("docker") is None:
        return False
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return version.returncode == 0


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    if not has_docker_compose():
        pytest.skip("no Docker client with compose here; the structure is checked above")
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "compose.yaml", tmp_path / "deploy" / "compose.yaml")
    (tmp_path / ".env").write_text("MODBOT_SUBREDDIT=example\n")
    (tmp_path / "deploy" / "postgres.env").write_text("POSTGRES_PASSWORD=x\nPGPASSWORD=x\n")
    result = subprocess.run(
        ["docker", "compose", "-f", str(tmp_path / "deploy" / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


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
