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

from modbot.config.watch import ReportsConfig
from modbot.core.early import Signal
from modbot.core.machine import State
from modbot.core.platforms import platform_name
from modbot.core.records import DeliveryRow, Health, IncidentRow, Kind, Leadership
from modbot.ports import Store
from modbot.shell import wiki

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
        f"heartbeat:   {_heartbeat(health, dry_run=dry_run)}",
        f"templates:   {health.templates or 'not loaded yet'}"
        + (f" (since {when(health.templates_at)})" if health.templates_at else ""),
        *[f"wiki:        {line}" for line in await _wiki_ignored(store, watch)],
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


async def _wiki_ignored(store: Store, watch: str) -> list[str]:
    """The wiki revisions in view that the bot ignores: their authors may not edit."""
    return [
        f"ignored {wiki.FOLDER}/{row.page} revision {row.revision_id[:8]} by "
        f"u/{row.author or '?'} ({when(row.decided_at)}): not a moderator with the wiki "
        "permission; the last good template stays"
        for row in wiki.ignored(await store.wiki_rows(watch))
    ]


async def _platform(store: Store, watch: str) -> str:
    """Which platform served the page last, and its last move, if it moved."""
    platform = (await store.feed_state(watch)).platform
    text = platform_name(platform) if platform else "not known yet"
    found = await store.moves(watch)
    if found:
        last = found[-1]
        told = "moderators told" if last.alerted_at else "moderators not told yet"
        text += (
            f" (moved from {platform_name(last.before)} on {when(last.moved_at)}: "
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
    readers = f"{looked.authors} reader{'' if looked.authors == 1 else 's'}"
    return f"{readers} in the last {window}, {baseline} ({needs}; {when(looked.at)})"


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


def _heartbeat(health: Health, *, dry_run: bool) -> str:
    line = f"last good poll {when(health.last_good_poll_at)}"
    if not dry_run:  # a dry run makes no Reddit call: there is nothing to claim
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


def heartbeat_interval(poll_interval: float) -> float:
    """How often a running bot writes its heartbeat (its last good poll, its last good
    Reddit call) to the store at most: max(1 poll, 30 s). In between it is held in
    memory, so an unchanged poll writes nothing."""
    return max(poll_interval, 30.0)


def liveness_window(poll_interval: float) -> float:
    """How old the last good poll (and Reddit call) in the store may be: max(3 polls,
    60 s), plus the heartbeat's interval, which the record written may lag behind."""
    return max(3 * poll_interval, 60.0) + heartbeat_interval(poll_interval)


def stale(
    name: str, poll_interval: float, health: Health, waiting: int, *, dry: bool, now: float
) -> list[str]:
    """Why a watch is not alive and current (empty when it is): no good poll within the
    window, or deliveries waiting while Reddit has not answered within it."""
    found = [
        poll_problem(name, poll_interval, health, now),
        reddit_problem(name, poll_interval, health, waiting, dry=dry, now=now),
    ]
    return [problem for problem in found if problem is not None]


def poll_problem(name: str, poll_interval: float, health: Health, now: float) -> str | None:
    """Why the watch has no good poll within the window, with the real cause where the
    state says it: the page failing (and since when), a process that has only just
    started, or no process polling at all."""
    window = liveness_window(poll_interval)
    polled, last, started = health.last_good_poll_at, health.last_poll_at, health.started_at
    if polled is not None and now - polled <= window:
        return None
    if last is not None and now - last <= window and not health.last_poll_ok:
        since = health.failing_since or last
        return (
            f"{name}: the page fails since {clock_time(since, now)}: "
            f"{health.last_poll_message} (last good poll {when(polled)})"
        )
    if started is not None and now - started <= window and (polled or 0.0) < started:
        return f"{name}: no good poll yet: started {max(now - started, 0):.0f} s ago"
    return f"{name}: last good poll {when(polled)}, over {window:g} s ago (is the bot running?)"


def reddit_problem(
    name: str, poll_interval: float, health: Health, waiting: int, *, dry: bool, now: float
) -> str | None:
    """Deliveries waiting while Reddit has not answered within the window."""
    called = health.last_reddit_ok_at
    if (
        dry
        or not waiting
        or (called is not None and now - called <= liveness_window(poll_interval))
    ):
        return None
    error = f"; last error: {health.last_error}" if health.last_error else ""
    return f"{name}: {waiting} deliveries waiting, last good Reddit call {when(called)}{error}"


def clock_time(stamp: float, now: float) -> str:
    """A time of the last day as ``12:01 UTC``; older ones in full."""
    if 0 <= now - stamp < 86400:
        return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M UTC")
    return when(stamp)
