"""Moderator commands sent on Reddit: parsing and help. Pure: no I/O.

What each command does lives in ``operations``, shared with the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modbot.errors import CommandError

COMMANDS = ("post", "refresh", "status", "pause", "resume", "help")
# Commands that change what the bot posts need one of these moderator permissions.
CHANGING = frozenset({"post", "refresh", "pause", "resume"})
CHANGE_PERMISSIONS = frozenset({"all", "posts"})
_COMMAND_RE = re.compile(r"^!(\w+)\b[ \t]*(.*)$", re.DOTALL)


def help_text(subreddit: str | None) -> str:
    """What ``!help`` answers."""
    where = f"moderators of r/{subreddit}" if subreddit else "moderators"
    return (
        f"modbot commands ({where} only; send them as a private message or mention me):\n\n"
        "    !post TEXT       post a moderator notice into the megathread\n"
        "    !refresh [ID]    re-render open incidents (or one) and edit what changed\n"
        "    !status          what the bot is doing\n"
        "    !pause           stop posting; updates are kept\n"
        "    !resume          start posting again, with the latest state\n"
        "    !help            this text"
    )


@dataclass(frozen=True)
class Command:
    """One parsed command."""

    name: str
    argument: str = ""


def parse(text: str, username: str) -> Command | None:
    """The command in a message, ``None`` if it is not one; malformed raises ``CommandError``.

    A command is the message's first word, after an optional ``u/<bot>`` mention.
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
    if name == "post" and not argument:
        raise CommandError("!post needs the text of the notice after it")
    if name == "refresh" and argument and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", argument):
        raise CommandError("!refresh takes at most one incident id")
    return Command(name, argument)
