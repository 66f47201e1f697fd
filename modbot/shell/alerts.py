"""Alerts to the moderators, recorded in the outbox.

Every part of the bot that meets a condition worth a modmail (the app after each poll,
the deliverer, the wiki's judge) says so here, as often as it observes it;
``core.alerts`` decides whether a message is due, and a due one is recorded as an
outbox row on the modmail channel, which the inbox's outbox sends exactly once. What
was last told about each condition is read from the store once per start and then kept
here, so observing a condition at every poll costs no query.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from modbot.core import alerts
from modbot.core.alerts import Condition, Told, Where
from modbot.core.machine import MessageState
from modbot.core.records import PlatformMove
from modbot.ports import Store

log = logging.getLogger(__name__)

# What a part of the bot calls to say a condition holds (or not) for its watch.
Alert = Callable[[Condition, bool, str], Awaitable[object]]


async def no_alert(condition: Condition, holds: bool, detail: str) -> None:
    """For parts built without alerts (tests, dry runs): observations are dropped."""


class Alerts:
    """The one recorder of alerts of a running bot (off: observations are dropped)."""

    def __init__(
        self, store: Store, *, enabled: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.clock = clock
        self.restart()

    def restart(self) -> None:
        """Forget what memory says was told (another process may have told since)."""
        self._told: dict[tuple[str, Condition], Told | None] = {}
        self._moves_pending: set[str] = set()  # scopes with a move alert not sent yet

    async def observe(
        self, where: Where, condition: Condition, *, holds: bool, detail: str = ""
    ) -> bool:
        """``condition`` holds (or not) for ``where``'s watch now; True when an alert
        was recorded."""
        if not self.enabled or not where.subreddit:
            return False
        slot = (where.scope, condition)
        if slot not in self._told:
            row = await self.store.last_message(alerts.prefix(where, condition))
            self._told[slot] = alerts.told(row, where, condition)
        now = self.clock()
        decision = alerts.decide(condition, self._told[slot], holds, now)
        if decision is None:
            return False
        message = alerts.message(where, condition, decision, detail, now)
        await self.store.add_message(message)
        self._told[slot] = Told(raised=decision == "raise", at=now)
        log.info(
            "%s: alert to the moderators of r/%s: %s (%s)",
            where.watch,
            where.subreddit,
            condition.value,
            "raised" if decision == "raise" else "cleared",
        )
        return True

    def for_watch(self, where: Where) -> Alert:
        """The ``Alert`` of one watch."""

        async def alert(condition: Condition, holds: bool, detail: str) -> bool:
            return await self.observe(where, condition, holds=holds, detail=detail)

        return alert

    def awaiting_moves(self, where: Where) -> bool:
        """True while an alert about a move of the watch's page waits to go out."""
        return where.scope in self._moves_pending

    async def moves(self, where: Where) -> None:
        """Tell the moderators of the moves of the watch's page not told yet; a move is
        marked told (``alerted_at``, which ``status`` shows) once its alert went out.
        With alerts off nothing is marked; a move within the hour of the last move alert
        waits for the next look (a start, or the next move)."""
        self._moves_pending.discard(where.scope)
        if not self.enabled or not where.subreddit:
            return
        for move in await self.store.moves(where.scope):
            if move.alerted_at is None:
                await self._move(where, move)

    async def _move(self, where: Where, move: PlatformMove) -> None:
        now = self.clock()
        row = await self.store.message(alerts.move_key(where, move))
        if row is not None:
            if row.state == MessageState.SENT:
                await self.store.move_alerted(move, row.sent_at or now)
            elif row.state != MessageState.FAILED:
                self._moves_pending.add(where.scope)  # looked at again after each poll
            return
        slot = (where.scope, Condition.MOVED)
        if slot not in self._told:
            last = await self.store.last_message(alerts.prefix(where, Condition.MOVED))
            self._told[slot] = alerts.told(last, where, Condition.MOVED)
        if alerts.decide(Condition.MOVED, self._told[slot], True, now) is None:
            return
        detail = alerts.move_detail(move)
        message = alerts.message(where, Condition.MOVED, "raise", detail, now, stamp=move.moved_at)
        await self.store.add_message(message)
        self._told[slot] = Told(raised=True, at=now)
        self._moves_pending.add(where.scope)
        log.info(
            "%s: alert to the moderators of r/%s: the page moved", where.watch, where.subreddit
        )
