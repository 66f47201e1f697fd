"""Better Stack status pages (Together AI, Hugging Face, Modal).

Their RSS feed (``/feed.rss``) carries one item per update, not per incident, so items
are grouped into incidents here:

* by ``<link>`` when it names an incident (``/incident/123``: Modal's pages), whose
  ``<guid>`` then carries a per-update ``#...`` suffix that is cut;
* else by ``<guid>``: on Together's and Hugging Face's pages every link is the page's
  home, and the items of one incident share one guid (``https://status.x/#abc``).

Guids are not stable across the pages of a feed, so an incident is named by its link
where there is one. A Better Stack item has no status field: the status is read from its
words ("went down", "recovered", "[Resolved] ..."). Maintenance announcements are in the
feed too and are left out. The feed says nothing about components, so a component filter
cannot apply: such a watch posts every incident, and says so once. The page's
``index.json`` (a JSON:API document) lists its components, which ``check --connect``
names.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import logging
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modbot.core.feed import NO_TEXT, IncidentsFeed, ParseCache, decode, parse_incidents_object
from modbot.core.records import Validators
from modbot.errors import FeedMalformed
from modbot.ports import Fetched
from modbot.sources.feeds import ACCEPT, html_text, parse_feed
from modbot.sources.fetch import Fetcher, unexpected

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

FEED_PATH = "/feed.rss"
INDEX_PATH = "/index.json"
_INCIDENT_LINK = re.compile(r"/incidents?/([A-Za-z0-9]{1,64})/?(?:[?#].*)?$")
_LABEL = re.compile(r"^\s*\[([^\]]{1,40})\]\s*")
_MAINTENANCE = re.compile(r"(?i)\bmaintenance\b")
# The words of an item, in the order they are tried; the first that matches decides.
_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("resolved", re.compile(r"(?i)\b(resolved|recovered|is back|back up|back to normal|"
                            r"fixed|restored|mitigated|healthy again|operational)\b")),
    ("monitoring", re.compile(r"(?i)\bmonitoring\b")),
    ("identified", re.compile(r"(?i)\bidentified\b")),
    ("investigating", re.compile(r"(?i)\b(went down|is down|are down|down|degrad\w*|"
                                 r"outage|investigating|elevated|errors?|unavailable)\b")),
)  # fmt: skip


def status_of(text: str) -> str:
    """The status an item's words give: its ``[Label]`` first, else its wording."""
    label = _LABEL.match(text)
    if label:
        words = label.group(1).strip().lower()
        for status in ("resolved", "monitoring", "identified", "investigating"):
            if status in words:
                return status
    for status, words_of in _WORDS:
        if words_of.search(text):
            return status
    return "update"


def looks_like_index(data: Any) -> bool:
    """True for a Better Stack page's ``index.json`` (for ``auto``)."""
    page = data.get("data") if isinstance(data, Mapping) else None
    return isinstance(page, Mapping) and page.get("type") == "status_page"


def page_components(data: Any) -> list[str]:
    """The component names of a page's ``index.json``, for ``check --connect``."""
    included = data.get("included") if isinstance(data, Mapping) else None
    names = []
    for item in included if isinstance(included, list) else []:
        attributes = item.get("attributes") if isinstance(item, Mapping) else None
        if item.get("type") == "status_page_resource" and isinstance(attributes, Mapping):
            names.append(str(attributes.get("public_name") or ""))
    return [n for n in names if n]


class BetterstackClient:
    """Polls one Better Stack page's feed (the ``Source`` port)."""

    kind = "betterstack"

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        components: Collection[str] = (),
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.home = base_url.rstrip("/")
        self.url = self.home + FEED_PATH
        self.filtered = bool(components)
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._parsed = ParseCache()  # what its last document parsed into
        self._said_unfiltered = False

    async def fetch(self, since: Validators) -> Fetched:
        """The feed's items as incidents; "unchanged" by validators or the body's hash."""
        page = await self._fetcher.get(
            self.url, etag=since.etag, last_modified=since.last_modified, accept=ACCEPT
        )
        if page.status == 304:
            return Fetched(feed=None, validators=since, status=304)
        if page.status != 200:
            raise unexpected(self.url, page)
        validators = Validators(
            etag=page.etag,
            last_modified=page.last_modified,
            digest=page.digest,
        )
        if since.digest == validators.digest:
            return Fetched(feed=None, validators=validators, received_bytes=len(page.body))
        if self.filtered and not self._said_unfiltered:
            log.warning(
                "%s: a Better Stack feed does not say which components an incident touches: "
                "posting every incident of the page",
                self.url,
            )
            self._said_unfiltered = True
        return Fetched(
            feed=self.snapshot(page.body), validators=validators, received_bytes=len(page.body)
        )

    def snapshot(self, body: bytes) -> IncidentsFeed:
        """The feed's items grouped into incidents, in the snapshot every source produces."""
        parsed: Any = parse_feed(body)
        if not parsed.entries and (parsed.get("bozo") or not parsed.get("feed")):
            raise FeedMalformed(f"{self.url}: not an RSS feed")
        grouped: dict[str, list[dict[str, Any]]] = {}
        for entry in parsed.entries:
            item = _item(entry)
            if item is not None:
                grouped.setdefault(item["incident"], []).append(item)
        incidents = [_incident(ident, items) for ident, items in grouped.items()]
        feed = parsed.get("feed", {})
        page = {"name": str(feed.get("title") or ""), "url": self.home}
        try:
            return parse_incidents_object({"page": page, "incidents": incidents}, self._parsed)
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from exc


def _incident_key(link: str, guid: str) -> str | None:
    """Which incident an item belongs to: its link's incident number, else its guid."""
    for candidate in (link, guid.split("#", 1)[0]):
        found = _INCIDENT_LINK.search(candidate)
        if found:
            return found.group(1)
    if not guid:
        return None
    simple = re.sub(r"[^A-Za-z0-9]", "", guid.rsplit("#", 1)[-1])
    return simple if 0 < len(simple) <= 64 else hashlib.sha256(guid.encode()).hexdigest()[:32]


def _when(entry: Mapping[str, Any]) -> datetime | None:
    value = dict.get(entry, "published_parsed") if isinstance(entry, dict) else None
    value = value or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(value), UTC) if value else None


def _item(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    title = html.unescape(str(entry.get("title") or "")).strip()
    if _MAINTENANCE.search(title):
        return None
    guid = str(entry.get("id") or "")
    ident = _incident_key(str(entry.get("link") or ""), guid)
    when = _when(entry)
    if ident is None or when is None:
        return None
    text = html_text(str(entry.get("summary") or entry.get("description") or ""))
    # A "[Resolved]" label decides; else the update's own words (a title can stay the
    # incident's name through every update, as Modal's do); else the title's.
    status = status_of(title) if _LABEL.match(title) else status_of(text)
    return {
        "incident": ident,
        "title": _LABEL.sub("", title),
        "status": status if status != "update" else status_of(title),
        "text": text or title or NO_TEXT,
        "when": when,
    }


def _incident(ident: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    items.sort(key=lambda i: i["when"])
    first, last = items[0], items[-1]
    updates = []
    seen: dict[str, int] = {}
    for item in items:  # oldest first, so that a new item never renames an older one
        # An item has no id of its own that lasts (guids change between pages of the
        # feed): its time names it, numbered when two share a second.
        stamp = item["when"].isoformat()
        base = ident + re.sub(r"[^0-9]", "", stamp)
        seen[base] = seen.get(base, 0) + 1
        updates.append(
            {
                "id": base if seen[base] == 1 else f"{base}n{seen[base] - 1}",
                "status": item["status"],
                "body": item["text"],
                "created_at": stamp,
                "display_at": stamp,
            }
        )
    status = last["status"] if last["status"] != "update" else "investigating"
    return {
        "id": ident,
        "name": first["title"],
        "status": status,
        "impact": "none",
        "created_at": first["when"].isoformat(),
        "updated_at": last["when"].isoformat(),
        "resolved_at": last["when"].isoformat() if status == "resolved" else None,
        "incident_updates": list(reversed(updates)),
        "components_known": False,
    }


def index_components(body: bytes) -> list[str] | None:
    """``page_components`` of a fetched ``index.json`` body (``None``: unreadable)."""
    try:
        data = decode(body)
    except FeedMalformed:
        return None
    return page_components(data) if looks_like_index(data) else None
