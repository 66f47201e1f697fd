"""Which status source reads a watch: one module per vendor, chosen by the watch's kind.

Every source turns what its vendor serves into the same snapshot (``IncidentsFeed``),
so everything downstream (diffing, rendering, delivery, filters) is shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modbot.httpfetch import make_http_client
from modbot.incidentio import IncidentioClient
from modbot.statuspage import StatuspageClient

if TYPE_CHECKING:
    import httpx

    from modbot.ports import Source
    from modbot.watches import Watch

__all__ = ["make_http_client", "make_source"]


def make_source(watch: Watch, http: httpx.AsyncClient | None, *, attempts: int = 3) -> Source:
    """The source for ``watch``'s kind (``auto`` finds out from what the page serves)."""
    assert http is not None
    if watch.kind == "incidentio":
        return IncidentioClient(
            watch.url,
            http,
            summary=bool(watch.components),
            maintenance=watch.maintenance,
            attempts=attempts,
        )
    return StatuspageClient(watch.url, http, attempts=attempts)
