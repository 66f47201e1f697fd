"""The ``modbot`` command line: parse arguments, load settings, call one service function.

Exit codes: 0 success; 1 the command ran and found a problem (a broken template, an
unreachable feed with ``--once``, an incident not found); 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from modbot import __version__, logs, service
from modbot.errors import ConfigError, ModbotError
from modbot.settings import Settings, load_settings

log = logging.getLogger("modbot")

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2


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
        type=Path,
        default=Path(".env"),
        metavar="PATH",
        help="read settings from this file as well as the environment (default: .env)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="watch the status page and post/edit comments (the main loop)",
        description="Poll the status page and post or edit one comment per incident. "
        "Without Reddit credentials (or with --dry-run) it prints each comment instead. "
        "Ctrl-C or SIGTERM stops it cleanly.",
    )
    run.add_argument("--once", action="store_true", help="poll once, deliver, and exit")
    run.add_argument("--dry-run", action="store_true", help="print comments instead of posting")

    preview = commands.add_parser(
        "preview",
        help="print the comment for an incident (or all open ones); saves nothing",
        description="Render the comment for one incident, or for every open incident, from "
        "the live feed or a saved incidents.json. Nothing is saved or posted.",
    )
    preview.add_argument("incident_id", nargs="?", metavar="INCIDENT_ID", help="incident id")
    preview.add_argument("--feed", type=Path, metavar="FILE", help="a saved incidents.json")

    commands.add_parser(
        "check",
        help="validate settings, templates and the state file",
        description="Validate settings and render every template against sample data. "
        "Exits 1 when something would stop the bot from working.",
    )

    demo = commands.add_parser(
        "demo",
        help="replay a real incident offline and show each comment version",
        description="Replay a bundled real incident (from status.claude.com) through the real "
        "pipeline in dry-run, with no network and no credentials.",
    )
    demo.add_argument(
        "--delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="pause between steps (default: 1)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modbot`` script and ``python -m modbot``."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except ConfigError as exc:
        print(f"modbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(
        "DEBUG" if args.verbose else settings.log_level,
        settings.log_format,
        secrets=settings.secret_values(),
    )
    try:
        return dispatch(args, settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except ModbotError as exc:
        log.error("%s", exc)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return EXIT_OK


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen command."""
    out = sys.stdout
    if args.command == "run":
        return _run(service.run(settings, once=args.once, dry_run=args.dry_run, out=out))
    if args.command == "preview":
        return _run(service.preview(settings, args.incident_id, args.feed, out))
    if args.command == "check":
        return _run(service.check(settings, out))
    if args.command == "demo":
        return _run(service.demo(settings, out, max(args.delay, 0.0)))
    raise ConfigError(f"unknown command {args.command}")


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)
