"""Configuration mistakes caught before they cost a silent bot, each said in one line:
settings and their messages, the ``.env`` file, unknown ``MODBOT_`` names, database URLs
shown without their password, and errors that keep their causes for ``-v``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

# The store modules are being rewritten elsewhere; their raises are checked there.
NOT_CHECKED_HERE = {"store.py", "pgstore.py", "stores.py"}


# --- errors keep their causes ------------------------------------------------------------------


def test_every_dropped_cause_says_why() -> None:
    # ``raise ... from None`` hides the original error from ``-v`` for good: allowed only
    # with a comment on the lines just above that says why the cause is noise or unsafe.
    unexplained = []
    for path in sorted((ROOT / "modbot").rglob("*.py")):
        if path.name in NOT_CHECKED_HERE and path.parent.name == "modbot":
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not re.search(r"\bfrom None\b", line):
                continue
            start = number
            while start > 0 and not lines[start].lstrip().startswith(("raise", "except")):
                start -= 1  # the raise statement may span several lines
            above = lines[max(0, start - 4) : number + 1]
            if not any("#" in text for text in above):
                unexplained.append(f"{path.relative_to(ROOT)}:{number + 1}")
    assert unexplained == []


@pytest.mark.slow
async def test_an_error_is_one_line_and_with_v_its_cause_too(tmp_path: Path) -> None:
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    missing = str(tmp_path / "saved.json")
    plain = await run_cli("preview", "--feed", missing, env=env, cwd=tmp_path)
    assert plain.code == 1
    assert plain.err.count("\n") == 1
    assert "cannot read" in plain.err
    assert "Traceback" not in plain.err
    verbose = await run_cli("-v", "preview", "--feed", missing, env=env, cwd=tmp_path)
    assert verbose.code == 1
    assert "FileNotFoundError" in verbose.err  # the cause, kept by ``raise ... from exc``


# --- database URLs shown without their password ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@db.example.org:5432/modbot", "postgresql://u:***@db.example.org:5432/modbot"),
        ("postgresql://modbot:modbot@db/modbot", "postgresql://modbot:***@db/modbot"),
        ("postgres://u:p%40ss@db/m?sslmode=require&password=x", "postgres://u:***@db/m?sslmode=require&password=***"),
        ("postgresql://u:pa?ss@db/m", "postgresql://u:***@db/m"),
        ("postgresql://u@db/m?application_name=a@b", "postgresql://u@db/m?application_name=a@b"),
        ("postgresql://db/m", "postgresql://db/m"),
        ("mysql://root:pa/ss@db/m", "mysql://root:***@db/m"),
    ],
)  # fmt: skip
def test_a_database_url_is_shown_rebuilt_without_its_password(url: str, shown: str) -> None:
    from modbot.config.database import redact_url

    assert redact_url(url) == shown


def test_a_short_password_or_one_equal_to_the_user_hides_only_itself() -> None:
    from modbot.config.database import DatabaseURL, scrub

    url = "postgresql://p:p@db.example.org/modbot"
    assert str(DatabaseURL(url)) == "postgresql://p:***@db.example.org/modbot"
    said = f'connection to "{url}" failed: password authentication failed for user "p"'
    assert scrub(said, url) == (
        'connection to "postgresql://p:***@db.example.org/modbot" failed: '
        'password authentication failed for user "***"'  # in free text it may be either
    )
    long = "postgresql://modbot:hunter22@db/m"
    assert scrub(f"x {long}?password=hunter22 and hunter22 and hunter2200", long) == (
        "x postgresql://modbot:***@db/m?password=*** and *** and ***00"
    )


def test_a_password_with_a_space_is_refused_with_how_to_write_it() -> None:
    from modbot.config.database import DatabaseURL

    with pytest.raises(ValueError, match="a space is %20") as caught:
        DatabaseURL("postgresql://u:pass word@db/m")
    assert "pass word" not in str(caught.value)


# --- MODBOT_DATABASE in a folder that does not exist -----------------------------------------


def test_a_state_file_in_a_missing_folder_is_an_error_not_a_new_folder(tmp_path: Path) -> None:
    from modbot.config.settings import load_settings
    from modbot.errors import ConfigError

    missing = tmp_path / "no-such-folder" / "state.sqlite3"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, database=str(missing))
    assert str(caught.value) == (
        f"invalid settings: MODBOT_DATABASE: the folder {missing.parent} does not exist: "
        "create it, or correct the path"
    )
    assert not missing.parent.exists()
    assert load_settings(None, database=str(tmp_path / "state.sqlite3")).database.exists() is False


@pytest.mark.slow
async def test_migrate_store_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    target = tmp_path / "no-such-folder" / "copy.sqlite3"
    result = await run_cli("migrate-store", "--to", str(target), env=env, cwd=tmp_path)
    assert result.code == 2
    assert result.err == (
        f"modbot: --to: the folder {target.parent} does not exist: create it, or correct the path\n"
    )
    assert not target.parent.exists()
