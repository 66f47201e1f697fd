"""The status screen: what one watch is doing, read from the store alone (no network).

It reads the watch's health record, its open incidents and the last ten settled ones
with their delivery rows, and the newest notices: the cost follows the open work,
never the whole history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from modbot.config.watches import ReportsConfig
from modbot.core import moves
from modbot.core.early import Signal
from modbot.core.machine import State
from modbot.core.records import DeliveryRow, Health, IncidentRow, Kind, Leadership
from modbot.ports import Store

SETTLED_SHOWN = 10
NOTES_SHOWN = 5


def when(stamp: float | None) -> str:
    """A timestamp as UTC text, or ``never``."""
    if not stamp:
        return "never"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def status_text(
    store: Store,
    watch: str,
    *,
    url: str,
    subreddit: str | None,
    dry_run: bool,
    now: float,
    reports: ReportsConfig | None = None,
) -> str:
    """One screen about one watch (with ``reports``, what its readers report)."""
    health = await store.health(watch)
    open_rows = await store.open_incidents(watch)
    settled = await store.recent_settled(watch, SETTLED_SHOWN)
    shown = [*open_rows, *settled]
    rows = await store.deliveries(watch, Kind.INCIDENT, [i.incident_id for i in shown])
    by_incident: dict[str, list[DeliveryRow]] = {}
    for row in rows:
        by_incident.setdefault(row.key, []).append(row)
    mode = "dry-run (printing, not posting)" if dry_run else "posting to Reddit"
    lines = [
        f"watch:       {watch}: {url}" + (f" -> r/{subreddit}" if subreddit else ""),
        f"mode:        {mode}",
        f"paused:      {_paused(health)}",
        f"megathread:  {_megathread(health)}",
        f"last poll:   {_poll(health)}",
        f"heartbeat:   {_heartbeat(health)}",
        f"templates:   {health.templates or 'not loaded yet'}"
        + (f" (since {when(health.templates_at)})" if health.templates_at else ""),
        f"platform:    {await _platform(store, watch)}",
        *(await _reports_lines(store, watch, reports, dry_run=dry_run)),
        f"open incidents ({len(open_rows)}):",
        *_incident_lines(open_rows, by_incident, now),
        f"recently settled (last {SETTLED_SHOWN}):",
        *_incident_lines(settled, by_incident, now),
    ]
    notes = await store.recent_notes(watch, NOTES_SHOWN)
    if notes:
        note_rows = {
            r.key: r for r in await store.deliveries(watch, Kind.NOTE, [n.note_id for n in notes])
        }
        lines.append("notices:")
        for note in notes:
            found = note_rows.get(note.note_id)
            state = found.state if found else "?"
            detail = (found.permalink or found.last_error or "") if found else ""
            lines.append(f"  {note.note_id:<14} {state:<8} {detail}")
    return "\n".join(lines)


async def _platform(store: Store, watch: str) -> str:
    """Which platform served the page last, and its last move, if it moved."""
    platform = (await store.feed_state(watch)).platform
    text = moves.platform_name(platform) if platform else "not known yet"
    found = await store.moves(watch)
    if found:
        last = found[-1]
        told = "moderators told" if last.alerted_at else "moderators not told yet"
        text += (
            f" (moved from {moves.platform_name(last.before)} on {when(last.moved_at)}: "
            f"{last.adopted} incidents kept their comments, {last.closed} closed as moved; "
            f"{told})"
        )
    return text


async def health_json(
    store: Store, watches: Sequence[tuple[str, str, str]], who: Leadership | None = None
) -> str:
    """Every watch's health record as JSON (``modbot status --json``), for scripts:
    one object for one watch, a list for several. ``watches``: (name, kind, scope).
    With a shared store, each record also says who leads (``leadership``)."""
    records = []
    for name, kind, scope in watches:
        data = asdict(await store.health(scope))
        data.update(name=name, kind=kind, open_incidents=len(await store.open_incidents(scope)))
        if who is not None:
            data["leadership"] = asdict(who)
        records.append(data)
    return json.dumps(records[0] if len(records) == 1 else records, indent=2, sort_keys=True)


async def watches_table(store: Store, watches: Sequence[Any], *, dry_run: bool) -> str:
    """One line per watch: name, kind, subreddit, megathread, last poll, open incidents."""
    lines = [
        f"{'watch':<16} {'kind':<17} {'subreddit':<18} {'megathread':<12} {'last poll':<26} open"
    ]
    for watch in watches:
        scope = watch.scope(dry_run)
        health = await store.health(scope)
        thread = health.megathread.id if health.megathread else "-"
        state = "ok" if health.last_poll_ok else "FAILED"
        poll = f"{when(health.last_poll_at)} {state}" if health.last_poll_at else "never"
        count = len(await store.open_incidents(scope))
        where = f"r/{watch.subreddit}" if watch.subreddit else "-"
        kind = kind_text(watch.kind, health.source_kind)
        lines.append(f"{watch.name:<16} {kind:<17} {where:<18} {thread:<12} {poll:<26} {count}")
    return "\n".join(lines)


def leadership_text(who: Leadership, lease_interval: float) -> str:
    """Who leads the deployment and who waits (a store shared by several processes),
    judged by the store's clock, not this machine's."""
    now = who.now
    leader = who.leader
    if leader is None:
        head = f"leader:      none now (epoch {who.epoch}; the next process to check takes over)"
    else:
        head = (
            f"leader:      {leader.host} pid {leader.pid}, since {when(leader.since)} "
            f"(epoch {who.epoch})"
        )
        silent = now - leader.seen_at
        if silent > 3 * lease_interval:
            head += f"; NOT SEEN for {silent:.0f} s (stopped or cut off?)"
    lines = [head, f"followers:   {len(who.followers)} waiting"]
    lines += [f"  {m.host} pid {m.pid}, waiting since {when(m.since)}" for m in who.followers]
    return "\n".join(lines)


def kind_text(configured: str, found: str) -> str:
    """``statuspage``, or ``auto: statuspage`` once ``auto`` has found out."""
    if configured == "auto":
        return f"auto: {found}" if found and found != "auto" else "auto"
    return configured


async def _reports_lines(
    store: Store, watch: str, config: ReportsConfig | None, *, dry_run: bool
) -> list[str]:
    """What the watch's readers report: the rate against the baseline, the open surge
    and its early notice, quiet hours."""
    if config is None:
        return []
    if not config.reading:
        return ["reports:     off (readers' posts are not read)"]
    signal = await store.signal(watch)
    head = f"reports:     {config.mode}, read every {config.interval:g} s"
    if signal is None:
        why = "a dry run reads no reports" if dry_run else "not read yet"
        return [f"{head}; {why}"]
    return [f"{head}; {_rate(signal, config)}", *await _surge_lines(store, signal)]


def _rate(signal: Signal, config: ReportsConfig) -> str:
    """``3 readers in the last 10 min, baseline 0.4 at this hour (a surge needs 5)``."""
    looked = signal.assessed
    if looked is None:
        return "not assessed yet"
    window = f"{config.surge.window / 60:g} min"
    if looked.expected is None:
        baseline = "baseline still learning this hour"
    else:
        baseline = f"baseline {looked.expected:.1f} at this hour"
    needs = f"a surge needs {looked.threshold:g}"
    return f"{looked.authors} readers in the last {window}, {baseline} ({needs}; {when(looked.at)})"


async def _surge_lines(store: Store, signal: Signal) -> list[str]:
    lines = []
    if signal.quiet_until and signal.assessed and signal.quiet_until > signal.assessed.at:
        lines.append(
            f"             early notices held until {when(signal.quiet_until)} "
            f"by {signal.quiet_by or 'a moderator'}"
        )
    surge = signal.surge
    if surge is None:
        return lines
    line = f"             surge since {when(surge.began)}: {surge.authors} readers"
    if signal.notice_id is None:
        line += f"; no early notice ({signal.held or 'held'})"
    else:
        rows = await store.deliveries(signal.watch, Kind.EARLY, [signal.notice_id])
        posted = next((r.permalink for r in rows if r.state == State.POSTED), None)
        line += f"; early notice {signal.notice_id}: {posted or (rows[-1].state if rows else '?')}"
    return [*lines, line]


def _paused(health: Health) -> str:
    if not health.paused:
        return "no"
    return f"YES, since {when(health.paused_at)} by {health.paused_by} (updates are held)"


def _megathread(health: Health) -> str:
    if health.megathread_at is None:
        return "not looked up yet"
    if health.megathread is None:
        return f"none found (checked {when(health.megathread_at)})"
    thread = health.megathread
    return f"{thread.title} {thread.permalink} (since {when(health.megathread_at)})"


def _poll(health: Health) -> str:
    if health.last_poll_at is None:
        return "never"
    state = "ok" if health.last_poll_ok else "FAILED"
    line = f"{when(health.last_poll_at)} {state}: {health.last_poll_message}"
    if not health.last_poll_ok:
        line += f" (last good poll {when(health.last_good_poll_at)})"
    return line


def _heartbeat(health: Health) -> str:
    line = f"last good poll {when(health.last_good_poll_at)}"
    line += f"; last good Reddit call {when(health.last_reddit_ok_at)}"
    if health.last_error_at:
        line += f"; last error {when(health.last_error_at)}"
        line += f" ({health.last_error_kind}): {health.last_error}"
    return line


def _incident_lines(
    incidents: Sequence[IncidentRow], rows: dict[str, list[DeliveryRow]], now: float
) -> list[str]:
    lines = []
    for incident in incidents:
        lines.append(f"  {incident.incident_id:<14} {incident.status:<13} {incident.name[:60]}")
        if incident.render_error:
            lines.append(f"      template error: {incident.render_error}")
        found = rows.get(incident.incident_id, [])
        if not found:
            lines.append("      no comment yet")
        lines += ["      " + comment_line(row, incident.rendered_hash, now) for row in found]
    return lines or ["  none"]


def comment_line(row: DeliveryRow, wanted: str | None, now: float) -> str:
    """One delivery row as the status screen shows it."""
    where = row.permalink or (f"thread {row.thread_id}" if row.thread_id else "no thread yet")
    text = f"{row.state}: {where}"
    if row.delivered_at:
        text += f", delivered {when(row.delivered_at)}"
    if row.state == State.POSTED and row.delivered_hash != wanted:
        text += ", an edit is pending"
    if row.last_error:
        text += f"; last error: {row.last_error}"
    if row.not_before > now:
        text += f"; next try {when(row.not_before)}"
    return text


# --- liveness: one rule for ``check --live`` and ``/healthz`` ---------------------------


def liveness_window(poll_interval: float) -> float:
    """How old the last good poll (and Reddit call) may be: max(3 polls, 60 s)."""
    return max(3 * poll_interval, 60.0)


def stale(
    name: str, poll_interval: float, health: Health, waiting: int, *, dry: bool, now: float
) -> list[str]:
    """Why a watch is not alive and current (empty when it is): no good poll within the
    window, or deliveries waiting while Reddit has not answered within it."""
    window = liveness_window(poll_interval)
    problems = []
    polled = health.last_good_poll_at
    if polled is None or now - polled > window:
        problems.append(
            f"{name}: last good poll {when(polled)}, over {window:g} s ago (is the bot running?)"
        )
    called = health.last_reddit_ok_at
    if not dry and waiting and (called is None or now - called > window):
        error = f"; last error: {health.last_error}" if health.last_error else ""
        problems.append(
            f"{name}: {waiting} deliveries waiting, last good Reddit call {when(called)}{error}"
        )
    return problems
