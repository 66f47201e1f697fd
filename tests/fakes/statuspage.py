"""A fake Atlassian Statuspage for tests: aiohttp on 127.0.0.1, Statuspage-shaped JSON.

Tests set the incidents it serves (or a list of documents to step through), and can
make it misbehave on cue: malformed JSON, an HTML page with status 200 or 503, a
hang past the client's timeout, 5xx, 429. It answers ``If-None-Match`` and
``If-Modified-Since`` with 304 when nothing changed, follows the real page's habit
of a weak ETag, and counts requests and bytes so benchmarks can report them.

    async with FakeStatuspage() as page:
        page.set_incidents([incident("abc", "investigating", [update("u1", ...)])])
        ... MODBOT_STATUSPAGE_URL=page.url ...
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

INCIDENTS_PATH = "/api/v2/incidents.json"
PAGE = {
    "id": "fakepage0001",
    "name": "Fake Status",
    "url": "https://status.example.com",
    "time_zone": "Etc/UTC",
    "updated_at": "2026-10-07T21:44:00.000Z",
}
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body>Checking your browser before accessing the page.</body></html>"
)
T0 = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    """An ISO timestamp ``minutes`` after a fixed start time, the way Statuspage writes it."""
    return (
        (T0 + timedelta(minutes=minutes)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def update(
    update_id: str,
    status: str,
    body: str,
    minute: float,
    *,
    edited_minute: float | None = None,
    display_minute: float | None = None,
    components: tuple[tuple[str, str], ...] = (("API", "partial_outage"),),
) -> dict[str, Any]:
    """One ``incident_updates`` entry."""
    return {
        "id": update_id,
        "status": status,
        "body": body,
        "incident_id": "",
        "created_at": at(minute),
        "updated_at": at(edited_minute if edited_minute is not None else minute),
        "display_at": at(display_minute if display_minute is not None else minute),
        "affected_components": [
            {"code": f"c-{name}", "name": name, "old_status": s, "new_status": s}
            for name, s in components
        ],
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident(
    incident_id: str,
    status: str,
    updates: list[dict[str, Any]],
    *,
    name: str | None = None,
    impact: str = "major",
    components: tuple[tuple[str, str], ...] | None = None,
) -> dict[str, Any]:
    """One incident; ``updates`` newest first, as the real API lists them."""
    closed = status in ("resolved", "postmortem")
    if components is None:
        components = (("API", "operational" if closed else "partial_outage"),)
    first = min((u["created_at"] for u in updates), default=at(0))
    last = max((u["updated_at"] for u in updates), default=first)
    for item in updates:
        item["incident_id"] = incident_id
    return {
        "id": incident_id,
        "name": name or f"Elevated errors ({incident_id})",
        "status": status,
        "created_at": first,
        "updated_at": last,
        "monitoring_at": None,
        "resolved_at": last if closed else None,
        "impact": impact,
        "shortlink": f"https://stspg.io/{incident_id[:9]}",
        "started_at": first,
        "page_id": PAGE["id"],
        "incident_updates": updates,
        "components": [
            {"id": f"c-{n}", "name": n, "status": s, "group": False, "page_id": PAGE["id"]}
            for n, s in components
        ],
    }


@dataclass
class Request:
    """One request the fake answered."""

    path: str
    status: int
    conditional: bool
    bytes_in: int
    bytes_out: int
    # The client's address (one per TCP connection, so new ones count reconnects) and
    # its User-Agent (whose connection it is, when two clients share the page).
    peer: str = ""
    agent: str = ""


@dataclass
class Misbehaviour:
    """What the next ``remaining`` requests get instead of the feed (None: forever)."""

    kind: str  # malformed | html200 | html503 | status | hang | badgzip | loop
    remaining: int | None
    status: int = 503
    seconds: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)


# The answers of the misbehaviours that need nothing but their kind.
CANNED: dict[str, Callable[[], web.Response]] = {
    "malformed": lambda: web.Response(
        text='{"incidents": [{"id": 1, ', content_type="application/json"
    ),
    "html200": lambda: web.Response(text=HTML_PAGE, content_type="text/html"),
    "html503": lambda: web.Response(status=503, text=HTML_PAGE, content_type="text/html"),
    # Says gzip, and is not.
    "badgzip": lambda: web.Response(
        body=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"}
    ),
    # Sends the client back to where it was.
    "loop": lambda: web.Response(status=302, headers={"Location": INCIDENTS_PATH}),
}


class FakeStatuspage:
    """The fake page; see the module docstring."""

    def __init__(self, *, use_etag: bool = True, use_last_modified: bool = False) -> None:
        self.document: dict[str, Any] = {"page": dict(PAGE), "incidents": []}
        self.use_etag = use_etag
        self.use_last_modified = use_last_modified
        self.requests: list[Request] = []
        self._misbehaviours: list[Misbehaviour] = []
        self._timeline: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._body = b""
        self._etag = ""
        self._modified = datetime(2026, 1, 1, tzinfo=UTC)
        self.url = ""
        self._encode()

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; returns the base URL."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get(INCIDENTS_PATH, self._incidents)
        app.router.add_get("/moved" + INCIDENTS_PATH, self._moved)
        # Control API for benchmarks that run the fake in another process.
        app.router.add_put("/_fake/document", self._put_document)
        app.router.add_get("/_fake/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        if self.document["page"] == PAGE:
            self.set_document(dict(self.document, page=self.page()))
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeStatuspage:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- content ----------------------------------------------------------------------
    def page(self) -> dict[str, Any]:
        """The page as a real one describes itself: at its own URL, once serving."""
        return dict(PAGE, url=self.url or PAGE["url"])

    def set_incidents(self, incidents: list[dict[str, Any]]) -> None:
        """Serve these incidents (newest first) from now on."""
        self.document = {"page": self.page(), "incidents": copy.deepcopy(incidents)}
        self._encode()

    def set_document(self, document: dict[str, Any]) -> None:
        """Serve this whole document from now on."""
        self.document = copy.deepcopy(document)
        self._encode()

    def load_timeline(self, documents: list[dict[str, Any]]) -> None:
        """Prepare documents to step through with ``advance``; serves the first."""
        self._timeline = [copy.deepcopy(d) for d in documents]
        self.set_document(self._timeline.pop(0))

    def advance(self) -> bool:
        """Serve the next prepared document; False when there is none left."""
        if not self._timeline:
            return False
        self.set_document(self._timeline.pop(0))
        return True

    def _encode(self) -> None:
        self._body = json.dumps(self.document).encode()
        digest = hashlib.sha256(self._body).hexdigest()[:16]
        if f'W/"{digest}"' != self._etag:
            self._etag = f'W/"{digest}"'
            self._modified = max(self._modified + timedelta(seconds=1), datetime.now(UTC))

    # --- misbehaviour -----------------------------------------------------------------
    def misbehave(
        self,
        kind: str,
        *,
        count: int | None = 1,
        status: int = 503,
        seconds: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` requests (None: all) badly instead of with the feed."""
        self._misbehaviours.append(
            Misbehaviour(kind, count, status=status, seconds=seconds, headers=headers or {})
        )

    def heal(self) -> None:
        """Stop misbehaving."""
        self._misbehaviours.clear()

    def _next_misbehaviour(self) -> Misbehaviour | None:
        while self._misbehaviours:
            current = self._misbehaviours[0]
            if current.remaining is None:
                return current
            if current.remaining > 0:
                current.remaining -= 1
                if current.remaining == 0:
                    self._misbehaviours.pop(0)
                return current
            self._misbehaviours.pop(0)
        return None

    # --- counting ---------------------------------------------------------------------
    def count(self, status: int | None = None) -> int:
        """Requests answered (with ``status``, if given)."""
        return sum(1 for r in self.requests if status is None or r.status == status)

    # --- handlers ---------------------------------------------------------------------
    async def _put_document(self, request: web.Request) -> web.Response:
        self.set_document(await request.json())
        return web.json_response({"ok": True})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response([r.__dict__ for r in self.requests])

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(INCIDENTS_PATH)

    async def _incidents(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        self._record(request, response)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        trouble = self._next_misbehaviour()
        if trouble is not None:
            return await self._misbehave(trouble)
        headers = {"Cache-Control": "max-age=10, public, s-maxage=15"}
        if self.use_etag:
            headers["ETag"] = self._etag
            if request.headers.get("If-None-Match") == self._etag:
                return web.Response(status=304, headers=headers)
        if self.use_last_modified:
            stamp = format_datetime(self._modified, usegmt=True)
            headers["Last-Modified"] = stamp
            if request.headers.get("If-Modified-Since") == stamp:
                return web.Response(status=304, headers=headers)
        return web.Response(body=self._body, content_type="application/json", headers=headers)

    async def _misbehave(self, trouble: Misbehaviour) -> web.Response:
        if trouble.kind == "hang":
            await asyncio.sleep(trouble.seconds)
        if trouble.kind == "status":
            return web.Response(status=trouble.status, text="error", headers=trouble.headers)
        canned = CANNED.get(trouble.kind)
        if canned is not None:
            return canned()
        return web.Response(body=self._body, content_type="application/json")

    def _record(self, request: web.Request, response: web.Response) -> None:
        request_line = len(f"{request.method} {request.path_qs} HTTP/1.1\r\n")
        bytes_in = request_line + sum(len(k) + len(v) + 4 for k, v in request.headers.items()) + 2
        body = len(response.body) if isinstance(response.body, bytes) else 0
        # aiohttp adds Server, Date and Content-Length; count them as the client sees them.
        head = 17 + sum(len(k) + len(v) + 4 for k, v in response.headers.items()) + 80
        self.requests.append(
            Request(
                path=request.path,
                status=response.status,
                conditional="If-None-Match" in request.headers
                or "If-Modified-Since" in request.headers,
                bytes_in=bytes_in,
                bytes_out=head + body,
                peer=_peer(request),
                agent=request.headers.get("User-Agent", ""),
            )
        )

    def connections(self, agent: str = "", since: int = 0) -> int:
        """TCP connections first seen from request ``since`` on (by clients whose
        User-Agent starts with ``agent``): the connections a client opened, or reopened."""
        before = {r.peer for r in self.requests[:since]}
        return len({r.peer for r in self.requests[since:] if r.agent.startswith(agent)} - before)


def _peer(request: web.Request) -> str:
    """The client's ``host:port``: one per TCP connection."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


async def _serve_forever() -> None:
    page = FakeStatuspage()
    print(await page.start(), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve_forever())
