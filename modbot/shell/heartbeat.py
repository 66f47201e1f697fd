"""A push heartbeat: GET ``MODBOT_HEARTBEAT_URL`` after good polls, at most once a minute.

Push monitors (Uptime Kuma's push monitors, Healthchecks-style check URLs) raise an
alarm when the pings stop. The URL usually carries a token, so it is treated as a
secret: never logged. A failed ping is said once (and again only after a success),
and never stops the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from modbot.errors import FeedError
from modbot.sources.fetch import Fetcher

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

EVERY = 60.0


class Heartbeat:
    """Pings one URL after good polls, at most once every ``every`` seconds."""

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        clock: Callable[[], float],
        every: float = EVERY,
    ) -> None:
        self._url = url
        self._fetcher = Fetcher(http, attempts=1)
        self._clock = clock
        self._every = every
        self._last: float | None = None
        self._failing = False
        self.sent = 0

    async def beat(self) -> None:
        """Called after each good poll; pings when a minute has passed since the last."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            return
        self._last = now
        try:
            page = await self._fetcher.get(self._url, accept="*/*")
        except FeedError as exc:
            self._failed(str(exc).replace(self._url, "").lstrip(": ") or "no answer")
            return
        if page.status >= 400:
            self._failed(f"HTTP {page.status}")
            return
        self.sent += 1
        if self._failing:
            log.info("heartbeat URL answers again")
        self._failing = False

    def _failed(self, why: str) -> None:
        if not self._failing:
            log.warning("heartbeat URL (MODBOT_HEARTBEAT_URL) failed: %s; the bot goes on", why)
        self._failing = True
