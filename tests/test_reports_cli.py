"""``modbot reports explain``: why a text counts as an outage report, with no credentials
and no network, printing the rules' labels and never the text."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbot.cli.logs import NOISY_LOGGERS
from modbot.cli.main import main

WATCHES = """
[[watch]]
name = "claude"
url = "https://status.claude.com"
components = ["Claude Code", "Claude API (api.anthropic.com)"]

[[watch]]
name = "openai"
url = "https://status.openai.com"
components = ["ChatGPT", "Codex"]
"""


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No MODBOT_ settings, no .env, no watches file: a moderator's bare terminal. The
    command sets up logging as a process would; the tests after this one get theirs back."""
    for name in [n for n in os.environ if n.startswith("MODBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, was in noisy.items():
        logging.getLogger(name).setLevel(was)


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["reports", "explain", *args])
    return code, capsys.readouterr().out


def test_a_report_is_explained_without_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, "zqcanary42: is Claude Code down? 529 overloaded for me too")
    assert code == 0
    assert out.startswith("a report, by the rule 'error code'\n")
    assert "names errors: 529, overloaded_error" in out
    assert "names products: Claude Code" in out
    assert "vetoed" not in out
    assert "zqcanary42" not in out.casefold()


def test_noise_is_explained_with_what_vetoed_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, "hit my rate limit, Claude Code not working")
    assert code == 0
    assert out.startswith("not a report\n")
    assert "vetoed by own-limit" in out


def test_a_watchs_components_name_the_products(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "modbot.toml").write_text(WATCHES)
    code, out = explain(capsys, "the API is returning 500 errors", "--watch", "claude")
    assert code == 0
    assert out.startswith("watch claude\na report")
    assert "names products: Claude API (api.anthropic.com)" in out
    code, out = explain(capsys, "codex is down", "--watch", "openai")
    assert "names products: Codex" in out


def test_with_several_watches_and_none_named_the_shipped_products_apply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "modbot.toml").write_text(WATCHES)
    code, out = explain(capsys, "codex is down")
    assert (code, "names products: Codex" in out) == (0, True)


def test_an_unknown_watch_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "modbot.toml").write_text(WATCHES)
    assert main(["reports", "explain", "x", "--watch", "nope"]) == 2
    assert "no watch named 'nope'" in capsys.readouterr().err


def test_a_40_kb_text_from_stdin_is_read_up_to_the_cap(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Claude down for everyone? " + "x" * 40_000))
    code, out = explain(capsys, "-")
    assert code == 0
    assert "read 4096 of 40026 characters" in out
    assert out.startswith("a report")
