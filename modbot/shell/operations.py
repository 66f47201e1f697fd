"""What moderators can ask for, from the CLI or on Reddit: notices, refreshes, pause,
resume, status.

An operation never posts by itself: it records an intent (a notice, a re-rendered
body, a forced edit) in the store, asks the deliverer to deliver these subjects, and
reads the deliverer's report and rows to say what happened. Every operation is safe
to repeat after a crash: notices carry an id, so a repeat finds the one already
recorded; refreshes only edit what changed; pause and resume set a flag.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from modbot.config.watches import ReportsConfig
from modbot.core import incidents, machine
from modbot.core.feed import IncidentsFeed
from modbot.core.machine import State
from modbot.core.markdown import sound
from modbot.core.records import DeliveryRow, Kind, NoteRow, Report, Tracked
from modbot.errors import CommandError
from modbot.ports import Store
from modbot.shell.poller import Poller
from modbot.shell.statusview import status_text, when

SubjectKey = tuple[Kind, str]
Deliver = Callable[[Collection[SubjectKey]], Awaitable[Report]]
SETTLE_TIMEOUT = 15.0  # seconds to wait for a post whose answer is not in yet


def new_note_id() -> str:
    """An id for a notice posted from the CLI."""
    return "cli" + secrets.token_hex(5)


@dataclass(frozen=True)
class Outcome:
    """What an operation did, as one or more lines for a terminal or a reply."""

    text: str
    link: str | None = None


class Operations:
    """Moderator operations on one watch."""

    def __init__(
        self,
        *,
        store: Store,
        poller: Poller,
        deliver: Deliver,
        subreddit: str | None,
        dry_run: bool,
        clock: Callable[[], float] = time.time,
        settle_timeout: float = SETTLE_TIMEOUT,
        reports: ReportsConfig | None = None,
    ) -> None:
        self.reports = reports  # what the watch does with readers' reports (status shows it)
        self.store = store
        self.poller = poller
        self.watch = poller.watch
        self.deliver = deliver
        self.subreddit = subreddit
        self.dry_run = dry_run
        self.clock = clock
        self.settle_timeout = settle_timeout

    # --- notices ----------------------------------------------------------------------------
    async def notice(self, text: str, *, source: str, note_id: str | None = None) -> NoteRow:
        """A notice rendered and ready to record (``note_id`` makes a repeat harmless)."""
        # Where moderators' words enter, from the CLI and from Reddit alike: the same
        # newlines as feed text, so a lone CR (a line break to Reddit) is one here too,
        # and the same soundness (a terminal's bytes that are not UTF-8 arrive as lone
        # surrogates, which no store and no Reddit call can carry).
        text = incidents.normalise_text(sound(text))
        if not text:
            raise CommandError("a notice needs some text")
        ident = note_id or new_note_id()
        rendered = await self.poller.bodies.notice(text, ident)
        return NoteRow(
            watch=self.watch,
            note_id=ident,
            text=text,
            body=rendered.body,
            body_hash=rendered.digest,
            source=source,
            created_at=self.clock(),
            cut_chars=rendered.cut_chars,
        )

    async def post_notice(self, text: str, *, source: str) -> Outcome:
        """Record a new notice and have it delivered."""
        note, _ = await self.store.add_note(await self.notice(text, source=source))
        return await self.notice_outcome(note.note_id)

    async def notice_outcome(self, note_id: str) -> Outcome:
        """Deliver a recorded notice (if it is not yet) and say where it stands."""
        rows = await self._settle(Kind.NOTE, note_id)
        posted = next((r for r in rows if r.state == State.POSTED and r.permalink), None)
        if posted is not None:
            note = await self.store.note(self.watch, note_id)
            cut = note.cut_chars if note is not None else 0
            said = f" (the last {cut} characters of your text did not fit and were cut)"
            text = f"posted notice {note_id}: {posted.permalink}" + (said if cut else "")
            return Outcome(text, posted.permalink)
        row = rows[-1] if rows else None
        if row is not None and row.state == State.FAILED:
            return Outcome(f"notice {note_id}: Reddit refused it ({row.last_error})")
        if row is not None and row.state == State.POSTING:
            return Outcome(
                f"notice {note_id}: Reddit did not confirm it ({row.last_error or 'no answer'}); "
                "the bot will look for it and post it only if it did not land"
            )
        why = row.last_error if row is not None and row.last_error else "no megathread right now"
        return Outcome(f"notice {note_id}: queued ({why}); it will be posted once that clears")

    async def edit_notice(self, comment_id: str, text: str) -> Outcome:
        """Replace the text of a notice posted earlier (by its comment id)."""
        note = await self.store.note_by_comment(comment_id.removeprefix("t1_"))
        if note is None or note.watch != self.watch:
            raise CommandError(f"comment {comment_id} is not a notice this bot posted")
        fresh = await self.notice(text, source=note.source, note_id=note.note_id)
        await self.store.edit_note(fresh)
        rows = await self._settle(Kind.NOTE, note.note_id)
        current = [
            r for r in rows if r.state == State.POSTED and r.delivered_hash == fresh.body_hash
        ]
        if current and current[0].permalink:
            link = current[0].permalink
            return Outcome(f"edited notice {note.note_id}: {link}", link)
        return Outcome(f"notice {note.note_id}: the edit is not delivered yet")

    # --- incidents ------------------------------------------------------------------------
    async def post_incident(self, incident_id: str, feed: IncidentsFeed | None = None) -> Outcome:
        """Render one incident now and post or edit its comment, even if it looks current."""
        known = (await self.store.tracked(self.watch, [incident_id])).get(incident_id)
        if known is None and feed is not None:
            found = [i for i in feed.incidents if i.id == incident_id]
            if found:
                known = Tracked(incidents.view_of(found[0]), announce=False)
        if known is None:
            raise CommandError(f"incident {incident_id} is not on the status page")
        if not known.announce:
            await self.store.force(self.watch, known, now=self.clock())
        await self._rerender({incident_id: known})
        for row in await self.store.deliveries(self.watch, Kind.INCIDENT, [incident_id]):
            if machine.allowed(row.state, machine.Step.FORCED, machine.Actor.REQUESTER):
                await self.store.step(row, machine.forced(row))
        return self._incident_outcome(incident_id, await self._settle(Kind.INCIDENT, incident_id))

    async def refresh(self, incident_id: str | None = None, *, every: bool = False) -> Outcome:
        """Re-render open incidents (or one, or ``every`` comment in the current megathread)
        with the current templates, and edit the comments whose text changed."""
        await self.poller.reload_templates()
        if incident_id:
            chosen = await self.store.announced(self.watch, [incident_id])
            if not chosen:
                raise CommandError(f"incident {incident_id} is not one the bot posts about")
        elif every:
            thread = (await self.store.health(self.watch)).megathread
            if thread is None:
                raise CommandError("no megathread is known yet, so there is nothing to redo")
            chosen = await self.store.in_thread(self.watch, thread.id)
        else:
            chosen = await self.store.rerender_scope(
                self.watch, closed_since=float("inf"), thread_id=None
            )
        await self._rerender(chosen)
        keys = {(Kind.INCIDENT, key) for key in chosen}
        report = await self.deliver(keys)
        summary = (
            f"re-rendered {len(chosen)} incident(s); {report.touched(keys)} comment(s) changed"
        )
        if incident_id:
            rows = await self.store.deliveries(self.watch, Kind.INCIDENT, [incident_id])
            comment = self._incident_outcome(incident_id, rows)
            return Outcome(f"{summary}; {comment.text}", comment.link)
        return Outcome(summary)

    async def _rerender(self, chosen: dict[str, Tracked]) -> None:
        rendered, errors = await self.poller.render(chosen)
        await self.store.save_renders(self.watch, rendered, errors)
        if errors:
            raise CommandError("; ".join(errors.values()))

    @staticmethod
    def _incident_outcome(incident_id: str, rows: list[DeliveryRow]) -> Outcome:
        posted = [r for r in rows if r.state == State.POSTED and r.permalink]
        if posted:
            link = posted[-1].permalink
            return Outcome(f"incident {incident_id}: comment is current: {link}", link)
        reasons = "; ".join(f"{r.state}: {r.last_error}" for r in rows if r.last_error)
        return Outcome(f"incident {incident_id}: not delivered yet ({reasons or 'waiting'})")

    async def _settle(self, kind: Kind, key: str) -> list[DeliveryRow]:
        """Deliver one subject; wait (bounded) while a post's answer is not in yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        while True:
            await self.deliver({(kind, key)})
            rows = await self.store.deliveries(self.watch, kind, [key])
            # Worth waiting for: an answer due back, or a look for the comment, before
            # the deadline (a post whose comment is not found yet waits for the listing
            # grace, which may be longer).
            soon = self.clock() + max(deadline - loop.time(), 0.0)
            pending = [r for r in rows if r.state == State.POSTING and r.not_before <= soon]
            if not pending or loop.time() >= deadline:
                return rows
            await asyncio.sleep(min(0.5, max(deadline - loop.time(), 0.0)))

    # --- pause, resume, status -------------------------------------------------------------
    async def pause(self, by: str) -> Outcome:
        """Stop posting; polls go on and updates are kept."""
        await self.store.set_paused(self.watch, True, by=by, now=self.clock())
        return Outcome("paused: no posts or edits until resumed; updates are kept")

    async def resume(self, by: str) -> Outcome:
        """Start posting again; held updates go out coalesced to the latest state."""
        await self.store.set_paused(self.watch, False, by=by, now=self.clock())
        return Outcome("resumed: held updates will be delivered within one poll interval")

    async def quiet(self, seconds: float, by: str) -> Outcome:
        """Hold early notices for ``seconds`` (0: no longer); readers' reports are still
        counted, and a surge that begins meanwhile gets no notice."""
        now = self.clock()
        until = now + seconds if seconds > 0 else 0.0
        await self.store.set_quiet(self.watch, until, by=by, now=now)
        if not seconds:
            return Outcome("early notices: no longer held")
        return Outcome(
            f"early notices held until {when(until)}; readers' reports are still counted"
        )

    async def status(self) -> Outcome:
        """One screen about what the bot is doing (read from the store only)."""
        text = await status_text(
            self.store,
            self.watch,
            url=self.poller.source.url,
            subreddit=self.subreddit,
            dry_run=self.dry_run,
            now=self.clock(),
            reports=self.reports,
        )
        return Outcome(text)
