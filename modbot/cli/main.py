"""The ``modbot`` command line: parse arguments, load settings, call one service function.

Exit codes: 0 success; 1 the command ran and found a problem (a broken template, an
unreachable feed with ``--once``, an incident not found); 2 bad usage or settings.

Only argparse is imported until the arguments are parsed, so ``--help`` answers at
once; each command then imports what it needs (see ``service``): ``asyncio`` only for
the commands that run a loop, never for ``status``, ``check --live`` or ``--help``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from modbot import __version__
from modbot.errors import ConfigError, ModbotError, StateLost

if TYPE_CHECKING:
    import logging
    from pathlib import Path

    from modbot.config.settings import Settings

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2


# One example per command, ending its --help (short enough for one line of 80 columns).
EXAMPLES = {
    "run": "modbot run --dry-run",
    "preview": "modbot preview --feed saved-incidents.json",
    "check": "modbot check --connect",
    "auth": "modbot auth --port 8080",
    "demo": "modbot demo --kind incidentio --delay 0",
    "post": 'modbot post "We know about the login errors and are on it."',
    "refresh": "modbot refresh --all --dry-run",
    "status": "modbot status --json",
    "pause": "modbot pause --watch claude",
    "resume": "modbot resume --watch claude",
    "quiet": "modbot quiet --for 2h --watch claude",
    "migrate-store": "modbot migrate-store --to postgresql://modbot:PASSWORD@db/modbot",
    "providers": "modbot providers --markdown",
    "reports": 'modbot reports explain "claude down? 529 overloaded in Claude Code"',
}


def _example(command: str) -> str:
    return f"example: {EXAMPLES[command]}"


def _path(text: str) -> Path:
    from pathlib import Path  # noqa: PLC0415 - only once a path is given

    return Path(text)


def _log() -> logging.Logger:
    import logging  # noqa: PLC0415 - not for --help

    return logging.getLogger("modbot")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = argparse.ArgumentParser(
        prog="modbot",
        description=(
            "Watches a provider's status page and keeps one comment per incident in a "
            "subreddit's pinned megathread, edited as the incident moves on. Settings come "
            "from MODBOT_* environment variables and a .env file (see .env.example)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"modbot {__version__}")
    parser.add_argument(
        "--env-file",
        type=_path,
        default=None,
        metavar="PATH",
        help="read settings from this file as well as the environment (default: .env in the "
        "current folder, if there is one; a file named here must exist)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # -v works after the command too (``modbot run -v``); SUPPRESS keeps a -v given
    # before the command from being reset by the subcommand's default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at DEBUG level"
    )

    run = commands.add_parser(
        "run",
        parents=[common],
        epilog=_example("run"),
        help="watch the status page and post/edit comments (the main loop)",
        description="Poll the status page and post or edit one comment per incident. "
        "Without Reddit credentials (or with --dry-run) it prints each comment instead. "
        "Ctrl-C or SIGTERM stops it cleanly.",
    )
    run.add_argument("--once", action="store_true", help="poll once, deliver, and exit")
    run.add_argument("--dry-run", action="store_true", help="print comments instead of posting")

    preview = commands.add_parser(
        "preview",
        parents=[common],
        epilog=_example("preview"),
        help="print the comment for an incident (or all open ones); saves nothing",
        description="Render the comment for one incident, or for every open incident, from "
        "the live feed or a saved incidents.json. Nothing is saved or posted.",
    )
    preview.add_argument("incident_id", nargs="?", metavar="INCIDENT_ID", help="incident id")
    preview.add_argument("--feed", type=_path, metavar="FILE", help="a saved incidents.json")
    _watch_option(preview)

    _check_parser(commands, common)

    auth = commands.add_parser(
        "auth",
        parents=[common],
        epilog=_example("auth"),
        help="get a refresh token for an account with two-factor login",
        description="Log the bot's account in through the browser (Reddit's authorization-"
        "code flow) and print a refresh token for MODBOT_REDDIT_REFRESH_TOKEN: the way for "
        "accounts with two-factor login, which cannot use a password. Needs "
        "MODBOT_REDDIT_CLIENT_ID and MODBOT_REDDIT_CLIENT_SECRET. The Reddit app's redirect "
        "URI must be exactly http://localhost:PORT (default http://localhost:8080); this "
        "command listens there for the one answer.",
    )
    auth.add_argument(
        "--port",
        type=int,
        default=8080,
        help="the port of the app's redirect URI http://localhost:PORT (default 8080)",
    )
    auth.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the browser (default 600)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        epilog=_example("demo"),
        help="replay a real incident offline and show each comment version",
        description="Replay a bundled real incident through the real pipeline in dry-run, "
        "with no network and no credentials: from status.claude.com (Atlassian Statuspage), "
        "with --kind incidentio from status.openai.com (incident.io), or with --provider NAME "
        "from that provider's platform (its real sample, read as the live page is read).",
    )
    demo.add_argument(
        "--delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="pause between steps (default: 1)",
    )
    demo.add_argument(
        "--kind",
        choices=("statuspage", "incidentio"),
        default="statuspage",
        help="which vendor's page to replay (default: statuspage)",
    )
    demo.add_argument(
        "--provider",
        metavar="NAME",
        help="replay a real incident of this provider's platform (see `modbot providers`)",
    )

    providers = commands.add_parser(
        "providers",
        parents=[common],
        help='list the providers modbot knows by name (provider = "..." in a watch)',
        description="List modbot's catalog of AI providers: each one's name for a watch's "
        "`provider`, its status page, the platform and kind that read it, the component "
        "names a watch can filter on, and whether a real response of the page is in modbot's "
        "tests (verified), not yet (unverified), or the page cannot be read (not supported).",
        epilog=_example("providers"),
    )
    providers.add_argument(
        "--markdown", action="store_true", help="print the README's Providers table instead"
    )

    post = commands.add_parser(
        "post",
        parents=[common],
        epilog=_example("post"),
        help="post a moderator notice, or one incident's comment, into the megathread",
        description="Post a moderator notice (rendered through templates/manual.md.j2; the "
        "text is shown literally) into the current megathread, replace an earlier notice "
        "with --edit, or render and post/edit one incident's comment now with --incident. "
        "Works while `modbot run` is running. Without credentials it shows what it would post.",
    )
    what = post.add_mutually_exclusive_group(required=True)
    what.add_argument("text", nargs="?", metavar="TEXT", help="the notice's text")
    what.add_argument("--file", type=_path, metavar="FILE", help="read the notice's text from FILE")
    what.add_argument("--incident", metavar="ID", help="post or edit this incident's comment now")
    post.add_argument(
        "--edit", metavar="COMMENT_ID", help="replace the notice posted as COMMENT_ID"
    )
    post.add_argument("--dry-run", action="store_true", help="show what would be posted")
    _watch_option(post)
    post.add_argument(
        "--subreddit",
        metavar="NAME",
        help="the subreddit whose megathread gets the notice (needed when watches post "
        "into more than one)",
    )

    refresh = commands.add_parser(
        "refresh",
        parents=[common],
        epilog=_example("refresh"),
        help="re-render open incidents with the current templates; edit what changed",
        description="Re-render every tracked open incident (or one, or with --all every "
        "incident with a comment in the current megathread) with the current templates and "
        "edit the comments whose text changed. A running bot already re-renders open and "
        "recently resolved incidents by itself when a template file changes.",
    )
    refresh.add_argument("incident_id", nargs="?", metavar="INCIDENT_ID", help="only this one")
    refresh.add_argument(
        "--all",
        action="store_true",
        dest="every",
        help="redo every comment in the current megathread, settled incidents included",
    )
    refresh.add_argument("--dry-run", action="store_true", help="show the edits instead")
    _watch_option(refresh)

    status = commands.add_parser(
        "status",
        parents=[common],
        epilog=_example("status"),
        help="what the bot is doing: megathread, incidents, deliveries, last poll",
        description="One screen from the state file: the megathread in use, the open "
        "incidents and the last 10 settled ones with their comments and last delivery, "
        "pending or failed deliveries and why, the last poll, the templates in use, and "
        "whether the bot is paused. Needs no network.",
    )
    status.add_argument(
        "--json", action="store_true", help="print the health record as JSON, for scripts"
    )
    _pause_parsers(commands, common)

    _reports_parser(commands, common)

    migrate = commands.add_parser(
        "migrate-store",
        parents=[common],
        epilog=_example("migrate-store"),
        help="copy the whole state into another store (e.g. SQLite into PostgreSQL)",
        description="Copy every row of the state in MODBOT_DATABASE into an empty store "
        "at --to (a PostgreSQL URL, or a SQLite file path), creating its schema. Refuses "
        "while a bot runs on either store: stop every `modbot run` first, then point "
        "MODBOT_DATABASE at the new store on every machine. The source is left as it was.",
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="DATABASE",
        help="the destination: postgresql://user:password@host/dbname, or a file path",
    )
    return parser


def _check_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``modbot check [--live | --deep | --connect]``."""
    check = commands.add_parser(
        "check",
        parents=[common],
        epilog=_example("check"),
        help="validate settings, templates and the state file",
        description="Validate settings and render every template against sample data; with "
        "Reddit credentials, log in and report the account, subreddit, moderator permissions "
        "and megathread. Exits 1 when something would stop the bot from working.",
    )
    how = check.add_mutually_exclusive_group()
    how.add_argument(
        "--live",
        action="store_true",
        help="health check of the running bot, from its state file only (no network): exit 1 "
        "unless it polled successfully within max(3 poll intervals, 60 s), plus the interval "
        "its heartbeat is written at, max(1 poll interval, 30 s), and, with Reddit "
        "credentials, reached Reddit as recently or has nothing to deliver "
        "(for cron, systemd or container health checks)",
    )
    how.add_argument(
        "--deep",
        action="store_true",
        help="also read every page of the state file for damage (PRAGMA quick_check; "
        "its time grows with the file, so a start only looks at the header and each "
        "table's first page)",
    )
    how.add_argument(
        "--connect",
        action="store_true",
        help="connectivity test from this process: read the status page once and, with "
        "credentials, log in to Reddit and find the megathread",
    )


def _pause_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """``modbot pause``, ``modbot resume`` and ``modbot quiet``."""
    pause = commands.add_parser(
        "pause",
        parents=[common],
        epilog=_example("pause"),
        help="stop posting (the running bot notices within one poll interval)",
        description="Stop posting and editing. The bot keeps polling; updates are delivered, "
        "coalesced to the latest state, after `modbot resume`.",
    )
    resume = commands.add_parser(
        "resume",
        parents=[common],
        epilog=_example("resume"),
        help="start posting again after a pause",
        description="Start posting again; held updates go out within one poll interval.",
    )
    for parser_of in (pause, resume):
        _watch_option(parser_of)
    _quiet_parser(commands, common)


def _quiet_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """``modbot quiet --for 2h`` / ``--off``."""
    quiet = commands.add_parser(
        "quiet",
        parents=[common],
        epilog=_example("quiet"),
        help="hold early notices (readers' reports) for a while",
        description="Hold early notices: readers' reports are still read and counted, but "
        "a surge that begins meanwhile gets no early notice. The running bot sees it at "
        "its next read. `!quiet 2h` on Reddit does the same.",
    )
    held = quiet.add_mutually_exclusive_group(required=True)
    held.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long: 30m, 2h, 1d, 1h30m"
    )
    held.add_argument("--off", action="store_true", help="stop holding early notices")
    _watch_option(quiet)


def _reports_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``modbot reports explain TEXT``."""
    reports = commands.add_parser(
        "reports",
        parents=[common],
        help="readers' outage reports: why a text counts as one or not",
        description="Readers' posts and comments as outage reports (the rules are "
        "modbot/data/report_rules.toml). Needs no credentials and no network.",
        epilog=_example("reports"),
    )
    about = reports.add_subparsers(dest="reports_command", metavar="SUBCOMMAND", required=True)
    explain = about.add_parser(
        "explain",
        parents=[common],
        help="show which report rules a text matches, and the verdict",
        description="Check TEXT against the report rules: every group of terms it names, "
        "every rule and why it holds or not, and the verdict with the error codes and "
        "products it names. Only the rules' own labels are printed, never the text. With "
        "--watch, the watch's components name the products.",
        epilog=_example("reports"),
    )
    explain.add_argument("text", metavar="TEXT", help="the text to check; - reads it from stdin")
    _watch_option(explain)


def _watch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watch",
        metavar="NAME",
        help="the watch this is about (needed only when the watches file has several)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modbot`` script and ``python -m modbot``."""
    args = build_parser().parse_args(argv)
    from modbot.cli import logs  # noqa: PLC0415 - after --help has had its chance

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"modbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(
        "DEBUG" if getattr(args, "verbose", False) else settings.log_level,
        settings.log_format,
        secrets=settings.secret_values(),
    )
    return _outcome(args, settings)


def _read_only(args: argparse.Namespace) -> bool:
    """``status`` and ``check --live``: they read the state and need few settings."""
    return args.command == "status" or (args.command == "check" and bool(args.live))


def _settings(args: argparse.Namespace) -> Settings:
    """The settings the command needs: for a read-only command, read without pydantic
    when they are plain (``config.quick``); else loaded and checked in full."""
    env_file = _env_file(args.env_file)
    if _read_only(args):
        from modbot.config.quick import quick_settings  # noqa: PLC0415

        quick = quick_settings(env_file)
        if quick is not None:
            return quick  # type: ignore[return-value]  # what these commands read of Settings
    from modbot.config.settings import load_settings  # noqa: PLC0415 - pydantic loads slowly

    return load_settings(env_file, app_only=args.command == "auth")


def _outcome(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0911 - one per ending
    """Run the command; every error it can end with becomes one line and an exit code."""
    try:
        code = dispatch(args, settings)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``modbot status | head -1``): stop quietly, and keep
        # Python from complaining about the unflushed rest at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ConfigError as exc:
        # The same one line as a bad setting (no log prefix): the watches file, a
        # command's arguments and the metrics port are configuration too.
        print(f"modbot: {exc}", file=sys.stderr)
        _details()
        return EXIT_USAGE
    except StateLost as exc:
        _log().error("%s", exc)
        _details()
        return _end_now(EXIT_PROBLEM)
    except ModbotError as exc:
        _log().error("%s", exc)
        _details()
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # a bug: one line here, the traceback only with -v
        _log().error("unexpected %s: %s (run with -v for details)", type(exc).__name__, exc)
        _details()
        return EXIT_PROBLEM
    return code


def _details() -> None:
    """With ``-v``, the traceback of the error being handled, and of each error that
    caused it (``raise ... from exc``); without ``-v`` the one line above is all."""
    _log().debug("details", exc_info=True)


def _end_now(code: int) -> int:
    """Exit at once, skipping the interpreter's clean-up: the state file is gone, and
    closing its connection would write an old journal into whatever has its name now."""
    import logging  # noqa: PLC0415

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _env_file(named: Path | None) -> Path | None:
    """The env file to read: one named on the command line must exist; ``.env`` may not."""
    if named is None:
        return _path(".env")
    if not named.is_file():
        raise ConfigError(f"--env-file {named}: no such file")
    return named


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen command."""
    from modbot.cli import service  # noqa: PLC0415 - each command imports what it needs

    return COMMANDS[args.command](service, args, settings, sys.stdout)


Handler = Callable[[Any, argparse.Namespace, "Settings", TextIO], int]

COMMANDS: dict[str, Handler] = {
    "run": lambda sv, a, s, out: _run(sv.run(s, once=a.once, dry_run=a.dry_run, out=out)),
    "preview": lambda sv, a, s, out: _run(sv.preview(s, a.incident_id, a.feed, out, a.watch)),
    "check": lambda sv, a, s, out: (
        _read(s, sv.check_live(s, out))
        if a.live
        else _run(sv.check(s, out, connect=a.connect, deep=a.deep))
    ),
    "demo": lambda sv, a, s, out: _run(
        sv.demo(s, out, max(a.delay, 0.0), a.kind, provider=a.provider)
    ),
    "auth": lambda sv, a, s, out: _run(sv.auth(s, out, port=a.port, wait=a.timeout)),
    "post": lambda sv, a, s, out: _run(
        sv.post(
            s,
            text=_notice_text(a),
            incident_id=a.incident,
            edit=a.edit,
            dry_run=a.dry_run,
            out=out,
            watch_name=a.watch,
            subreddit=a.subreddit,
        )
    ),
    "refresh": lambda sv, a, s, out: _run(
        sv.refresh(
            s,
            incident_id=a.incident_id,
            every=a.every,
            dry_run=a.dry_run,
            out=out,
            watch_name=a.watch,
        )
    ),
    "status": lambda sv, a, s, out: _read(s, sv.status(s, out, as_json=a.json)),
    "providers": lambda sv, a, s, out: sv.providers(out, markdown=a.markdown),
    "migrate-store": lambda sv, a, s, out: _run(sv.migrate_store(s, a.to, out)),
    "reports": lambda sv, a, s, out: sv.reports_explain(s, _report_text(a.text), out, a.watch),
    "pause": lambda sv, a, s, out: _run(sv.set_pause(s, paused=True, out=out, watch_name=a.watch)),
    "resume": lambda sv, a, s, out: _run(
        sv.set_pause(s, paused=False, out=out, watch_name=a.watch)
    ),
    "quiet": lambda sv, a, s, out: _run(
        sv.quiet(s, "off" if a.off else a.duration, out=out, watch_name=a.watch)
    ),
}


def _notice_text(args: argparse.Namespace) -> str | None:
    if args.incident and args.edit:
        raise ConfigError("--edit replaces a notice; it cannot be used with --incident")
    if args.file is None:
        if args.text is not None and not str(args.text).strip():
            raise ConfigError("the notice's text is empty")
        return str(args.text) if args.text is not None else None
    try:
        text = _path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModbotError(f"cannot read {args.file}: {exc.strerror}") from exc
    if not text.strip():
        raise ModbotError(f"{args.file} is empty")
    return text


def _report_text(text: str) -> str:
    # At most what the rules read, and a little more so that "read 4096 of more" shows.
    return sys.stdin.read(1 << 20) if text == "-" else text


def _run(coro: Coroutine[Any, Any, int]) -> int:
    import asyncio  # noqa: PLC0415 - only the commands that run a loop

    return asyncio.run(coro)


def _read(settings: Settings, coro: Coroutine[Any, Any, int]) -> int:
    """Run a read-only command: on a state file without an event loop (it opens the
    store ``inline``, so nothing it awaits ever waits), else in one."""
    database = settings.database
    if getattr(database, "url", None) is not None:  # a PostgreSQL server: a loop
        return _run(coro)
    try:
        coro.send(None)
    except StopIteration as done:
        return int(done.value)
    coro.close()
    raise RuntimeError("a read-only command waited for something")
