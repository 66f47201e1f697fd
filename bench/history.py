"""Cost against history: does the bot's work follow open incidents, or everything it ever saw?

For each size (1,000, 10,000 and 100,000 settled incidents, each with its posted
comment, plus 5 open ones), it fills a fresh state file through the store's public API
(the same steps the deliverer takes), then measures the wall time and the peak RSS of:
an unchanged poll, an idle delivery round, a round with one edit, the start-up heal (a
new deliverer's first round), ``modbot status`` and a template change. Reddit is an
in-memory stand-in, so only modbot's own work is measured; the state file lives on
tmpfs (``/dev/shm`` when there is one) so the 100,000-incident fill takes a minute,
not an hour of fsyncs. Peak RSS is reset before each measure (Linux ``clear_refs``);
the render worker is a process of its own and is not in these figures. The settled
incidents closed over the last year, evenly.

Then, per size: the integrity check every ``modbot run`` makes at start, and the full
check (``modbot check --deep``); and the state file's footprint: bytes per settled
incident, and what its data needs once settled incidents older than
``MODBOT_KEEP_DAYS`` (90) are pruned (measured as a compacted copy: the file keeps its
size, and SQLite fills the freed space before it grows).

    python -m bench.history [--sizes 1000 10000 100000]

Target: from 1k to 100k, each time grows less than 1.5x and each peak RSS less than 1.3x.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modbot import default_templates_dir
from modbot.core import machine
from modbot.core.records import Kind, PageInfo, PostedComment, Rendered, Thread, Tracked, Validators
from modbot.core.render import sample_incident
from modbot.ports import Fetched, Store
from modbot.rendering.bodies import Bodies
from modbot.rendering.files import read_templates
from modbot.rendering.sandbox import RenderWorker
from modbot.shell.deliverer import Deliverer
from modbot.shell.poller import Poller
from modbot.shell.statusview import status_text
from modbot.store.sqlite import open_sqlite

WATCH = "default"
THREAD = Thread("t1", "Performance and Bugs Megathread", "https://www.reddit.com/r/x/comments/t1")
OPEN = 5
DAY = 86_400.0
BATCH = 1_000
LISTING = 100  # comments a listing of the bot's own comments shows
YEAR = 365  # days over which the settled incidents closed
KEEP_DAYS = 90  # MODBOT_KEEP_DAYS's default
MEASURES = ("unchanged poll", "idle round", "round with one edit", "start-up heal", "status", "template change")  # fmt: skip


class Unchanged:
    """A status source whose page never changes (the ``Source`` port)."""

    url = "https://status.example.com/api/v2/incidents.json"
    home = "https://status.example.com"
    kind = "statuspage"

    async def fetch(self, since: Validators) -> Fetched:
        return Fetched(feed=None, validators=since, status=304)


class Reddit:
    """The bot's comments in one thread, in memory (the ``Target`` port)."""

    def __init__(self) -> None:
        # Only the newest comments, as in the bot account's listing: the history lives
        # in the state file, and this stand-in must not grow with it either.
        self.comments: dict[str, PostedComment] = {}
        self.calls = 0

    def remember(self, comment: PostedComment) -> None:
        self.comments[comment.id] = comment
        while len(self.comments) > LISTING:
            self.comments.pop(next(iter(self.comments)))

    async def current_thread(self, max_age: float | None = None) -> Thread | None:
        return THREAD

    def thread_suspect(self) -> None:
        return None

    async def post(self, thread: Thread, body: str) -> PostedComment:
        self.calls += 1
        comment = PostedComment(f"c{self.calls}", "/c", time.time(), body)
        self.remember(comment)
        return comment

    async def edit(self, comment_id: str, body: str) -> None:
        self.calls += 1

    async def find(self, thread_id: str, marker_id: str | None) -> list[PostedComment]:
        self.calls += 1
        return list(self.comments.values())

    async def delete(self, comment_id: str) -> None:
        self.calls += 1

    async def removed(self, comment_ids: list[str]) -> set[str]:
        self.calls += 1
        return set()


def incident(key: str, status: str) -> Tracked:
    return Tracked(replace(sample_incident(), id=key, status=status), announce=True)


async def fill(store: Store, reddit: Reddit, settled: int) -> None:
    """``settled`` resolved incidents with posted comments, then ``OPEN`` open ones; all
    through the store's API and the machine's steps, as the bot itself writes them."""
    keys = [f"old{n:06d}" for n in range(settled)] + [f"open{n}" for n in range(OPEN)]
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        # Settled over the last year, the oldest first; the open ones a day ago.
        long_ago = time.time() - DAY * max(YEAR * (1 - start / max(settled, 1)), 1)
        items = {k: incident(k, "investigating" if k.startswith("open") else "resolved") for k in chunk}  # fmt: skip
        await store.save_poll(
            WATCH,
            url=Unchanged.url,
            changed=items,
            rendered={k: Rendered(f"body of {k}", f"hash-{k}") for k in chunk},
            render_errors={},
            validators=Validators(etag='"v1"'),
            baseline_at=datetime.fromtimestamp(long_ago, UTC),
            page=PageInfo("status.example.com", Unchanged.home),
            now=long_ago if not chunk[0].startswith("open") else time.time(),
        )
        for row in await store.deliveries(WATCH, Kind.INCIDENT, chunk):
            claimed = machine.claim(row, THREAD.id, long_ago)
            assert await store.step(row, claimed)
            comment = PostedComment(f"c-{row.key}", "/c", long_ago, f"body of {row.key}")
            reddit.remember(comment)
            assert await store.step(claimed, machine.answered(claimed, comment, f"hash-{row.key}", long_ago))  # fmt: skip
    await store.record_megathread(WATCH, THREAD, time.time())


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def timed(action: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    """Median wall seconds of ``action`` and the peak RSS while it ran."""
    samples = []
    reset_peak()
    for _ in range(repeat):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), peak_mb()


def in_use(path: Path) -> tuple[int, int]:
    """The state file's size, and the bytes its data needs (the size of a compacted copy,
    ``VACUUM INTO``: pruning frees space inside pages, which SQLite fills again before
    the file grows)."""
    copy = path.with_name(path.name + ".compacted")
    copy.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM INTO ?", (str(copy),))
    finally:
        db.close()
    needed = copy.stat().st_size
    copy.unlink()
    return path.stat().st_size, needed


async def integrity(store: Any, deep: bool) -> list[str]:
    """The check ``modbot run`` makes at start (``deep``: ``modbot check --deep``'s)."""
    quick = getattr(store, "startup_problems", None)
    if deep or quick is None:
        return list(await store.integrity_problems())
    return list(await quick())


async def footprint(store: Any, path: Path, size: int) -> dict[str, float]:
    """Bytes per settled incident, then pruned to ``KEEP_DAYS`` where the store prunes."""
    total, used = in_use(path)
    found = {
        "file bytes": total,
        "bytes per settled": used / size,
        "kept": size,
        "used after": used,
    }
    prune = getattr(store, "prune", None)
    found["pruned"] = prune is not None
    if prune is not None:
        now = time.time()
        removed = await prune(WATCH, closed_before=now - KEEP_DAYS * DAY, now=now)
        found["kept"] = size - len(removed)
        found["used after"] = in_use(path)[1]
    return found


async def measure(size: int, folder: Path) -> dict[str, Any]:
    path = folder / f"history-{size}.sqlite3"
    store = await open_sqlite(path)
    reddit = Reddit()
    worker = RenderWorker(timeout=10.0)
    try:
        await fill(store, reddit, size)

        def deliverer() -> Deliverer:
            return Deliverer(
                store, reddit, watch=WATCH, min_edit_interval=0.0, reconcile_grace=30.0
            )

        running = deliverer()
        await running.round()  # the running bot's own start-up is behind it
        bodies = Bodies(
            worker,
            read_templates(default_templates_dir()),
            home=Unchanged.home,
            page=PageInfo("status.example.com", Unchanged.home),
            zone=None,
            subreddit="x",
            max_length=10_000,
        )
        poller = Poller(watch=WATCH, source=Unchanged(), store=store, bodies=bodies)
        poller.current_thread = lambda: THREAD.id
        edits = iter(range(10**6))

        async def one_edit() -> None:
            number = next(edits)
            await store.save_renders(WATCH, {"open0": Rendered(f"new {number}", f"h{number}")}, {})
            report = await running.round()
            assert len(report.edited) == 1, report

        async def status() -> str:
            return await status_text(
                store, WATCH, url=Unchanged.url, subreddit="x", dry_run=False, now=time.time()
            )

        async def template_change() -> None:
            assert await poller.rerender_visible() == OPEN

        await template_change()  # the worker has started; its start-up is not the change
        found: dict[str, Any] = {
            "unchanged poll": await timed(poller.poll, 20),
            "idle round": await timed(running.round, 20),
            "round with one edit": await timed(one_edit, 10),
            "start-up heal": await timed(lambda: deliverer().round(), 5),
            "status": await timed(status, 10),
            "template change": await timed(template_change, 3),
            "integrity at start": await timed(lambda: integrity(store, deep=False), 5),
            "check --deep": await timed(lambda: integrity(store, deep=True), 3),
        }
        found["footprint"] = await footprint(store, path, size)
        return found
    finally:
        await worker.close()
        await store.close()


CHECKS = ("integrity at start", "check --deep")


async def main(sizes: list[int]) -> dict[int, dict[str, Any]]:
    shm = Path("/dev/shm")
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        for size in sizes:
            started = time.monotonic()
            results[size] = await measure(size, Path(tmp))
            print(f"{size:>7} settled incidents + {OPEN} open: filled and measured in {time.monotonic() - started:.0f} s")  # fmt: skip
    print()
    header = f"{'measure':<22}" + "".join(f"{f'{s:,} ms':>12}{'MB':>7}" for s in sizes)
    print(header + f"{'time x':>9}{'RSS x':>7}")
    failures = []
    for name in MEASURES:
        row = f"{name:<22}"
        for size in sizes:
            seconds, mb = results[size][name]
            row += f"{seconds * 1000:>12.2f}{mb:>7.1f}"
        first, last = results[sizes[0]][name], results[sizes[-1]][name]
        time_ratio, rss_ratio = last[0] / max(first[0], 1e-9), last[1] / max(first[1], 1e-9)
        print(row + f"{time_ratio:>9.2f}{rss_ratio:>7.2f}")
        if time_ratio >= 1.5 or rss_ratio >= 1.3:
            failures.append(name)
    verdict = "met" if not failures else "NOT met for " + ", ".join(failures)
    print(f"\ntarget (from {sizes[0]:,} to {sizes[-1]:,}: time < 1.5x, RSS < 1.3x): {verdict}")
    print()
    for name in CHECKS:
        times = " / ".join(f"{results[s][name][0] * 1000:.2f}" for s in sizes)
        print(f"{name:<22} {times} ms at {' / '.join(f'{s:,}' for s in sizes)} settled incidents")
    for size in sizes:
        print(f"state file, {size:,} settled: {footprint_text(results[size]['footprint'])}")
    return results


def footprint_text(found: dict[str, float]) -> str:
    """The state file's footprint, before and after pruning, in one line."""
    text = f"{found['file bytes'] / 1e6:.1f} MB, {found['bytes per settled']:.0f} bytes per settled incident"
    if not found["pruned"]:
        return text + "; never pruned"
    return text + (
        f"; pruned to {KEEP_DAYS} days: {found['kept']:,.0f} kept, "
        f"{found['used after'] / 1e6:.1f} MB of data"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    asyncio.run(main(parser.parse_args().sizes))
