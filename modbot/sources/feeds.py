"""Atom and RSS feeds (xAI, DeepSeek, and any page's history feed), read with feedparser.

One entry is one incident. Its status, update timeline and affected components come
from the entry's content, where each vendor puts them in its own way:

* Atlassian Statuspage's ``history.atom``: the whole timeline, one ``<small>Mon D,
  HH:MM UTC</small><strong>Status</strong> - text`` per update (minute precision, no
  year: the entry's own date gives it).
* incident.io's ``feed.atom``: ``Status: X``, the latest text, and an "Affected
  components" list in a different order on every fetch (sorted here, so that a new
  order is no change).
* xAI's ``feed.xml``: one ``<div>`` per update (date, label, text); the same incident is
  repeated under one ``<guid>`` for each product it touched (merged here).
* FlashDuty's (DeepSeek's) ``history.rss``: ``+0800`` dates and the status and
  components as escaped HTML inside ``<description>``.

Anything else becomes one update with the entry's text. Ids come from the entry's
``/incidents/<id>`` link, else its guid, kept to letters and digits.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import feedparser

from modbot.core import moments
from modbot.core.feed import IncidentsFeed, ParseCache, parse_incidents_object
from modbot.core.records import Validators
from modbot.errors import FeedMalformed, FeedNotJSON
from modbot.ports import Fetched
from modbot.sources.fetch import Fetcher, unexpected

if TYPE_CHECKING:
    import httpx

ACCEPT = "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.1"
STATUSES = {
    "investigating": "investigating",
    "identified": "identified",
    "monitoring": "monitoring",
    "resolved": "resolved",
    "update": "update",
    "postmortem": "postmortem",
    "completed": "resolved",
    "operational": "resolved",
    "degraded performance": "investigating",
    "partial outage": "investigating",
    "full outage": "investigating",
    "major outage": "investigating",
}
_STATUSPAGE_UPDATE = re.compile(
    r"<small>\s*(?P<month>[A-Z][a-z]{2})\s*<var[^>]*>\s*(?P<day>\d{1,2})\s*</var>,\s*"
    r"<var[^>]*>\s*(?P<time>\d\d:\d\d)\s*</var>\s*UTC\s*</small>\s*<br\s*/?>\s*"
    r"<strong>(?P<status>[^<]+)</strong>\s*-\s*(?P<body>.*?)</p>",
    re.DOTALL,
)
_XAI_UPDATE = re.compile(
    r"<div>\s*<p>\s*<strong>(?P<when>[^<]+)</strong>\s*</p>\s*<h3>(?P<status>[^<]+)</h3>"
    r"(?P<body>.*?)</div>",
    re.DOTALL,
)
_STATUS_LINE = re.compile(r"Status:\s*(?:</strong>|</b>)?\s*([A-Za-z ]+?)\s*(?:<|$)", re.I)
_COMPONENT_ITEM = re.compile(r"<li>\s*(.*?)\s*(?:\(([^()]*)\))?\s*</li>", re.DOTALL)
_COMPONENTS_LINE = re.compile(r"Affected components:?\s*(?:</strong>|</b>)\s*([^<]*)", re.I)
_PRODUCT = re.compile(r"^\[([^\]]+)\]\s*")
_INCIDENT_LINK = re.compile(r"/incidents/([A-Za-z0-9]{1,64})/?$")


class _Text(HTMLParser):
    """HTML to plain text: paragraphs and line breaks kept, tags dropped."""

    BREAKS = frozenset({"br", "p", "div", "li", "h1", "h2", "h3", "h4", "ul", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(fragment: str) -> str:
    """The readable text of an HTML fragment."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def parse_feed(body: bytes) -> Any:
    """An Atom or RSS document as feedparser reads it (the one module that uses it)."""
    return feedparser.parse(body)


def _status(label: str) -> str:
    return STATUSES.get(" ".join(label.lower().split()), " ".join(label.lower().split()))


class FeedClient:
    """Polls one Atom or RSS feed (the ``Source`` port)."""

    kind = "atom"

    def __init__(
        self,
        feed_url: str,
        http: httpx.AsyncClient,
        *,
        home: str | None = None,
        attempts: int = 3,
        max_backoff: float = 4.0,
    ) -> None:
        self.url = feed_url
        self.home = home or re.sub(r"/[^/]*$", "", feed_url.rstrip("/")) or feed_url
        self._fetcher = Fetcher(http, attempts=attempts, max_backoff=max_backoff)
        self._parsed = ParseCache()  # what its last document parsed into

    async def fetch(self, since: Validators) -> Fetched:
        """The feed's entries as incidents; "unchanged" by validators or the body's hash."""
        page = await self._fetcher.get(
            self.url, etag=since.etag, last_modified=since.last_modified, accept=ACCEPT
        )
        if page.status == 304:
            return Fetched(feed=None, validators=since, status=304)
        if page.status != 200:
            raise unexpected(self.url, page)
        if page.is_html_document():
            # feedparser reads an HTML page as an empty feed: a page that moved, or a
            # challenge, would look like a feed with no incidents.
            raise FeedNotJSON(f"{self.url} answered an HTML page instead of a feed")
        validators = Validators(
            etag=page.etag,
            last_modified=page.last_modified,
            digest=page.digest,
        )
        if since.digest == validators.digest:
            return Fetched(feed=None, validators=validators, received_bytes=len(page.body))
        return Fetched(
            feed=self.snapshot(page.body), validators=validators, received_bytes=len(page.body)
        )

    def snapshot(self, body: bytes) -> IncidentsFeed:
        """The feed, in the snapshot every source produces."""
        parsed: Any = feedparser.parse(body)
        if parsed.get("bozo") and not parsed.entries:
            raise FeedMalformed(
                f"{self.url}: not an Atom or RSS feed ({parsed.get('bozo_exception')})"
            )
        if not parsed.entries and not parsed.get("feed"):
            raise FeedMalformed(f"{self.url}: not an Atom or RSS feed")
        merged: dict[str, dict[str, Any]] = {}
        for entry in parsed.entries:
            incident = _incident(entry)
            if incident is None:
                continue
            before = merged.get(incident["id"])
            if before is None:
                merged[incident["id"]] = incident
            else:  # one incident repeated once per product (xAI): one incident
                names = {c["name"] for c in before["components"]}
                before["components"] += [
                    c for c in incident["components"] if c["name"] not in names
                ]
        feed = parsed.get("feed", {})
        page = {"name": str(feed.get("title") or ""), "url": str(feed.get("link") or self.home)}
        try:
            return parse_incidents_object(
                {"page": page, "incidents": list(merged.values())}, self._parsed
            )
        except FeedMalformed as exc:
            raise FeedMalformed(f"{self.url}: {exc}") from exc


def _when(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("updated_parsed", "published_parsed"):
        # Asked plainly, feedparser answers "updated" with "published" and a warning.
        value = dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)
        try:
            moment = moments.from_epoch(calendar.timegm(value)) if value else None
        except (TypeError, ValueError, OverflowError):
            moment = None
        if moment is not None:
            return moment
    return None


def _ident(entry: Mapping[str, Any]) -> str | None:
    for candidate in (entry.get("link"), entry.get("id")):
        found = _INCIDENT_LINK.search(str(candidate or ""))
        if found:
            return found.group(1)
    guid = str(entry.get("id") or entry.get("link") or "")
    guid = guid.removeprefix("urn:flashduty:change:")
    simple = re.sub(r"[^A-Za-z0-9]", "", guid)
    if not simple:
        return None
    return simple if len(simple) <= 64 else hashlib.sha256(guid.encode()).hexdigest()[:32]


def _content(entry: Mapping[str, Any]) -> str:
    for item in entry.get("content") or []:
        if item.get("value"):
            return str(item["value"])
    return str(entry.get("summary") or entry.get("description") or "")


def _incident(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    ident = _ident(entry)
    if ident is None:
        return None
    content = _content(entry)
    when = _when(entry)
    title = html.unescape(str(entry.get("title") or ""))
    product = _PRODUCT.match(title)
    updates = _unique_ids(
        _statuspage_updates(ident, content, when)
        or _xai_updates(ident, content)
        or [_single_update(ident, content, when)]
    )
    newest = max(updates, key=lambda u: u["display_at"] or "")
    components = _components(content)
    if product:
        title = title[product.end() :]
        components.append({"name": product.group(1), "status": "degraded_performance"})
    status = _overall_status(content) or newest["status"]
    return {
        "id": ident,
        "name": title,
        "status": status,
        "impact": "none",
        "created_at": min((u["display_at"] for u in updates if u["display_at"]), default=None),
        "updated_at": when.isoformat() if when else None,
        "resolved_at": newest["display_at"] if status == "resolved" else None,
        "incident_updates": updates,
        "components": sorted(components, key=lambda c: c["name"]),
    }


def _overall_status(content: str) -> str | None:
    found = _STATUS_LINE.search(content)
    return _status(found.group(1)) if found else None


def _components(content: str) -> list[dict[str, str]]:
    found: dict[str, str] = {}
    listed = content.split("Affected components", 1)
    if len(listed) == 2:
        for name, status in _COMPONENT_ITEM.findall(listed[1]):
            text = html_text(name)
            if text:
                found[text] = (status or "").strip().lower().replace(
                    " ", "_"
                ) or "degraded_performance"
    line = _COMPONENTS_LINE.search(content)
    if line:
        for name in html.unescape(line.group(1)).split(","):
            if name.strip():
                found.setdefault(name.strip(), "degraded_performance")
    return [{"name": n, "status": s} for n, s in found.items()]


def _statuspage_updates(ident: str, content: str, when: datetime | None) -> list[dict[str, Any]]:
    updates = []
    for match in _STATUSPAGE_UPDATE.finditer(content):
        moment = _statuspage_moment(match, when)
        updates.append(_update(ident, match["status"], match["body"], moment))
    return updates


def _statuspage_moment(match: re.Match[str], when: datetime | None) -> datetime | None:
    """An update's ``Mon D, HH:MM`` in the entry's year, or the year before (December news
    in a January entry); None when neither year has that day (Feb 29, year 0)."""
    year = when.year if when else datetime.now(UTC).year
    for candidate in (year, year - 1):
        try:
            moment = datetime.strptime(
                f"{candidate} {match['month']} {match['day']} {match['time']}", "%Y %b %d %H:%M"
            ).replace(tzinfo=UTC)
        except ValueError:
            continue
        if when is None or moment <= when.replace(second=59):
            return moments.in_utc(moment)
    return None


def _xai_updates(ident: str, content: str) -> list[dict[str, Any]]:
    updates = []
    for match in _XAI_UPDATE.finditer(content):
        try:
            moment = moments.in_utc(parsedate_to_datetime(match["when"].strip()))
        except (TypeError, ValueError, IndexError, OverflowError):
            moment = None  # the update stays, its time unknown
        updates.append(_update(ident, match["status"], match["body"], moment))
    return updates


def _single_update(ident: str, content: str, when: datetime | None) -> dict[str, Any]:
    text = content
    for cut in ("Affected components", "<b>Affected", "<p><strong>Affected"):
        text = text.split(cut, 1)[0]
    text = _STATUS_LINE.sub("<", text, count=1)
    return _update(ident, _overall_status(content) or "update", text, when)


def _unique_ids(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two updates in one minute would share an id: number the later ones."""
    seen: dict[str, int] = {}
    for update in reversed(updates):  # oldest first, so a new update never renames one
        count = seen.get(update["id"], 0)
        seen[update["id"]] = count + 1
        if count:
            update["id"] = f"{update['id']}n{count}"
    return updates


def _update(ident: str, status: str, body: str, moment: datetime | None) -> dict[str, Any]:
    stamp = moment.isoformat() if moment else None
    digits = re.sub(r"\D", "", stamp or "")
    return {
        # Feeds give updates no ids: their time names them.
        "id": f"{ident}{digits}",
        "status": _status(html_text(status)),
        "body": html_text(body),
        "created_at": stamp,
        "display_at": stamp,
    }
