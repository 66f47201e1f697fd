"""The documentation keeps its promises: every setting and command is described."""

from __future__ import annotations

import re
import shlex

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


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", markdown, re.S)


VENV_PATH = re.compile(r"(?<![\w/])\.venv/bin/")  # the clone's virtualenv, not /opt/modbot's


def test_readme_commands_run_in_the_virtualenv_as_written() -> None:
    readme = (ROOT / "README.md").read_text()
    quick, rest = readme.split("## Quick start", 1)[1].split("\n## ", 1)
    # Said once, at the end of the quick start: activate the virtualenv...
    assert readme.count(".venv/bin/activate") == 1
    before, after = quick.split("`. .venv/bin/activate`")
    # ...before which every modbot command names the virtualenv's, and after which none
    # does: a command copied from anywhere in the README works in an activated shell.
    for code in re.findall(r"`([^`]+)`", before):
        if re.match(r"(\S*/)?modbot \w", code):
            assert code.startswith(".venv/bin/modbot "), code
    for text in [after, rest, *sh_blocks(rest)]:
        for line in text.splitlines():
            assert not VENV_PATH.search(line), line


def test_node_is_named_in_the_quick_start_for_the_renderer_tests() -> None:
    from tests.snudown import HOW

    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "Node.js" in quick
    assert HOW.split(" (", 1)[0] in quick  # the same npm command the skip message gives


GLOBAL_OPTIONS_WITH_VALUE = {"--env-file"}
NOT_A_COMMAND_AFTER = {"exec", "-t", "--tag", "--name", "-u"}  # a container, image or user


def modbot_commands(line: str) -> list[str]:
    """The modbot subcommands a shell line runs (``modbot -v run`` -> ``run``)."""
    words = shlex.split(line, comments=True)
    found = []
    for i, word in enumerate(words):
        if word != "modbot" and not word.endswith("/bin/modbot"):
            continue
        if i and words[i - 1] in NOT_A_COMMAND_AFTER:
            continue
        rest = words[i + 1 :]
        while rest and rest[0].startswith("-"):
            rest = rest[2:] if rest[0] in GLOBAL_OPTIONS_WITH_VALUE else rest[1:]
        if rest and rest[0] != "modbot":
            found.append(rest[0])
    return found


def test_every_modbot_command_in_the_readme_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    lines = [line for block in sh_blocks(readme) for line in block.splitlines()]
    used = [command for line in lines for command in modbot_commands(line)]
    assert {"run", "auth", "status", "migrate-store", "check", "preview"} <= set(used)
    for command in used:
        assert command in COMMANDS, command


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
