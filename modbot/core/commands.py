"""Moderator commands sent on Reddit: parsing and help. Pure: no I/O.

What each command does lives in ``operations``, shared with the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from modbot.errors import CommandError

COMMANDS = ("post", "refresh", "status", "pause", "resume", "quiet", "help")
# Commands that change what the bot posts need one of these moderator permissions.
CHANGING = frozenset({"post", "refresh", "pause", "resume", "quiet"})
MAX_QUIET = 30 * 86_400.0  # the longest hold of early notices one command can ask for
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?")
CHANGE_PERMISSIONS = frozenset({"all", "posts"})
_COMMAND_RE = re.compile(r"^!(\w+)\b[ \t]*(.*)$", re.DOTALL)


def help_text(subreddits: Sequence[str], watches: Sequence[str] = ()) -> str:
    """What ``!help`` answers."""
    where = ", ".join(f"r/{s}" for s in subreddits)
    text = (
        f"modbot commands (moderators of {where or 'the subreddit'} only; send them as a "
        "private message or mention me):\n\n"
        "    !post TEXT       post a moderator notice into the megathread\n"
        "    !refresh [ID]    re-render open incidents (or one) and edit what changed\n"
        "    !status          what the bot is doing\n"
        "    !pause           stop posting; updates are kept\n"
        "    !resume          start posting again, with the latest state\n"
        "    !quiet 2h        hold early notices (readers' reports) for 2 hours; !quiet off\n"
        "    !help            this text"
    )
    if len(watches) > 1:
        text += (
            "\n\nThis bot runs several watches: "
            + ", ".join(watches)
            + ". Name one after the command to act on it alone, e.g. !pause "
            + watches[0]
        )
    return text


@dataclass(frozen=True)
class Command:
    """One parsed command; ``watch`` names the watch it is about, if the moderator did."""

    name: str
    argument: str = ""
    watch: str | None = None


def parse(text: str, username: str, watches: Collection[str] = ()) -> Command | None:
    """The command in a message, ``None`` if it is not one; malformed raises ``CommandError``.

    A command is the message's first word, after an optional ``u/<bot>`` mention; a
    watch's name may follow it (``!pause openai``).
    """
    body = text.strip()
    body = re.sub(rf"^/?u/{re.escape(username)}\b[:,]?\s*", "", body, flags=re.IGNORECASE)
    found = _COMMAND_RE.match(body)
    if not body.startswith("!"):
        return None
    if not found:
        raise CommandError("a command is ! followed by its name, e.g. !status")
    name, argument = found.group(1).lower(), found.group(2).strip()
    if name not in COMMANDS:
        raise CommandError(f"unknown command !{name}")
    watch = None
    first, *rest = re.split(r"\s+", argument, maxsplit=1)
    if first in watches and name != "help":
        watch, argument = first, rest[0].strip() if rest else ""
    if name == "post" and not argument:
        raise CommandError("!post needs the text of the notice after it")
    if name == "refresh" and argument and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", argument):
        raise CommandError("!refresh takes at most one incident id")
    if name == "quiet":
        duration(argument)  # checked here, so a mistake gets the help text
    return Command(name, argument, watch)


def duration(text: str) -> float:
    """Seconds from ``2h``, ``30m``, ``1d``, ``1h30m``, ``90s`` (a bare number is minutes);
    ``off`` (or ``0``) is 0: no longer quiet."""
    words = text.strip().lower().replace(" ", "")
    if words in ("off", "0", "no", "stop"):
        return 0.0
    if words.isdigit():
        words += "m"
    found = _DURATION.fullmatch(words)
    if not words or found is None or not any(found.groups()):
        raise CommandError("!quiet takes a duration such as 30m, 2h or 1d, or off")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    total = float(days * 86_400 + hours * 3600 + minutes * 60 + seconds)
    if not 0 < total <= MAX_QUIET:
        raise CommandError("!quiet lasts from a minute to 30 days (or off)")
    return max(total, 60.0)
