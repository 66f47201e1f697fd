"""The outbox's sender: every message the bot sends that is not a megathread comment
(a reply to a command, a message to a wiki editor) goes out here, through the steps of
``machine``'s message table.

The inbox owns it: the account's mail loop is the one sender of messages, as the
deliverer is the one poster of comments. A message is recorded (``pending``) by
whoever decided it, in the same transaction as that decision; here its intent is
committed before it is sent (``sending``), and Reddit's answer after (``sent``). An
answer lost to a timeout, a 5xx or a crash leaves ``sending``: the message is looked
for by its hidden marker where its channel puts it, and only when it is not there after
the listing-lag grace is it sent again. Where a late copy can be deleted (a reply that
is a comment), the bot keeps looking for one for a while, as it does for comments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from modbot.core import machine, outbox
from modbot.core.machine import MessageState
from modbot.core.outbox import Action, Look, Send, Settle
from modbot.core.records import Channel, MessageRow, PostedComment
from modbot.errors import (
    RedditAuthError,
    RedditError,
    RedditForbidden,
    RedditRateLimited,
    RedditUnavailable,
)
from modbot.ports import Mailbox, Store
from modbot.shell.crashpoints import Checkpoint, no_checkpoint

log = logging.getLogger(__name__)

# A message Reddit forbids (403) this many times in a row is given up: a suspended
# app's messages wait for it, a recipient who blocks the bot is not asked forever.
MAX_ATTEMPTS = 6
MAX_PASSES = 5  # steps that make other steps due at once, in one call (absent, then send)


def describe(row: MessageRow) -> str:
    """``reply to t4_abc`` / ``message to u/alice``, for log lines."""
    if row.channel is Channel.MESSAGE:
        return f"message to u/{row.recipient}"
    if row.channel is Channel.MODMAIL:
        return f"alert to r/{row.recipient}'s moderators"
    return f"reply to {row.recipient}"


class Outbox:
    """Sends the account's messages, each exactly once (found by its marker after a
    lost answer)."""

    def __init__(
        self,
        store: Store,
        mailbox: Mailbox,
        *,
        grace: float,
        clock: Callable[[], float] = time.time,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.store = store
        self.mailbox = mailbox
        self.grace = grace  # Reddit's listing lag: how long "not found" may mean "not yet"
        self.clock = clock
        self.checkpoint = checkpoint
        self.restart()

    def restart(self) -> None:
        """Start as a new process would: a message left ``sending`` is not in flight
        (this process did not send it), so it is looked for at once; and what went out
        is listed again before the next first attempt (the state may be new)."""
        self._started = True
        # The messages out on Reddit by marker, listed at the first send after a start:
        # a message recorded again after the state was lost is adopted, not sent twice.
        self._seen: dict[str, PostedComment] | None = None

    async def round(self) -> int:
        """Take every step due now, and the steps those make due (a message found absent
        is sent again at once); returns how many messages went out (or were found)."""
        return await self._passes(self.store.outbox)

    async def send(self, key: str) -> MessageRow | None:
        """The same for one message; the row as it stands afterwards (None: there is no
        such message)."""

        async def rows() -> list[MessageRow]:
            row = await self.store.message(key)
            return [row] if row is not None and machine.is_active(row) else []

        await self._passes(rows, keep_started=True)
        return await self.store.message(key)

    async def _passes(
        self, rows: Callable[[], Awaitable[list[MessageRow]]], *, keep_started: bool = False
    ) -> int:
        done, started = 0, self._started
        if not keep_started:
            self._started = False
        for number in range(MAX_PASSES):
            found = await rows()
            if started and number == 0:
                found = [
                    replace(r, not_before=0.0) if r.state == MessageState.SENDING else r
                    for r in found
                ]
            actions, _ = outbox.due(found, self.clock())
            if not actions:
                break
            for action in actions:
                done += await self._take(action)
        return done

    async def _take(self, action: Action) -> bool:
        if isinstance(action, Send):
            return await self._send(action.row)
        if isinstance(action, Settle):
            return await self._settle(action.row)
        assert isinstance(action, Look)
        await self._look(action.row)
        return False

    async def _step(self, before: MessageRow, after: MessageRow) -> bool:
        if await self.store.step(before, after):
            return True
        log.info("%s changed meanwhile (another process?); looking again", describe(before))
        return False

    # --- sending --------------------------------------------------------------------------
    async def _send(self, row: MessageRow) -> bool:
        if row.attempts == 0:
            out = await self._adopted(row)
            if out is not None:
                return out
        claimed = machine.claim_message(row, self.clock(), hold=self.grace)
        if not await self._step(row, claimed):
            return False
        self.checkpoint("after-message-intent")
        try:
            sent_id = await self.mailbox.send(claimed)
        except RedditError as exc:
            await self._failed(claimed, exc)
            return False
        self.checkpoint("after-message-answer")
        if await self._step(claimed, machine.message_answered(claimed, sent_id, self.clock())):
            log.info("sent the %s", describe(claimed))
            return True
        return False

    async def _adopted(self, row: MessageRow) -> bool | None:
        """Before a message's first attempt: True when it is out already and now
        recorded so, False when that cannot be told yet (or another process stepped it),
        None when it is to be sent."""
        seen = await self._out_already()
        if seen is None:
            return False  # unknown is not absent: the next round asks again
        copy = seen.get(outbox.marker_id(row.key))
        if copy is None:
            return None
        if not await self._step(row, machine.message_adopted(row, copy, self.clock())):
            return False
        del seen[copy.marker]
        log.info("%s: it went out before (found by its marker); not sent again", describe(row))
        return True

    async def _out_already(self) -> dict[str, PostedComment] | None:
        """What went out, by marker (the oldest copy of each), listed once per start;
        None while Reddit cannot say."""
        if self._seen is None:
            try:
                copies = await self.mailbox.sent_recently()
            except RedditError as exc:
                log.warning("cannot list the messages sent before: %s", exc)
                return None
            self._seen = {}
            for copy in copies:  # oldest first
                self._seen.setdefault(copy.marker, copy)
        return self._seen

    async def _failed(self, row: MessageRow, error: RedditError) -> None:
        now = self.clock()
        if isinstance(error, RedditUnavailable):
            log.warning(
                "%s: outcome unknown (%s); will look for it before sending it again",
                describe(row),
                error,
            )
            after = machine.unknown(row, str(error), now)
        elif isinstance(error, RedditRateLimited | RedditAuthError) or (
            isinstance(error, RedditForbidden) and row.attempts < MAX_ATTEMPTS
        ):
            wait = error.retry_after or machine.backoff(row.attempts)
            log.warning("%s: %s; trying again in %.0f s", describe(row), error, wait)
            after = machine.refused(row, str(error), wait, now)
        else:
            log.warning("%s: Reddit refused it (%s); not sending it again", describe(row), error)
            after = machine.rejected(row, str(error))
        await self._step(row, after)

    # --- settling a lost answer -----------------------------------------------------------
    async def _settle(self, row: MessageRow) -> bool:
        try:
            copies = await self.mailbox.find_sent(row)
        except RedditError as exc:
            log.warning("%s: cannot look for it yet: %s", describe(row), exc)
            await self._step(row, machine.not_yet(row, self.clock() + machine.backoff(2)))
            return False
        now = self.clock()
        if copies:
            keep = await self._keep_oldest(row, copies)
            if await self._step(row, machine.message_found(row, keep, now)):
                log.info(
                    "%s: it went out (found by its marker); not sending it again", describe(row)
                )
                return True
            return False
        intent_at = row.intent_at or 0.0
        if now - intent_at < self.grace:
            await self._step(row, machine.not_yet(row, intent_at + self.grace))
        elif await self._step(row, machine.absent(row, now, self.grace)):
            log.info("%s: the earlier attempt did not go out; sending it again", describe(row))
        return False

    async def _look(self, row: MessageRow) -> None:
        """A reply sent again after a lost answer: delete late copies, keep the oldest."""
        try:
            copies = await self.mailbox.find_sent(row)
        except RedditError as exc:
            log.warning("%s: could not look for late copies: %s", describe(row), exc)
            await self._step(row, machine.looked(row, self.clock() + machine.backoff(2)))
            return
        if len(copies) > 1:
            keep = await self._keep_oldest(row, copies)
            if keep.id != row.sent_id:
                after = machine.message_replaced(row, keep)
                if not await self._step(row, after):
                    return
                row = after
        next_look = machine.next_look(row, self.clock(), self.grace)
        await self._step(row, machine.looked(row, next_look))

    async def _keep_oldest(self, row: MessageRow, copies: Sequence[PostedComment]) -> PostedComment:
        """The oldest copy; the others are deleted where the channel allows it."""
        keep, *extra = sorted(copies, key=lambda c: (c.created_utc, c.id))
        for duplicate in extra:
            if row.channel not in machine.REMOVABLE:
                log.warning(
                    "%s: a late copy (%s) went out too; a message cannot be unsent",
                    describe(row),
                    duplicate.id,
                )
                continue
            log.warning("%s: duplicate %s found; deleting it", describe(row), duplicate.id)
            try:
                await self.mailbox.delete_sent(row, duplicate.id)
            except RedditError as exc:
                log.warning("could not delete duplicate %s: %s", duplicate.id, exc)
        return keep
