"""Moderator commands: what moderators type, and the operations behind them.

The same ``Operations`` serve the CLI (``modbot post``, ``refresh``, ``status``,
``pause``, ``resume``) and commands sent to the bot on Reddit (``!post TEXT``,
``!refresh [ID]``, ``!status``, ``!pause``, ``!resume``, ``!help``). Each operation is
safe to repeat after a crash: notices carry an id that reconciles instead of
re-posting, refreshes only edit what changed, pause and resume set a flag.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from modbot import delivery, incidents
from modbot.bot import LAST_POLL_KEY, Bot, pause_state, set_paused
from modbot.errors import CommandError, RedditUnavailable
from modbot.feed import IncidentsFeed
from modbot.incidents import Tracked
from modbot.publisher import LAST_ERROR_KEY, MEGATHREAD_KEY, REDDIT_OK_KEY
from modbot.store import CommentRow, NoteRow

COMMANDS = ("post", "refresh", "status", "pause", "resume", "help")
# Commands that change what the bot posts need one of these moderator permissions.
CHANGING = frozenset({"post", "refresh", "pause", "resume"})
CHANGE_PERMISSIONS = frozenset({"all", "posts"})
_COMMAND_RE = re.compile(r"^!(\w+)\b[ \t]*(.*)$", re.DOTALL)


def help_text(subreddit: str | None) -> str:
    """What ``!help`` answers."""
    where = f"moderators of r/{subreddit}" if subreddit else "moderators"
    return (
        f"modbot commands ({where} only; send them as a private message or mention me):\n\n"
        "    !post TEXT       post a moderator notice into the megathread\n"
        "    !refresh [ID]    re-render open incidents (or one) and edit what changed\n"
        "    !status          what the bot is doing\n"
        "    !pause           stop posting; updates are kept\n"
        "    !resume          start posting again, with the latest state\n"
        "    !help            this text"
    )


@dataclass(frozen=True)
class Command:
    """One parsed command."""

    name: str
    argument: str = ""


def parse(text: str, username: str) -> Command | None:
    """The command in a message, ``None`` if it is not one; malformed raises ``CommandError``.

    A command is the message's first word, after an optional ``u/<bot>`` mention.
    """
    body = text.strip()
    body = re.sub(rf"^/?u/{re.escape(username)}\b[:,]?\s*", "", body, flags=re.IGNORECASE)
    found = _COMMAND_RE.match(body)
    if not body.startswith("!"):
        return None
    if not found:
        raise CommandError("a command is ! followed by its name, e.g. !status")
    name, argument = found.group(1).lower(), found.group(2).strip()
    if name not in COMMANDS:
        raise CommandError(f"unknown command !{name}")
    if name == "post" and not argument:
        raise CommandError("!post needs the text of the notice after it")
    if name == "refresh" and argument and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", argument):
        raise CommandError("!refresh takes at most one incident id")
    return Command(name, argument)


def new_note_id() -> str:
    """An id for a notice posted from the CLI."""
    return "cli" + secrets.token_hex(5)


@dataclass(frozen=True)
class Outcome:
    """What an operation did, as one or more lines for a terminal or a reply."""

    text: str
    link: str | None = None


class Operations:
    """Moderator operations on one running (or CLI-built) bot."""

    def __init__(self, bot: Bot, *, subreddit: str | None, dry_run: bool) -> None:
        self.bot = bot
        self.store = bot.store
        self.publisher = bot.publisher
        self.page = bot.page
        self.subreddit = subreddit
        self.dry_run = dry_run
        self.clock: Callable[[], float] = bot.clock

    # --- notices --------------------------------------------------------------------
    async def post_notice(self, text: str, *, source: str, note_id: str | None = None) -> Outcome:
        """Post a moderator notice (``note_id`` makes a repeat after a crash harmless)."""
        ident = note_id or new_note_id()
        rendered = self.bot.renderer.render_manual(text, note_id=ident)
        note = NoteRow(
            note_id=ident,
            state=delivery.PENDING,
            text=text,
            body=rendered.body,
            body_hash=rendered.digest,
            source=source,
            created_at=self.clock(),
        )
        self.store.add_note(self.page, note)
        try:
            posted = await self.publisher.post_note(ident)
        except RedditUnavailable as exc:
            return Outcome(
                f"notice {ident}: Reddit did not confirm it ({exc}); the running bot will look "
                "for it and post it only if it did not land"
            )
        if posted.state != delivery.POSTED:
            return Outcome(f"notice {ident}: not confirmed yet; the running bot will check")
        return Outcome(f"posted notice {ident}: {posted.permalink}", posted.permalink)

    async def edit_notice(self, comment_id: str, text: str) -> Outcome:
        """Replace the text of a notice posted earlier (by its comment id)."""
        note = self.store.note_by_comment(self.page, comment_id.removeprefix("t1_"))
        if note is None:
            raise CommandError(f"comment {comment_id} is not a notice this bot posted")
        rendered = self.bot.renderer.render_manual(text, note_id=note.note_id)
        edited = await self.publisher.edit_note(note.note_id, rendered.body, text)
        return Outcome(f"edited notice {note.note_id}: {edited.permalink}", edited.permalink)

    # --- incidents ------------------------------------------------------------------
    async def post_incident(self, incident_id: str, feed: IncidentsFeed | None = None) -> Outcome:
        """Render one incident now and post or edit its comment, even if it looks current."""
        known = self.store.tracked(self.page, [incident_id]).get(incident_id)
        if known is None and feed is not None:
            found = [i for i in feed.incidents if i.id == incident_id]
            if found:
                known = Tracked(incidents.view_of(found[0]), announce=False)
        if known is None:
            raise CommandError(f"incident {incident_id} is not on the status page")
        if not known.announce:
            self.store.force(self.page, known, now=self.clock())
        self._rerender({incident_id: known})
        for row in self.store.comments(self.page):
            if row.incident_id == incident_id and row.state == delivery.POSTED:
                self.store.update_comment(
                    self.page,
                    incident_id,
                    row.thread_id,
                    delivered_hash=None,
                    delivered_at=0.0,
                    not_before=0.0,
                )
        await self.publisher.deliver_due(only={incident_id})
        return self._incident_outcome(incident_id)

    async def refresh(self, incident_id: str | None = None) -> Outcome:
        """Re-render open incidents (or one) with the current templates; edit what changed."""
        forced = self.store.forced(self.page)
        chosen = {
            key: item
            for key, item in self.store.tracked(self.page).items()
            if (item.announce or key in forced)
            and (key == incident_id if incident_id else item.view.is_open)
        }
        if incident_id and not chosen:
            raise CommandError(f"incident {incident_id} is not one the bot posts about")
        before = self.publisher.stats.edits + self.publisher.stats.posts
        self._rerender(chosen)
        await self.publisher.deliver_due(only=set(chosen))
        changed = self.publisher.stats.edits + self.publisher.stats.posts - before
        summary = f"re-rendered {len(chosen)} incident(s); {changed} comment(s) changed"
        if incident_id:
            comment = self._incident_outcome(incident_id)
            return Outcome(f"{summary}; {comment.text}", comment.link)
        return Outcome(summary)

    def _rerender(self, chosen: dict[str, Tracked]) -> None:
        self.bot.renderer.reload_if_changed()
        rendered, errors = self.bot.render(chosen)
        self.store.save_renders(self.page, rendered, errors)
        if errors:
            raise CommandError("; ".join(errors.values()))

    def _incident_outcome(self, incident_id: str) -> Outcome:
        rows = [r for r in self.store.comments(self.page) if r.incident_id == incident_id]
        posted = [r for r in rows if r.state == delivery.POSTED and r.permalink]
        if posted:
            link = posted[-1].permalink
            return Outcome(f"incident {incident_id}: comment is current: {link}", link)
        reasons = "; ".join(f"{r.state}: {r.last_error}" for r in rows if r.last_error)
        return Outcome(f"incident {incident_id}: not delivered yet ({reasons or 'waiting'})")

    # --- pause and resume -------------------------------------------------------------
    def pause(self, by: str) -> Outcome:
        """Stop posting; polls go on and updates are kept."""
        set_paused(self.store, True, by=by, at=self.clock())
        return Outcome("paused: no posts or edits until resumed; updates are kept")

    def resume(self, by: str) -> Outcome:
        """Start posting again; held updates go out coalesced to the latest state."""
        set_paused(self.store, False, by=by, at=self.clock())
        return Outcome("resumed: held updates will be delivered within one poll interval")

    # --- status -----------------------------------------------------------------------
    def status(self) -> Outcome:
        """One screen about what the bot is doing (read from the state file only)."""
        mode = "dry-run (printing, not posting)" if self.dry_run else "posting to Reddit"
        lines = [
            f"page:        {self.page}" + (f" -> r/{self.subreddit}" if self.subreddit else ""),
            f"mode:        {mode}",
            f"paused:      {self._paused_line()}",
            f"megathread:  {self._megathread_line()}",
            f"last poll:   {self._poll_line()}",
            f"heartbeat:   {self._heartbeat_line()}",
            "incidents:",
            *self._incident_lines(),
        ]
        notes = self.store.notes(self.page)[:5]
        if notes:
            lines.append("notices:")
            lines += [
                f"  {n.note_id:<14} {n.state:<8} {n.permalink or n.last_error or ''}" for n in notes
            ]
        return Outcome("\n".join(lines))

    def _paused_line(self) -> str:
        paused = pause_state(self.store)
        if paused is None:
            return "no"
        return f"YES, since {_when(paused.get('at'))} by {paused.get('by')} (updates are held)"

    def _megathread_line(self) -> str:
        saved = _load(self.store.get(MEGATHREAD_KEY.format(page=self.page)))
        if saved is None:
            return "not looked up yet"
        if not saved.get("id"):
            return f"none found (checked {_when(saved.get('at'))})"
        return f"{saved.get('title')} {saved.get('permalink')} (since {_when(saved.get('at'))})"

    def _poll_line(self) -> str:
        saved = _load(self.store.get(LAST_POLL_KEY.format(page=self.page)))
        if saved is None:
            return "never"
        state = "ok" if saved.get("ok") else "FAILED"
        line = f"{_when(saved.get('at'))} {state}: {saved.get('message')}"
        if not saved.get("ok"):
            line += f" (last good poll {_when(saved.get('last_ok'))})"
        return line

    def _heartbeat_line(self) -> str:
        poll = _load(self.store.get(LAST_POLL_KEY.format(page=self.page))) or {}
        ok = _load(self.store.get(REDDIT_OK_KEY)) or {}
        error = _load(self.store.get(LAST_ERROR_KEY))
        line = f"last good poll {_when(poll.get('last_ok'))}"
        line += f"; last good Reddit call {_when(ok.get('at'))}"
        if error:
            line += f"; last error {_when(error.get('at'))}"
            line += f" ({error.get('kind')}): {error.get('message')}"
        return line

    def _incident_lines(self) -> list[str]:
        comments: dict[str, list[CommentRow]] = {}
        for row in self.store.comments(self.page):
            comments.setdefault(row.incident_id, []).append(row)
        lines = []
        for incident in self.store.announced(self.page)[:15]:
            lines.append(f"  {incident.incident_id:<14} {incident.status:<13} {incident.name[:60]}")
            if incident.render_error:
                lines.append(f"      template error: {incident.render_error}")
            rows = comments.get(incident.incident_id, [])
            if not rows:
                lines.append("      no comment yet (pending)")
            now = self.clock()
            lines += ["      " + _comment_line(row, incident.rendered_hash, now) for row in rows]
        return lines or ["  none yet"]


def _comment_line(row: CommentRow, wanted: str | None, now: float) -> str:
    where = row.permalink or f"thread {row.thread_id}"
    text = f"{row.state}: {where}"
    if row.delivered_at:
        text += f", delivered {_when(row.delivered_at)}"
    if row.state == delivery.POSTED and row.delivered_hash != wanted:
        text += ", an edit is pending"
    if row.last_error:
        text += f"; last error: {row.last_error}"
    if row.not_before > now:
        text += f"; next try {_when(row.not_before)}"
    return text


def _when(stamp: object) -> str:
    if not isinstance(stamp, int | float) or not stamp:
        return "never"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _load(saved: str | None) -> dict[str, object] | None:
    if not saved:
        return None
    value = json.loads(saved)
    return value if isinstance(value, dict) else None
