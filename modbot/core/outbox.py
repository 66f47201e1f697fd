"""The outbox: the messages the bot sends that are not megathread comments, and which
of them need a step now.

Pure and synchronous. A message (a reply to a moderator's command, a private message
about a wiki edit) is recorded as a ``MessageRow`` in the same transaction as the
decision that calls for it, and the inbox, the account's one sender, takes it through
``machine``'s message table. Every body ends with a hidden marker line naming the
message's key, as comments do, so a message whose answer was lost can be found where
its channel puts it before it is sent again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from modbot.core import markdown
from modbot.core.machine import MessageState
from modbot.core.records import Channel, InboxItem, MessageRow

MESSAGE_LIMIT = 10_000  # Reddit's limit for a message's or a comment's text
SUBJECT_LIMIT = 100
KIND = "msg"  # the marker's kind: ``[](#modbot-msg-reply-t4_abc)``
MAX_KEY = 90  # a marker id is at most 100 characters, "msg-" included
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def message_key(*parts: str) -> str:
    """A message key from ``parts``: only a marker's characters, short enough for one
    (a long key keeps its start and gains a hash of the whole)."""
    key = _UNSAFE.sub("_", "-".join(parts))
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: MAX_KEY - 17]}-{digest}"


def reply_key(fullname: str) -> str:
    """The key of the reply to an inbox item (one reply per command, ever)."""
    return message_key("reply", fullname)


def wiki_key(scope: str, page: str, revision_id: str) -> str:
    """The key of the message to the author of one wiki revision, about one watch."""
    return message_key("wiki", scope, page, revision_id)


def marker_id(key: str) -> str:
    """The id in a message's marker (what ``markdown.marker_of`` returns for its body)."""
    return f"{KIND}-{key}"


def with_marker(text: str, key: str) -> str:
    """``text`` with the message's hidden marker as its last line, within Reddit's limit
    (the text is cut, never the marker)."""
    marker = markdown.marker(KIND, key)
    room = MESSAGE_LIMIT - len(marker) - 2
    return f"{markdown.shorten(text.rstrip(), room)}\n\n{marker}"


def reply(item: InboxItem, text: str, now: float) -> MessageRow:
    """The reply to a message or a mention."""
    key = reply_key(item.fullname)
    channel = Channel.COMMENT_REPLY if item.is_mention else Channel.MESSAGE_REPLY
    return MessageRow(0, key, channel, item.fullname, "", with_marker(text, key), created_at=now)


def private_message(key: str, to: str, subject: str, text: str, now: float) -> MessageRow:
    """A new private message to the user ``to``."""
    return MessageRow(
        0,
        key,
        Channel.MESSAGE,
        to,
        subject[:SUBJECT_LIMIT],
        with_marker(text, key),
        created_at=now,
    )


# --- what is due ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send the message (its intent first)."""

    row: MessageRow


@dataclass(frozen=True)
class Settle:
    """Reddit's answer was lost: look for the message by its marker before sending again."""

    row: MessageRow


@dataclass(frozen=True)
class Look:
    """A copy sent again may have a late twin: look for copies, keep the oldest."""

    row: MessageRow


Action = Send | Settle | Look


def due(rows: Iterable[MessageRow], now: float) -> tuple[list[Action], float | None]:
    """The steps due at ``now``, oldest message first, and when the next one comes due."""
    actions: list[Action] = []
    later: list[float] = []
    for row in sorted(rows, key=lambda r: r.id):
        action: Action
        if row.state == MessageState.SENT:
            if row.heal_at is None:
                continue
            when, action = row.heal_at, Look(row)
        elif row.state == MessageState.PENDING:
            when, action = row.not_before, Send(row)
        elif row.state == MessageState.SENDING:
            when, action = row.not_before, Settle(row)
        else:
            continue
        if when <= now:
            actions.append(action)
        else:
            later.append(when)
    return actions, min(later, default=None)


def settled(row: MessageRow | None) -> bool:
    """True once nothing more will happen to the message's sending: sent, or failed."""
    return row is None or row.state in (MessageState.SENT, MessageState.FAILED)
