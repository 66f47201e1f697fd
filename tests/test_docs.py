"""The documentation keeps its promises: every setting and command is described."""

from __future__ import annotations

import re

from modbot.cli.main import COMMANDS
from modbot.config.settings import Settings, env_name
from tests.conftest import ROOT


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^(MODBOT_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == {env_name(field) for field in Settings.model_fields}


def test_quick_start_has_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick, re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "modbot run" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_on_the_locked_dependencies() -> None:
    readme = (ROOT / "README.md").read_text()
    test_command = re.findall(r"```sh\n(.*pytest.*)\n```", readme)[0]
    make_venv, install, runner = test_command.split(" && ")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert make_venv in ci
    assert runner in ci
    # CI installs what the README's `.[dev]` asks for, from the lock made of that extra
    # (tests/test_deploy.py checks that the lock satisfies it).
    assert install == ".venv/bin/pip install -e '.[dev]'"
    assert ".venv/bin/pip install --require-hashes -r requirements/dev.txt" in ci
    assert "--extra dev -o requirements/dev.txt" in (ROOT / "requirements" / "lock").read_text()


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        assert f"`modbot {command}" in readme, command


def test_env_example_copied_unchanged_is_a_valid_dry_run_configuration() -> None:
    from modbot.config.settings import load_settings

    settings = load_settings(env_file=ROOT / ".env.example")
    assert not settings.has_reddit_credentials
    assert settings.statuspage_url == "https://status.claude.com"
    assert settings.components == ()
    assert settings.timezone is None
