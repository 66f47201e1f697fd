"""A fake web site for the status sources that are not Atlassian Statuspage.

``FakeSite`` is an aiohttp server on 127.0.0.1 that answers each path the tests set
(``put``) with its body, content type and headers, counts requests per path, and
misbehaves on cue (an HTML page, a status, a hang). The vendor modules beside it
(``incidentio``, ``gcloud``, ``feeds``) fill it with documents built from the real
samples in ``tests/data/providers``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.statuspage import HTML_PAGE


@dataclass
class Answer:
    """What one path serves."""

    body: bytes
    content_type: str
    headers: dict[str, str]


class FakeSite:
    """Serves set documents at set paths; see the module docstring."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: Counter[str] = Counter()
        # Each client connection (``host:port``) with the User-Agent that opened it:
        # how many connections a client opened, reopened ones included.
        self.peers: dict[str, str] = {}
        self.trouble: dict[str, tuple[str, int]] = {}  # path -> (kind, status)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; returns the base URL."""
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSite:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as the page's own host."""
        return self.url.split("//", 1)[1]

    def put(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve ``body`` at ``path`` from now on."""
        data = body.encode() if isinstance(body, str) else body
        self.answers[path] = Answer(data, content_type, headers or {})

    def connections(self, agent: str = "") -> int:
        """Connections opened so far by clients whose User-Agent starts with ``agent``."""
        return sum(1 for seen in self.peers.values() if seen.startswith(agent))

    def misbehave(self, path: str, kind: str, status: int = 503) -> None:
        """Answer ``path`` badly until ``heal``: ``html`` (a challenge page), ``status``."""
        self.trouble[path] = (kind, status)

    def heal(self, path: str | None = None) -> None:
        """Stop misbehaving (at ``path``, or everywhere)."""
        if path is None:
            self.trouble.clear()
        else:
            self.trouble.pop(path, None)

    async def _answer(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests[path] += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.setdefault(f"{peer[0]}:{peer[1]}", request.headers.get("User-Agent", ""))
        kind, status = self.trouble.get(path, ("", 0))
        if kind == "html":
            return web.Response(text=HTML_PAGE, content_type="text/html")
        if kind == "status":
            return web.Response(status=status, text="error")
        if kind == "hang":
            await asyncio.sleep(60)
        answer = self.answers.get(path)
        if answer is None:
            return web.Response(status=404, text="not found")
        return web.Response(
            body=answer.body, content_type=answer.content_type, headers=answer.headers
        )


def dumps(data: Any) -> str:
    """JSON as the vendors send it."""
    import json

    return json.dumps(data)
