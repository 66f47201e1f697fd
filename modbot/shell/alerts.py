"""Alerts to the moderators, recorded in the outbox.

Every part of the bot that meets a condition worth a modmail (the poller, the
deliverer, the moderator operations, the wiki) says so here, as often as it observes
it; ``core.alerts`` decides whether a message is due, and a due one is recorded as an
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

    async def happened(self, where: Where, condition: Condition, detail: str) -> bool:
        """An event (a wiki revision rejected) happened now."""
        return await self.observe(where, condition, holds=True, detail=detail)

    async def moves(self, where: Where) -> None:
        """Tell the moderators of every move of the watch's page not told yet, and mark
        it told (a move told while alerts are off is marked too: nobody asks later)."""
        for move in await self.store.moves(where.scope):
            if move.alerted_at is not None:
                continue
            await self._move(where, move)

    async def _move(self, where: Where, move: PlatformMove) -> None:
        now = self.clock()
        message = None
        if self.enabled and where.subreddit:
            slot = (where.scope, Condition.MOVED)
            if slot not in self._told:
                row = await self.store.last_message(alerts.prefix(where, Condition.MOVED))
                self._told[slot] = alerts.told(row, where, Condition.MOVED)
            if alerts.decide(Condition.MOVED, self._told[slot], True, now) is not None:
                detail = alerts.move_detail(move)
                message = alerts.message(where, Condition.MOVED, "raise", detail, now)
                self._told[slot] = Told(raised=True, at=now)
        await self.store.alert_move(move, message, now)
        if message is not None:
            log.info("%s: alert to the moderators: the page moved", where.watch)
