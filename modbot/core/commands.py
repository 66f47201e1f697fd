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
# A line of its own naming the watch a command is about (``watch: claude``).
_WATCH_LINE_RE = re.compile(r"^[ \t]*watch:[ \t]*(\S+)[ \t]*(?:\n|$)", re.IGNORECASE | re.MULTILINE)


def help_text(subreddits: Sequence[str], watches: Sequence[str] = ()) -> str:
    """What ``!help`` answers."""
    where = ", ".join(f"r/{s}" for s in subreddits)
    text = (
        f"modbot commands (moderators of {where or 'the subreddit'} only; send them as a "
        "private message, by modmail to the subreddit, or mention me):\n\n"
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
            + ". !post always needs one, as @NAME after it or a line of its own "
            + f"'watch: NAME': !post @{watches[0]} TEXT"
        )
    return text


def post_needs_a_watch(watches: Collection[str]) -> str:
    """Why a ``!post`` that names no watch is refused where there are several."""
    first = sorted(watches)[0]
    return (
        "!post needs the watch whose megathread it is for: write !post @NAME TEXT, or "
        f"add a line 'watch: NAME' (NAME is one of {', '.join(sorted(watches))}; "
        f"e.g. !post @{first} TEXT)"
    )


@dataclass(frozen=True)
class Command:
    """One parsed command; ``watch`` names the watch it is about, if the moderator did."""

    name: str
    argument: str = ""
    watch: str | None = None


def parse(text: str, username: str, watches: Collection[str] = ()) -> Command | None:
    """The command in a message, ``None`` if it is not one; malformed raises ``CommandError``.

    A command is the message's first word, after an optional ``u/<bot>`` mention. The
    watch it is about may be named as ``@NAME`` right after it or on a line of its own
    (``watch: NAME``); every command but ``!post`` also takes a bare name there
    (``!pause openai``). ``!post``'s text is the notice, so a bare first word is text:
    where there are several watches, a ``!post`` that names none is refused.
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
    watch, argument = _named_watch(name, argument, watches)
    if name == "post" and not argument:
        raise CommandError("!post needs the text of the notice after it")
    if name == "post" and watch is None and len(watches) > 1:
        raise CommandError(post_needs_a_watch(watches))
    if name == "refresh" and argument and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", argument):
        raise CommandError("!refresh takes at most one incident id")
    if name == "quiet":
        duration(argument)  # checked here, so a mistake gets the help text
    return Command(name, argument, watch)


def _named_watch(name: str, argument: str, watches: Collection[str]) -> tuple[str | None, str]:
    """The watch the command names (``@NAME``, a ``watch:`` line, or for commands other
    than ``!post`` a bare name first), and the argument without it. With one watch, a
    name that is not its own is just text (a notice may start with ``@everyone``)."""
    if name == "help":
        return None, argument
    line = _WATCH_LINE_RE.search(argument)
    if line and _known(line.group(1), watches):
        return line.group(1), (argument[: line.start()] + argument[line.end() :]).strip()
    first, *rest = re.split(r"\s+", argument, maxsplit=1)
    remainder = rest[0].strip() if rest else ""
    if first.startswith("@") and _known(first[1:], watches):
        return first[1:], remainder
    if first in watches and name != "post":
        return first, remainder
    return None, argument


def _known(watch: str, watches: Collection[str]) -> bool:
    """Whether ``watch`` names one; an unknown name is an error where there are several."""
    if watch in watches:
        return True
    if len(watches) > 1:
        known = ", ".join(sorted(watches))
        raise CommandError(f"no watch is called {watch!r} (the watches: {known})")
    return False


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
