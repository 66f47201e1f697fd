"""The CLI as a moderator runs it: ``python -m modbot`` subprocesses, env settings only."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from modbot import default_templates_dir
from tests.conftest import ROOT, SAMPLES, child_env, page_env, run_cli, start_bot
from tests.fakes.statuspage import FakeStatuspage, incident, update

pytestmark = pytest.mark.slow


def open_incident(status: str = "investigating") -> dict[str, object]:
    return incident("inc1", status, [update("u1", status, f"now {status}", 1)])


@pytest.mark.parametrize("command", [[], ["run"], ["preview"], ["check"], ["demo"]])
async def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    result = await run_cli(*command, "--help", env={}, cwd=tmp_path)
    assert result.code == 0
    assert "usage: modbot" in result.out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODBOT_POLL_INTERVAL", "-5"),
        ("MODBOT_POLL_INTERVAL", "soon"),
        ("MODBOT_STATUSPAGE_URL", "status.claude.com"),
        ("MODBOT_TEMPLATES_DIR", "/no/such/folder"),
        ("MODBOT_TIMEZONE", "Mars/Olympus"),
        ("MODBOT_MEGATHREAD_TITLE", "(unclosed"),
        ("MODBOT_STATUSPAGE_URL", "https://status claude.com"),
        ("MODBOT_STATUSPAGE_URL", "https://x[y]z"),
        ("MODBOT_POLL_INTERVAL", "0.001"),
        ("MODBOT_POLL_INTERVAL", "nan"),
        ("MODBOT_INBOX_INTERVAL", "0"),
    ],
)
async def test_bad_setting_stops_start_up_with_one_line(
    name: str, value: str, tmp_path: Path
) -> None:
    result = await run_cli("run", "--once", env={name: value}, cwd=tmp_path)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert name in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


async def test_partial_credentials_name_what_is_missing(tmp_path: Path) -> None:
    env = {"MODBOT_REDDIT_CLIENT_ID": "abc", "MODBOT_REDDIT_PASSWORD": "s3cret-value"}
    result = await run_cli("run", "--once", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "MODBOT_REDDIT_CLIENT_SECRET" in result.err
    assert "MODBOT_REDDIT_USERNAME" in result.err
    assert "s3cret-value" not in result.err + result.out


async def test_env_file_is_read(statuspage: FakeStatuspage, tmp_path: Path) -> None:
    statuspage.set_incidents([open_incident()])
    (tmp_path / ".env").write_text(
        f"MODBOT_STATUSPAGE_URL={statuspage.url}\nMODBOT_DATABASE={tmp_path / 'x.sqlite3'}\n"
    )
    result = await run_cli("run", "--once", env={}, cwd=tmp_path)
    assert result.code == 0, result.err
    assert "[](#modbot-inc-inc1)" in result.out


async def test_run_once_says_dry_run_first_and_prints_the_comment(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    statuspage.set_incidents([open_incident()])
    result = await run_cli("run", "--once", env=page_env(statuspage, tmp_path), cwd=tmp_path)
    assert result.code == 0, result.err
    first_line = result.out.splitlines()[0]
    assert "DRY-RUN" in first_line
    assert "nothing will be posted" in first_line
    assert "NEW comment for incident inc1" in result.out
    assert "Elevated errors" in result.out
    assert (tmp_path / "state.sqlite3").exists()


async def test_restart_prints_only_the_change(statuspage: FakeStatuspage, tmp_path: Path) -> None:
    old = incident("old1", "resolved", [update("o1", "resolved", "long over", -900)])
    statuspage.set_incidents([open_incident(), old])
    env = page_env(statuspage, tmp_path)
    first = await run_cli("run", "--once", env=env, cwd=tmp_path)
    statuspage.set_incidents([open_incident("identified"), old])
    second = await run_cli("run", "--once", env=env, cwd=tmp_path)
    third = await run_cli("run", "--once", env=env, cwd=tmp_path)
    assert "NEW comment for incident inc1" in first.out
    assert "EDIT of the comment for incident inc1" in second.out
    assert "NEW comment" not in second.out
    assert "[dry-run]" not in third.out
    assert "old1" not in first.out + second.out + third.out


async def test_unreachable_page_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {
        "MODBOT_STATUSPAGE_URL": "http://127.0.0.1:9",
        "MODBOT_DATABASE": str(tmp_path / "s.sqlite3"),
    }
    result = await run_cli("run", "--once", env=env, cwd=tmp_path)
    assert result.code == 1
    assert "cannot connect" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_the_loop_cleanly(
    statuspage: FakeStatuspage, tmp_path: Path, sig: signal.Signals
) -> None:
    statuspage.set_incidents([open_incident()])
    process = await start_bot(page_env(statuspage, tmp_path), tmp_path)
    assert process.stdout is not None
    seen = b""
    while b"[](#modbot-inc-inc1)" not in seen:
        seen += await asyncio.wait_for(process.stdout.read(4096), 20)
    await asyncio.sleep(0.3)  # a few polls
    loop = asyncio.get_running_loop()
    started = loop.time()
    process.send_signal(sig)
    await asyncio.wait_for(process.wait(), 20)
    assert loop.time() - started < 10  # a few seconds' grace at most, slack for a loaded machine
    assert process.returncode == 0
    assert process.stderr is not None
    err = (await process.stderr.read()).decode()
    assert "stopping" in err
    assert "Traceback" not in err


async def test_ctrl_c_in_a_terminal_stops_the_bot_and_its_worker_quietly(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    # A terminal sends SIGINT to the whole foreground process group, render worker too.
    statuspage.set_incidents([open_incident()])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modbot", "run", env=child_env(page_env(statuspage, tmp_path)),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    seen = b""
    while b"[](#modbot-inc-inc1)" not in seen:
        seen += await asyncio.wait_for(process.stdout.read(4096), 20)
    os.killpg(process.pid, signal.SIGINT)
    await asyncio.wait_for(process.wait(), 5)
    assert process.returncode == 0
    assert process.stderr is not None
    err = (await process.stderr.read()).decode()
    assert "stopping" in err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


async def test_preview_from_a_saved_feed(tmp_path: Path) -> None:
    feed = SAMPLES / "claude-incidents-derived.json"
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    every_open = await run_cli("preview", "--feed", str(feed), env=env, cwd=tmp_path)
    assert every_open.code == 0
    assert "incident 978mjkgw6mh7 (monitoring)" in every_open.out
    one = await run_cli("preview", "t33dncr5ydvl", "--feed", str(feed), env=env, cwd=tmp_path)
    assert one.code == 0
    assert "Elevated errors for Claude Mythos 5.1" in one.out
    assert (
        "https://status.claude.com/incidents/t33dncr5ydvl" not in one.out
    )  # resolved, no postmortem
    missing = await run_cli("preview", "nope", "--feed", str(feed), env=env, cwd=tmp_path)
    assert missing.code == 1
    assert "not in the feed" in missing.err
    assert not (tmp_path / "s.sqlite3").exists()  # preview saves nothing


async def test_preview_from_the_live_feed(statuspage: FakeStatuspage, tmp_path: Path) -> None:
    statuspage.set_incidents([open_incident("monitoring")])
    result = await run_cli("preview", env=page_env(statuspage, tmp_path), cwd=tmp_path)
    assert result.code == 0
    assert "incident inc1 (monitoring)" in result.out


async def test_check_passes_then_names_a_broken_template(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    env = {"MODBOT_TEMPLATES_DIR": str(folder), "MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    good = await run_cli("check", env=env, cwd=tmp_path)
    assert good.code == 0, good.out + good.err
    assert "templates:" in good.out
    assert "ok" in good.out
    (folder / "incident.md.j2").write_text("fine\n{% for x in %}\n")
    broken = await run_cli("check", env=env, cwd=tmp_path)
    assert broken.code == 1
    assert "incident.md.j2, line 2" in broken.out


async def test_demo_shows_all_five_states_offline(tmp_path: Path) -> None:
    result = await run_cli("demo", "--delay", "0", env={}, cwd=tmp_path)
    assert result.code == 0, result.err
    for state in ("INVESTIGATING", "IDENTIFIED", "MONITORING", "RESOLVED", "POSTMORTEM"):
        assert f"the page says {state}" in result.out
    assert result.out.count("NEW comment") == 1
    assert result.out.count("EDIT of the comment") == 5
    assert "postmortem has been published" in result.out
    assert not list(tmp_path.iterdir())  # the demo leaves no state behind


def test_samples_match_what_the_demo_bundles() -> None:
    bundled = json.loads((ROOT / "modbot" / "data" / "demo_incident.json").read_text())
    source = json.loads((SAMPLES / "claude-incidents-derived.json").read_text())
    assert bundled["incident"] in source["incidents"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://status.claude.com/api/v2/incidents.json", "use https://status.claude.com"),
        ("https://status.claude.com/history.atom", "use https://status.claude.com"),
        ("nan", "finite"),
    ],
)
async def test_a_pasted_api_url_or_nan_is_refused_with_the_fix(
    value: str, says: str, tmp_path: Path
) -> None:
    name = "MODBOT_POLL_INTERVAL" if value == "nan" else "MODBOT_STATUSPAGE_URL"
    result = await run_cli("check", env={name: value}, cwd=tmp_path)
    assert result.code == 2
    assert says in result.err


async def test_a_named_env_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    result = await run_cli("--env-file", "/nonexistent.env", "status", env={}, cwd=tmp_path)
    assert result.code == 2
    assert "/nonexistent.env: no such file" in result.err
    assert result.err.count("\n") == 1


async def test_an_empty_notice_is_refused(tmp_path: Path) -> None:
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    result = await run_cli("post", "  ", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "empty" in result.err
    assert "[](#modbot-note-" not in result.out


async def test_a_notice_in_bytes_that_are_not_utf8_is_posted_with_each_shown_as_u_fffd(
    tmp_path: Path,
) -> None:
    # A terminal in another encoding: Python keeps the bytes 0xff 0xfe of the argument as
    # lone surrogates, which no store and no Reddit call can carry.
    env = {"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}
    result = await run_cli("post", "caf\udce9 down \udcff\udcfe", env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    assert "caf\ufffd down \ufffd\ufffd" in result.out
    assert "posted notice cli" in result.out
    assert "Error" not in result.err
    status = await run_cli("status", env=env, cwd=tmp_path)
    assert status.code == 0, status.err


async def test_verbose_works_after_the_command_too(
    statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    statuspage.set_incidents([open_incident()])
    result = await run_cli("run", "--once", "-v", env=page_env(statuspage, tmp_path), cwd=tmp_path)
    assert result.code == 0, result.err
    assert "DEBUG" in result.err


async def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    # Far more than a pipe holds, so the writes meet the closed pipe after head exits.
    many = [
        incident(f"i{n}", "investigating", [update(f"u{n}", "investigating", "x " * 4000, 1)])
        for n in range(40)
    ]
    (tmp_path / "feed.json").write_text(json.dumps({"incidents": many}))
    script = f"{sys.executable} -m modbot preview --feed feed.json | head -1"
    process = await asyncio.create_subprocess_shell(
        script, cwd=tmp_path, env=child_env({"MODBOT_DATABASE": str(tmp_path / "s.sqlite3")}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert out.decode().startswith("===== incident")
    assert "Traceback" not in err.decode()
    assert "BrokenPipe" not in err.decode()
