"""The floor the bot's idle cost is measured against: a bare httpx + ETag loop.

``BarePoll`` is all a program must do to notice a change on a status page: a
conditional GET with the last ``ETag`` (and ``Last-Modified``), and for a 200 a hash of
the body, parsed only when the hash changed. One kept-alive connection per host. No
state file, no rendering, no Reddit. ``python -m bench.bare INTERVAL URL...`` polls
each URL every INTERVAL seconds, as a bot with that many watches would, until killed
(its CPU is read from /proc by whoever started it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from xml.etree import ElementTree

import httpx

AGENT = "bare-loop"


def bare_client() -> httpx.AsyncClient:
    """One client, one kept-alive connection per host, however many hosts."""
    limits = httpx.Limits(
        max_connections=None, max_keepalive_connections=None, keepalive_expiry=300
    )
    return httpx.AsyncClient(limits=limits, headers={"User-Agent": AGENT}, timeout=10)


class BarePoll:
    """One page, polled the cheapest way there is (the 20 lines the bot is measured by)."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.etag: str | None = None
        self.modified: str | None = None
        self.digest = b""

    async def poll(self) -> bool:
        """Fetch once; True when the page changed (and was parsed)."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        response = await self.http.get(self.url, headers=headers)
        if response.status_code != 200:
            return False
        self.etag = response.headers.get("etag")
        self.modified = response.headers.get("last-modified")
        digest = hashlib.sha256(response.content).digest()
        if digest == self.digest:
            return False
        self.digest = digest
        if response.content.lstrip().startswith(b"<"):
            ElementTree.fromstring(response.content)
        else:
            json.loads(response.content)
        return True


async def loop(interval: float, urls: list[str]) -> None:
    """Poll every URL every ``interval`` seconds, each on its own schedule."""
    async with bare_client() as http:

        async def one(url: str, offset: float) -> None:
            page = BarePoll(http, url)
            await asyncio.sleep(offset)
            while True:
                started = asyncio.get_running_loop().time()
                await page.poll()
                await asyncio.sleep(
                    max(interval - (asyncio.get_running_loop().time() - started), 0)
                )

        count = max(len(urls), 1)
        await asyncio.gather(*(one(u, interval * n / count) for n, u in enumerate(urls)))


if __name__ == "__main__":
    asyncio.run(loop(float(sys.argv[1]), sys.argv[2:]))
