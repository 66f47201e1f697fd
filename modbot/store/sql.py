"""The ``Store`` port, once, over a dialect: every query of the bot's state is here.

Each public method is one transaction, written as a ``Tx`` generator function below
(it yields statements and receives their results, and does no I/O) and handed to the
dialect, which runs it on SQLite's store thread or over PostgreSQL's connection. Reads
run in one snapshot; writes one at a time among every process sharing the store, and
every delivery step is written only if the row still has the version it was read at.

SQL is written with ``:name`` placeholders and the ``{word}`` fields of
``schema.words``; booleans are written bare (``is_open``, ``TRUE``) and read back
through ``bool()``, as SQLite answers 0/1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import astuple, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from modbot.core.codec import pruned_to_json, view_from_json, view_to_json
from modbot.core.early import Signal, pairs, surge_from_json, surge_to_json
from modbot.core.records import (
    MOVED,
    Alias,
    Channel,
    CommandRow,
    DeliveryRow,
    EarlyRow,
    Health,
    IncidentRow,
    Kind,
    Leadership,
    Member,
    MessageRow,
    NoteRow,
    PageInfo,
    PlatformMove,
    Rendered,
    RouteRow,
    Subject,
    Thread,
    Tracked,
    Validators,
    WikiRevision,
    WikiRow,
)
from modbot.core.surge import Assessment, Baseline, Report
from modbot.errors import StoreError
from modbot.ports import FeedState, Lease, Stepped, Work
from modbot.store.base import EPOCH, Dialect, Q, Row, Tx
from modbot.store.schema import BOOLEAN_COLUMNS, COPIED_TABLES, INTERNAL_COLUMNS

D = TypeVar("D", bound=Dialect)
T = TypeVar("T")
CHUNK = 500  # values per IN list (SQLite's oldest limit is 999 parameters a statement)

DELIVERY_FIELDS = tuple(f.name for f in fields(DeliveryRow))
COMMAND_FIELDS = tuple(f.name for f in fields(CommandRow))
NOTE_FIELDS = tuple(f.name for f in fields(NoteRow))
INCIDENT_FIELDS = tuple(f.name for f in fields(IncidentRow))
WIKI_FIELDS = tuple(f.name for f in fields(WikiRow))
EARLY_FIELDS = tuple(f.name for f in fields(EarlyRow))
ROUTE_FIELDS = tuple(f.name for f in fields(RouteRow))
MESSAGE_FIELDS = tuple(f.name for f in fields(MessageRow))
# What a step may change (a row's subject and birth are fixed; ``wanted_hash`` follows
# the subject's body).
STEP_FIELDS = tuple(
    name
    for name in DELIVERY_FIELDS
    if name not in ("id", "watch", "kind", "key", "wanted_hash", "created_at")
)
# A message's what and where are fixed at its birth; a step changes how far it got.
MESSAGE_STEP_FIELDS = tuple(
    name
    for name in MESSAGE_FIELDS
    if name not in ("id", "key", "channel", "recipient", "subject", "body", "created_at")
)
NEW_MESSAGE_FIELDS = tuple(name for name in MESSAGE_FIELDS if name != "id")


def _names(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + name for name in names)


def _values(names: Sequence[str]) -> str:
    return ", ".join(":" + name for name in names)


# Column names come from the dataclasses above, never from input.
SELECT_DELIVERIES = f"SELECT {_names(DELIVERY_FIELDS)} FROM deliveries"  # noqa: S608
SELECT_COMMANDS = f"SELECT {_names(COMMAND_FIELDS)} FROM commands"  # noqa: S608
SELECT_NOTES = f"SELECT {_names(NOTE_FIELDS)} FROM notes"  # noqa: S608
SELECT_INCIDENTS = f"SELECT {_names(INCIDENT_FIELDS)} FROM incidents"  # noqa: S608
SELECT_TRACKED = "SELECT incident_id, view, announce FROM incidents"
SELECT_EARLY = f"SELECT {_names(EARLY_FIELDS)} FROM early_notices"  # noqa: S608
SELECT_REPORTS = "SELECT at, author, author_since, rule, errors, products FROM reports"
SIGNAL_FIELDS = (
    "started_at",
    "baseline",
    "surge",
    "notice_id",
    "held",
    "quiet_until",
    "quiet_by",
    "assessed_at",
    "authors",
    "expected",
    "threshold",
)
SELECT_SIGNAL = f"SELECT {_names(SIGNAL_FIELDS)} FROM report_signals"  # noqa: S608
SELECT_MESSAGES = f"SELECT {_names(MESSAGE_FIELDS)} FROM messages"  # noqa: S608
INSERT_MESSAGE = (
    f"INSERT INTO messages ({_names(NEW_MESSAGE_FIELDS)}) "  # noqa: S608
    f"VALUES ({_values(NEW_MESSAGE_FIELDS)}) ON CONFLICT DO NOTHING"
)
INSERT_NOTE = (
    f"INSERT INTO notes ({_names(NOTE_FIELDS)}) "  # noqa: S608
    f"VALUES ({_values(NOTE_FIELDS)}) ON CONFLICT DO NOTHING"
)
INSERT_COMMAND = (
    f"INSERT INTO commands ({_names(COMMAND_FIELDS)}) "  # noqa: S608
    f"VALUES ({_values(COMMAND_FIELDS)}) ON CONFLICT DO NOTHING"
)
INSERT_WIKI = (
    f"INSERT INTO wiki_revisions ({_names(WIKI_FIELDS)}) "  # noqa: S608
    f"VALUES ({_values(WIKI_FIELDS)}) ON CONFLICT DO NOTHING"
)
# The writers' lock (both dialects) makes the NOT EXISTS race-free: a step that would
# give a subject a second row in one thread is refused like a stale one.
STEP = (
    f"UPDATE deliveries SET {', '.join(f'{n} = :{n}' for n in STEP_FIELDS)}, "  # noqa: S608
    "epoch = :epoch WHERE id = :id AND version = :expected AND NOT EXISTS ("
    "SELECT 1 FROM deliveries o WHERE o.watch = deliveries.watch AND o.kind = deliveries.kind "
    "AND o.key = deliveries.key AND o.thread_id = :thread_id AND o.id <> deliveries.id)"
)
STEP_MESSAGE = (
    f"UPDATE messages SET {', '.join(f'{n} = :{n}' for n in MESSAGE_STEP_FIELDS)} "  # noqa: S608
    "WHERE id = :id AND version = :expected"
)
HEALTH_FIELDS = (
    "last_poll_at",
    "last_poll_ok",
    "last_poll_message",
    "last_good_poll_at",
    "last_reddit_ok_at",
    "last_error_at",
    "last_error_kind",
    "last_error",
    "paused",
    "paused_by",
    "paused_at",
    "megathread_id",
    "megathread_title",
    "megathread_permalink",
    "megathread_at",
    "templates",
    "templates_at",
    "source_kind",
    "failing_since",
    "started_at",
)
SELECT_HEALTH = f"SELECT {_names(HEALTH_FIELDS)} FROM health"  # noqa: S608


# --- rows into records ------------------------------------------------------------------------


def _delivery(r: Row) -> DeliveryRow:
    data = dict(r)
    data["kind"] = Kind(data["kind"])
    return DeliveryRow(**data)


def _incident(r: Row) -> IncidentRow:
    data = dict(r)
    data["is_open"] = bool(data["is_open"])
    return IncidentRow(**data)


def _command(r: Row) -> CommandRow:
    data = dict(r)
    data["marked_read"] = bool(data["marked_read"])
    return CommandRow(**data)


def _message(r: Row) -> MessageRow:
    data = dict(r)
    data["channel"] = Channel(data["channel"])
    return MessageRow(**data)


def _tracked(rows: Sequence[Row]) -> dict[str, Tracked]:
    return {r["incident_id"]: Tracked(view_from_json(r["view"]), bool(r["announce"])) for r in rows}


def _health(watch: str, r: Row | None, page: PageInfo | None) -> Health:
    if r is None:
        return Health(watch=watch, page=page)
    thread = None
    if r["megathread_id"]:
        thread = Thread(r["megathread_id"], r["megathread_title"] or "", r["megathread_permalink"])
    return Health(
        watch=watch,
        last_poll_at=r["last_poll_at"],
        last_poll_ok=bool(r["last_poll_ok"]),
        last_poll_message=r["last_poll_message"],
        last_good_poll_at=r["last_good_poll_at"],
        last_reddit_ok_at=r["last_reddit_ok_at"],
        last_error_at=r["last_error_at"],
        last_error_kind=r["last_error_kind"],
        last_error=r["last_error"],
        paused=bool(r["paused"]),
        paused_by=r["paused_by"],
        paused_at=r["paused_at"],
        megathread=thread,
        megathread_at=r["megathread_at"],
        page=page,
        templates=r["templates"],
        templates_at=r["templates_at"],
        source_kind=r["source_kind"],
        failing_since=r["failing_since"],
        started_at=r["started_at"],
    )


def among(column: str, values: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """``column IN (...)`` over ``values``, a chunk at a time: the condition and its values."""
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        names = [f"v{n}" for n in range(len(chunk))]
        yield f"{column} IN ({_values(names)})", dict(zip(names, chunk, strict=True))


# --- feeds and incidents ----------------------------------------------------------------------


def feed_state(watch: str) -> Tx[FeedState]:
    r = (
        yield Q(
            "SELECT url, baseline_at, etag, last_modified, digest, platform FROM feeds "
            "WHERE watch = :watch",
            watch=watch,
        )
    ).one()
    if r is None:
        return FeedState()
    return FeedState(
        url=r["url"],
        baseline_at=datetime.fromisoformat(r["baseline_at"]),
        validators=Validators(r["etag"], r["last_modified"], r["digest"]),
        platform=r["platform"],
    )


def tracked(watch: str, ids: Sequence[str], extra: str = "") -> Tx[dict[str, Tracked]]:
    found: dict[str, Tracked] = {}
    for condition, values in among("incident_id", ids):
        result = yield Q(
            f"{SELECT_TRACKED} WHERE watch = :watch AND {condition}{extra}", watch=watch, **values
        )
        found.update(_tracked(result.rows))
    return found


def save_poll(
    watch: str,
    *,
    url: str,
    changed: Mapping[str, Tracked],
    rendered: Mapping[str, Rendered],
    render_errors: Mapping[str, str],
    validators: Validators,
    baseline_at: datetime,
    page: PageInfo | None,
    now: float,
    platform: str | None = None,
    aliases: Sequence[Alias] = (),
    move: PlatformMove | None = None,
) -> Tx[None]:
    yield Q(
        """INSERT INTO feeds (watch, url, baseline_at, etag, last_modified, digest,
                              page_name, page_url, platform)
           VALUES (:watch, :url, :baseline_at, :etag, :last_modified, :digest,
                   :page_name, :page_url, :platform)
           ON CONFLICT (watch) DO UPDATE SET
             url = excluded.url, etag = excluded.etag,
             last_modified = excluded.last_modified, digest = excluded.digest,
             page_name = COALESCE(excluded.page_name, feeds.page_name),
             page_url = COALESCE(excluded.page_url, feeds.page_url),
             platform = COALESCE(excluded.platform, feeds.platform)""",
        watch=watch,
        url=url,
        baseline_at=baseline_at.isoformat(),
        etag=validators.etag,
        last_modified=validators.last_modified,
        digest=validators.digest,
        page_name=page.name if page else None,
        page_url=page.url if page else None,
        platform=platform,
    )
    # The aliases first: the incidents below are saved under the ids they keep.
    for alias in aliases:
        yield Q(
            "INSERT INTO aliases (watch, alias_id, incident_id, carried, created_at) "
            "VALUES (:watch, :alias, :kept, :carried, :now) ON CONFLICT DO NOTHING",
            watch=watch,
            alias=alias.alias_id,
            kept=alias.incident_id,
            carried=view_to_json(alias.before),
            now=now,
        )
    if move is not None:
        yield Q(
            "INSERT INTO platform_moves (watch, moved_at, before_platform, after_platform, "
            "page_url, adopted, closed) VALUES (:watch, :at, :before, :after, :url, "
            ":adopted, :closed) ON CONFLICT DO NOTHING",
            watch=watch,
            at=move.moved_at,
            before=move.before,
            after=move.after,
            url=move.page_url,
            adopted=move.adopted,
            closed=move.closed,
        )
    # One statement for each kind of write, run for every incident at once: the views
    # with the bodies rendered from them, the errors of those that did not render, a
    # delivery for each announced one without, and each delivery's wanted body.
    if changed:
        rows = [
            _incident_values(watch, item, now, rendered.get(incident_id))
            for incident_id, item in changed.items()
        ]
        yield Q.each(SAVE_INCIDENT, rows)
    others = [incident_id for incident_id in rendered if incident_id not in changed]
    if others:  # bodies of incidents whose views did not change (none from a poll)
        yield from _save_bodies(watch, {i: rendered[i] for i in others})
    yield from _render_errors(watch, render_errors)
    announced = [incident_id for incident_id, item in changed.items() if item.announce]
    yield from _want(watch, Kind.INCIDENT, announced, now, sync=False)
    yield from _sync_wanted(watch, Kind.INCIDENT, list(dict.fromkeys([*announced, *rendered])))


def aliases(watch: str, ids: Sequence[str]) -> Tx[dict[str, Alias]]:
    found: dict[str, Alias] = {}
    for condition, values in among("alias_id", ids):
        result = yield Q(
            "SELECT alias_id, incident_id, carried FROM aliases "  # noqa: S608 - literals only
            f"WHERE watch = :watch AND {condition}",
            watch=watch,
            **values,
        )
        for r in result.rows:
            found[r["alias_id"]] = Alias(
                r["alias_id"], r["incident_id"], view_from_json(r["carried"])
            )
    return found


def adoptable(watch: str, closed_since: float) -> Tx[dict[str, Tracked]]:
    opened = yield Q(
        SELECT_TRACKED + " WHERE watch = :watch AND is_open AND {announced}", watch=watch
    )
    moved = yield Q(
        SELECT_TRACKED + " WHERE watch = :watch AND closed_at IS NOT NULL AND {announced} "
        "AND closed_at >= :since AND status = :moved",
        watch=watch,
        since=closed_since,
        moved=MOVED,
    )
    return _tracked([*opened.rows, *moved.rows])


def platform_moves(watch: str) -> Tx[list[PlatformMove]]:
    result = yield Q(
        "SELECT watch, moved_at, before_platform, after_platform, page_url, adopted, closed, "
        "alerted_at FROM platform_moves WHERE watch = :watch ORDER BY moved_at",
        watch=watch,
    )
    return [
        PlatformMove(
            watch=r["watch"],
            moved_at=r["moved_at"],
            before=r["before_platform"],
            after=r["after_platform"],
            page_url=r["page_url"],
            adopted=r["adopted"],
            closed=r["closed"],
            alerted_at=r["alerted_at"],
        )
        for r in result.rows
    ]


# A pruned incident the page lists again keeps its mark unless it is announced again
# (it reopened): its old comment is never touched again, and a new one is posted.
# A view saved with no body (not rendered: not announced, or its template failed) keeps
# the body it had.
SAVE_INCIDENT = """INSERT INTO incidents (watch, incident_id, view, name, status, announce,
                                          is_open, first_seen, changed_at, closed_at,
                                          rendered, rendered_hash)
           VALUES (:watch, :id, :view, :name, :status, :announce, :is_open, :now, :now,
                   :closed_at, :body, :digest)
           ON CONFLICT (watch, incident_id) DO UPDATE SET
             view = excluded.view, name = excluded.name, status = excluded.status,
             announce = excluded.announce, is_open = excluded.is_open,
             changed_at = excluded.changed_at,
             rendered = COALESCE(excluded.rendered, incidents.rendered),
             rendered_hash = COALESCE(excluded.rendered_hash, incidents.rendered_hash),
             render_error = CASE WHEN excluded.rendered IS NULL THEN incidents.render_error
                                 ELSE NULL END,
             closed_at = CASE WHEN excluded.is_open THEN NULL
                              ELSE COALESCE(incidents.closed_at, excluded.closed_at) END,
             pruned_at = CASE WHEN excluded.announce THEN NULL ELSE incidents.pruned_at END"""


def _incident_values(
    watch: str, item: Tracked, now: float, body: Rendered | None = None
) -> dict[str, Any]:
    view = item.view
    return {
        "body": body.body if body is not None else None,
        "digest": body.digest if body is not None else None,
        "watch": watch,
        "id": view.id,
        "view": view_to_json(view),
        "name": view.name,
        "status": view.status,
        "announce": item.announce,
        "is_open": view.is_open,
        "now": now,
        "closed_at": None if view.is_open else now,
    }


WANT = """INSERT INTO deliveries (watch, kind, key, state, wanted_hash, created_at)
           SELECT :watch, :kind, :key, 'pending', NULL, :now
           WHERE NOT EXISTS (SELECT 1 FROM deliveries
                             WHERE watch = :watch AND kind = :kind AND key = :key)"""


def _want(
    watch: str, kind: Kind, keys: str | Sequence[str], now: float, *, sync: bool = True
) -> Tx[None]:
    """A pending, unplaced delivery for each subject that has no delivery row yet (with
    its wanted body, unless ``sync`` is off: the caller copies it after)."""
    keys = [keys] if isinstance(keys, str) else keys
    if keys:
        rows = [{"watch": watch, "kind": kind.value, "key": key, "now": now} for key in keys]
        yield Q.each(WANT, rows)
        if sync:
            yield from _sync_wanted(watch, kind, keys)


# Where each kind of subject keeps its current body's hash.
BODY_HASH = {
    Kind.INCIDENT: "SELECT rendered_hash FROM incidents WHERE watch = :watch "
    "AND incident_id = :key",
    Kind.NOTE: "SELECT body_hash FROM notes WHERE watch = :watch AND note_id = :key",
    Kind.EARLY: "SELECT body_hash FROM early_notices WHERE watch = :watch AND notice_id = :key",
    Kind.ROUTE: "SELECT body_hash FROM routes WHERE watch = :watch AND post_id = :key",
}


def _sync_wanted(watch: str, kind: Kind, keys: str | Sequence[str]) -> Tx[None]:
    """Copy each subject's current body hash onto its rows (the active index needs it)."""
    keys = [keys] if isinstance(keys, str) else keys
    if keys:
        yield Q.each(
            f"UPDATE deliveries SET wanted_hash = ({BODY_HASH[kind]}) "  # noqa: S608 - literals only
            "WHERE watch = :watch AND kind = :kind AND key = :key",
            [{"watch": watch, "kind": kind.value, "key": key} for key in keys],
        )


def save_renders(
    watch: str, rendered: Mapping[str, Rendered], errors: Mapping[str, str]
) -> Tx[None]:
    if rendered:
        yield from _save_bodies(watch, rendered)
        yield from _sync_wanted(watch, Kind.INCIDENT, list(rendered))
    yield from _render_errors(watch, errors)


def _save_bodies(watch: str, rendered: Mapping[str, Rendered]) -> Tx[None]:
    yield Q.each(
        "UPDATE incidents SET rendered = :body, rendered_hash = :digest, "
        "render_error = NULL WHERE watch = :watch AND incident_id = :id",
        [
            {"body": body.body, "digest": body.digest, "watch": watch, "id": incident_id}
            for incident_id, body in rendered.items()
        ],
    )


def _render_errors(watch: str, errors: Mapping[str, str]) -> Tx[None]:
    if errors:
        yield Q.each(
            "UPDATE incidents SET render_error = :error WHERE watch = :watch AND incident_id = :id",
            [
                {"error": error, "watch": watch, "id": incident_id}
                for incident_id, error in errors.items()
            ],
        )


def rerender_scope(
    watch: str, closed_since: float, thread_id: str | None
) -> Tx[dict[str, Tracked]]:
    rows = list(
        (
            yield Q(
                SELECT_TRACKED + " WHERE watch = :watch AND is_open AND {announced}", watch=watch
            )
        ).rows
    )
    if thread_id is not None:
        result = yield Q(
            SELECT_TRACKED  # noqa: S608 - literals only
            + " i WHERE watch = :watch AND closed_at IS NOT NULL AND {announced} "
            "AND closed_at >= :since AND EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.watch = i.watch AND d.kind = 'inc' AND d.key = i.incident_id "
            "AND d.thread_id = :thread AND d.state IN ('posted', 'posting'))",
            watch=watch,
            since=closed_since,
            thread=thread_id,
        )
        rows += result.rows
    return _tracked(rows)


def in_thread(watch: str, thread_id: str) -> Tx[dict[str, Tracked]]:
    result = yield Q(
        "SELECT i.incident_id, i.view, i.announce FROM deliveries d "
        "JOIN incidents i ON i.watch = d.watch AND i.incident_id = d.key "
        "WHERE d.watch = :watch AND d.thread_id = :thread AND d.kind = 'inc' "
        "AND d.state IN ('posted', 'posting') ORDER BY d.id",
        watch=watch,
        thread=thread_id,
    )
    return _tracked(result.rows)


def force(watch: str, item: Tracked, now: float) -> Tx[None]:
    view = item.view
    yield Q(
        """INSERT INTO incidents (watch, incident_id, view, name, status, announce, forced,
                                  is_open, first_seen, changed_at, closed_at)
           VALUES (:watch, :id, :view, :name, :status, FALSE, TRUE, :is_open, :now, :now,
                   :closed_at)
           ON CONFLICT (watch, incident_id) DO UPDATE SET forced = TRUE""",
        watch=watch,
        id=view.id,
        view=view_to_json(view),
        name=view.name,
        status=view.status,
        is_open=view.is_open,
        now=now,
        closed_at=None if view.is_open else now,
    )
    yield from _want(watch, Kind.INCIDENT, view.id, now)


def adopt_known(watch: str, ids: Sequence[str], now: float) -> Tx[int]:
    found: list[str] = []
    for condition, values in among("incident_id", ids):
        result = yield Q(
            f"SELECT incident_id FROM incidents WHERE watch = :watch AND {condition} "  # noqa: S608
            "AND NOT announce AND NOT forced AND pruned_at IS NULL",
            watch=watch,
            **values,
        )
        found += [r["incident_id"] for r in result.rows]
    for incident_id in found:
        yield Q(
            "UPDATE incidents SET forced = TRUE, closed_at = CASE WHEN NOT is_open "
            "THEN COALESCE(closed_at, changed_at) END "
            "WHERE watch = :watch AND incident_id = :id",
            watch=watch,
            id=incident_id,
        )
        yield from _want(watch, Kind.INCIDENT, incident_id, now)
    return len(found)


PRUNE_BATCH = 500  # incidents pruned per transaction, so no write waits long


def prune_candidates(watch: str, closed_before: float) -> Tx[list[tuple[str, str]]]:
    """Settled incidents closed before ``closed_before``, not pruned yet, none of whose
    deliveries has work left (the oldest first, a batch at most): id and status."""
    result = yield Q(
        "SELECT incident_id, status FROM incidents i WHERE watch = :watch "
        "AND closed_at IS NOT NULL AND closed_at < :before AND pruned_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.watch = i.watch "
        "AND d.kind = 'inc' AND d.key = i.incident_id AND {active}) "
        "ORDER BY closed_at LIMIT :limit",
        watch=watch,
        before=closed_before,
        limit=PRUNE_BATCH,
    )
    return [(r["incident_id"], r["status"]) for r in result.rows]


def prune(watch: str, statuses: Mapping[str, str], now: float) -> Tx[None]:
    """Keep only a line of each incident of ``statuses`` (its id, status and times:
    enough to know it again, never to announce it again) and drop its deliveries: its
    comment is never looked at, or edited, again."""
    if not statuses:
        return
    yield Q.each(
        "UPDATE incidents SET view = :view, name = '', rendered = NULL, rendered_hash = NULL, "
        "render_error = NULL, announce = FALSE, forced = FALSE, pruned_at = :now "
        "WHERE watch = :watch AND incident_id = :id AND pruned_at IS NULL",
        [
            {"view": pruned_to_json(key, status), "now": now, "watch": watch, "id": key}
            for key, status in statuses.items()
        ],
    )
    yield Q.each(
        "DELETE FROM deliveries WHERE watch = :watch AND kind = 'inc' AND key = :key",
        [{"watch": watch, "key": key} for key in statuses],
    )


def prune_notes(watch: str, created_before: float) -> Tx[int]:
    """Notices posted before ``created_before`` whose deliveries have no work left, with
    those deliveries."""
    result = yield Q(
        "SELECT note_id FROM notes n WHERE watch = :watch AND created_at < :before "
        "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.watch = n.watch "
        "AND d.kind = 'note' AND d.key = n.note_id AND {active})",
        watch=watch,
        before=created_before,
    )
    keys = [{"watch": watch, "key": r["note_id"]} for r in result.rows]
    if keys:
        yield Q.each(
            "DELETE FROM deliveries WHERE watch = :watch AND kind = 'note' AND key = :key", keys
        )
        yield Q.each("DELETE FROM notes WHERE watch = :watch AND note_id = :key", keys)
    return len(keys)


# What is left of a message once it is settled and old: its row and key stay, so that
# it is never recorded, or sent, again.
PRUNED_MESSAGE = ""


def prune_messages(created_before: float) -> Tx[int]:
    """The texts of settled messages (sent beyond doubt, or failed for good) recorded
    before ``created_before``; how many."""
    result = yield Q(
        "UPDATE messages SET body = :pruned WHERE created_at < :before AND body <> :pruned "
        "AND NOT {message_active}",
        before=created_before,
        pruned=PRUNED_MESSAGE,
    )
    return result.rowcount


def unrendered(watch: str) -> Tx[dict[str, Tracked]]:
    result = yield Q(
        SELECT_TRACKED + " WHERE watch = :watch AND rendered_hash IS NULL "
        "AND render_error IS NULL AND {announced}",
        watch=watch,
    )
    return _tracked(result.rows)


def open_incidents(watch: str) -> Tx[list[IncidentRow]]:
    result = yield Q(
        SELECT_INCIDENTS + " WHERE watch = :watch AND is_open AND {announced} "
        "ORDER BY first_seen DESC, {seq}",
        watch=watch,
    )
    return [_incident(r) for r in result.rows]


def recent_settled(watch: str, limit: int) -> Tx[list[IncidentRow]]:
    result = yield Q(
        SELECT_INCIDENTS + " WHERE watch = :watch AND closed_at IS NOT NULL AND {announced} "
        "ORDER BY closed_at DESC, {seq} DESC LIMIT :limit",
        watch=watch,
        limit=limit,
    )
    return [_incident(r) for r in result.rows]


# --- deliveries -------------------------------------------------------------------------------


def work(watch: str, keys: frozenset[tuple[Kind, str]] | None) -> Tx[Work]:
    active = yield Q(SELECT_DELIVERIES + " WHERE watch = :watch AND {active}", watch=watch)
    rows = {r["id"]: _delivery(r) for r in active.rows}
    subjects: dict[tuple[Kind, str], Subject] = {}
    opened = yield Q(
        "SELECT incident_id, rendered_hash FROM incidents "
        "WHERE watch = :watch AND is_open AND {announced}",
        watch=watch,
    )
    for r in opened.rows:
        subjects[(Kind.INCIDENT, r["incident_id"])] = Subject(
            Kind.INCIDENT, r["incident_id"], True, r["rendered_hash"]
        )
    # CROSS JOIN keeps the open incidents (a partial index) as SQLite's outer loop.
    theirs = yield Q(
        f"SELECT {_names(DELIVERY_FIELDS, 'd.')} "  # noqa: S608 - literals only
        "FROM incidents i CROSS JOIN deliveries d "
        "WHERE i.watch = :watch AND i.is_open AND (i.announce OR i.forced) "
        "AND d.watch = i.watch AND d.kind = 'inc' AND d.key = i.incident_id",
        watch=watch,
    )
    for r in theirs.rows:
        rows[r["id"]] = _delivery(r)
    missing = {(row.kind, row.key) for row in rows.values()} - subjects.keys()
    subjects.update((yield from _subjects(watch, missing)))
    if keys is not None:
        subjects = {k: v for k, v in subjects.items() if k in keys}
    chosen = [row for row in rows.values() if (row.kind, row.key) in subjects]
    return Work(subjects=subjects, rows=sorted(chosen, key=lambda row: row.id))


def _subjects(
    watch: str, keys: Collection[tuple[Kind, str]]
) -> Tx[dict[tuple[Kind, str], Subject]]:
    found: dict[tuple[Kind, str], Subject] = {}
    incidents = sorted(key for kind, key in keys if kind is Kind.INCIDENT)
    notes = sorted(key for kind, key in keys if kind is Kind.NOTE)
    early = sorted(key for kind, key in keys if kind is Kind.EARLY)
    routes = sorted(key for kind, key in keys if kind is Kind.ROUTE)
    for condition, values in among("incident_id", incidents):
        result = yield Q(
            "SELECT incident_id, is_open, rendered_hash FROM incidents "  # noqa: S608
            f"WHERE watch = :watch AND {condition}",
            watch=watch,
            **values,
        )
        for r in result.rows:
            key = r["incident_id"]
            found[(Kind.INCIDENT, key)] = Subject(
                Kind.INCIDENT, key, bool(r["is_open"]), r["rendered_hash"]
            )
    for condition, values in among("note_id", notes):
        result = yield Q(
            f"SELECT note_id, body_hash FROM notes WHERE watch = :watch AND {condition}",  # noqa: S608
            watch=watch,
            **values,
        )
        for r in result.rows:
            found[(Kind.NOTE, r["note_id"])] = Subject(
                Kind.NOTE, r["note_id"], False, r["body_hash"]
            )
    for condition, values in among("notice_id", early):
        result = yield Q(
            "SELECT notice_id, body_hash FROM early_notices "  # noqa: S608
            f"WHERE watch = :watch AND {condition}",
            watch=watch,
            **values,
        )
        for r in result.rows:
            found[(Kind.EARLY, r["notice_id"])] = Subject(
                Kind.EARLY, r["notice_id"], False, r["body_hash"]
            )
    for condition, values in among("post_id", routes):
        result = yield Q(
            "SELECT post_id, body_hash FROM routes "  # noqa: S608
            f"WHERE watch = :watch AND {condition}",
            watch=watch,
            **values,
        )
        for r in result.rows:  # a reply belongs in the post's own thread
            post = r["post_id"]
            found[(Kind.ROUTE, post)] = Subject(Kind.ROUTE, post, False, r["body_hash"], post)
    return found


def body(watch: str, kind: Kind, key: str) -> Tx[Rendered | None]:
    sql = {
        Kind.INCIDENT: "SELECT rendered AS body, rendered_hash AS digest FROM incidents "
        "WHERE watch = :watch AND incident_id = :key",
        Kind.NOTE: "SELECT body, body_hash AS digest FROM notes "
        "WHERE watch = :watch AND note_id = :key",
        Kind.EARLY: "SELECT body, body_hash AS digest FROM early_notices "
        "WHERE watch = :watch AND notice_id = :key",
        Kind.ROUTE: "SELECT body, body_hash AS digest FROM routes "
        "WHERE watch = :watch AND post_id = :key",
    }[kind]
    r = (yield Q(sql, watch=watch, key=key)).one()
    if r is None or r["body"] is None or r["digest"] is None:
        return None
    return Rendered(r["body"], r["digest"])


def deliveries(watch: str, kind: Kind, keys: Sequence[str]) -> Tx[list[DeliveryRow]]:
    rows: list[DeliveryRow] = []
    for condition, values in among("key", keys):
        result = yield Q(
            f"{SELECT_DELIVERIES} WHERE watch = :watch AND kind = :kind AND {condition}",
            watch=watch,
            kind=kind.value,
            **values,
        )
        rows += [_delivery(r) for r in result.rows]
    return sorted(rows, key=lambda row: row.id)


def start_delivery(
    watch: str, kind: Kind, key: str, thread_id: str, now: float
) -> Tx[DeliveryRow | None]:
    subject = {"watch": watch, "kind": kind.value, "key": key, "thread": thread_id}
    inserted = yield Q(
        "INSERT INTO deliveries (watch, kind, key, state, thread_id, created_at, epoch) "
        "VALUES (:watch, :kind, :key, 'pending', :thread, :now, :epoch) ON CONFLICT DO NOTHING",
        now=now,
        epoch=EPOCH,
        **subject,
    )
    if inserted.rowcount != 1:
        return None
    yield from _sync_wanted(watch, kind, key)
    r = (
        yield Q(
            SELECT_DELIVERIES
            + " WHERE watch = :watch AND kind = :kind AND key = :key AND thread_id = :thread",
            **subject,
        )
    ).one()
    assert r is not None
    return _delivery(r)


def step(before: DeliveryRow | MessageRow, after: DeliveryRow | MessageRow) -> Tx[bool]:
    if isinstance(before, MessageRow):
        values = {name: getattr(after, name) for name in MESSAGE_STEP_FIELDS}
        done = yield Q(STEP_MESSAGE, id=before.id, expected=before.version, **values)
    else:
        values = {name: getattr(after, name) for name in STEP_FIELDS}
        done = yield Q(STEP, id=before.id, expected=before.version, epoch=EPOCH, **values)
    return done.rowcount == 1


# --- the outbox -------------------------------------------------------------------------------


def add_message(message: MessageRow) -> Tx[tuple[MessageRow, bool]]:
    new = yield from _insert_message(message)
    stored = yield from _message_by_key(message.key)
    assert stored is not None
    return stored, new


def _insert_message(message: MessageRow | None) -> Tx[bool]:
    """A new message (nothing when one with its key exists): True if it is new."""
    if message is None:
        return False
    values = {name: getattr(message, name) for name in NEW_MESSAGE_FIELDS}
    done = yield Q(INSERT_MESSAGE, **values)
    return done.rowcount == 1


def _message_by_key(key: str) -> Tx[MessageRow | None]:
    r = (yield Q(SELECT_MESSAGES + " WHERE key = :key", key=key)).one()
    return None if r is None else _message(r)


def last_message(prefix: str) -> Tx[MessageRow | None]:
    r = (
        yield Q(
            SELECT_MESSAGES + " WHERE substr(key, 1, :length) = :prefix ORDER BY id DESC LIMIT 1",
            length=len(prefix),
            prefix=prefix,
        )
    ).one()
    return None if r is None else _message(r)


def move_alerted(watch: str, moved_at: float, now: float) -> Tx[None]:
    yield Q(
        "UPDATE platform_moves SET alerted_at = :now WHERE watch = :watch AND moved_at = :moved_at",
        watch=watch,
        moved_at=moved_at,
        now=now,
    )


def outbox() -> Tx[list[MessageRow]]:
    result = yield Q(SELECT_MESSAGES + " WHERE {message_active} ORDER BY id")
    return [_message(r) for r in result.rows]


# --- notices ----------------------------------------------------------------------------------


def add_note(note: NoteRow) -> Tx[tuple[NoteRow, bool]]:
    new = yield from _insert_note(note)
    stored = yield from _note(note.watch, note.note_id)
    assert stored is not None
    return stored, new


def _insert_note(note: NoteRow) -> Tx[bool]:
    done = yield Q(INSERT_NOTE, **dict(zip(NOTE_FIELDS, astuple(note), strict=True)))
    if done.rowcount == 1:
        yield from _want(note.watch, Kind.NOTE, note.note_id, note.created_at)
    return done.rowcount == 1


def _note(watch: str, note_id: str) -> Tx[NoteRow | None]:
    r = (
        yield Q(SELECT_NOTES + " WHERE watch = :watch AND note_id = :id", watch=watch, id=note_id)
    ).one()
    return None if r is None else NoteRow(**dict(r))


def note_by_comment(comment_id: str) -> Tx[NoteRow | None]:
    r = (
        yield Q(
            "SELECT watch, key FROM deliveries WHERE comment_id = :comment AND kind = 'note' "
            "ORDER BY id LIMIT 1",
            comment=comment_id,
        )
    ).one()
    if r is None:
        return None
    return (yield from _note(r["watch"], r["key"]))


def edit_note(note: NoteRow) -> Tx[None]:
    yield Q(
        "UPDATE notes SET text = :text, body = :body, body_hash = :hash, cut_chars = :cut "
        "WHERE watch = :watch AND note_id = :id",
        text=note.text,
        body=note.body,
        hash=note.body_hash,
        cut=note.cut_chars,
        watch=note.watch,
        id=note.note_id,
    )
    yield from _sync_wanted(note.watch, Kind.NOTE, note.note_id)


def recent_notes(watch: str, limit: int) -> Tx[list[NoteRow]]:
    result = yield Q(
        SELECT_NOTES + " WHERE watch = :watch ORDER BY created_at DESC, {seq} DESC LIMIT :limit",
        watch=watch,
        limit=limit,
    )
    return [NoteRow(**dict(r)) for r in result.rows]


# --- inbox commands ---------------------------------------------------------------------------


def claim_command(
    row: CommandRow, note: NoteRow | None, reply: MessageRow | None
) -> Tx[tuple[CommandRow, bool]]:
    done = yield Q(INSERT_COMMAND, **dict(zip(COMMAND_FIELDS, astuple(row), strict=True)))
    new = done.rowcount == 1
    if new and note is not None:
        yield from _insert_note(note)
    if new:
        yield from _insert_message(reply)
    stored = yield from command(row.message_id)
    assert stored is not None
    return stored, new


def command(message_id: str) -> Tx[CommandRow | None]:
    r = (yield Q(SELECT_COMMANDS + " WHERE message_id = :id", id=message_id)).one()
    return None if r is None else _command(r)


def finish_command(
    message_id: str, state: str, result: str, now: float, reply: MessageRow | None
) -> Tx[None]:
    yield Q(
        "UPDATE commands SET state = :state, result = :result, done_at = :now "
        "WHERE message_id = :id",
        state=state,
        result=result,
        now=now,
        id=message_id,
    )
    yield from _insert_message(reply)


def one(statement: Q) -> Tx[None]:
    """A transaction of one statement."""
    yield statement


def one_query(statement: Q) -> Tx[Sequence[Row]]:
    """A transaction of one query: its rows."""
    return (yield statement).rows


# --- health -----------------------------------------------------------------------------------


def health(watch: str, pending: Mapping[str, Any] | None = None) -> Tx[Health]:
    r = (yield Q(SELECT_HEALTH + " WHERE watch = :watch", watch=watch)).one()
    page = (
        yield Q("SELECT page_name, page_url FROM feeds WHERE watch = :watch", watch=watch)
    ).one()
    info = (
        PageInfo(page["page_name"], page["page_url"])
        if page is not None and page["page_url"]
        else None
    )
    if pending:
        stored = {name: r[name] for name in HEALTH_FIELDS} if r is not None else {}
        return _health(watch, {**dict.fromkeys(HEALTH_FIELDS), **stored, **pending}, info)
    return _health(watch, r, info)


def health_write(watch: str, assignments: str, values: dict[str, Any]) -> Tx[None]:
    yield Q("INSERT INTO health (watch) VALUES (:watch) ON CONFLICT DO NOTHING", watch=watch)
    yield Q(
        f"UPDATE health SET {assignments} WHERE watch = :watch",  # noqa: S608 - literals only
        **{**values, "watch": watch},
    )


def health_columns(pending: Mapping[str, Mapping[str, Any]]) -> Tx[None]:
    """Each watch's held health columns, written at once (column names are ours)."""
    for watch, columns in pending.items():
        if columns:
            assignments = ", ".join(f"{name} = :{name}" for name in columns)
            yield from health_write(watch, assignments, dict(columns))


# --- wiki templates ---------------------------------------------------------------------------


def wiki_rows(watch: str) -> Tx[list[WikiRow]]:
    result = yield Q(
        f"SELECT {_names(WIKI_FIELDS)} FROM wiki_revisions "  # noqa: S608
        "WHERE watch = :watch ORDER BY decided_at, revised_at, page, revision_id",
        watch=watch,
    )
    return [WikiRow(**dict(r)) for r in result.rows]


def record_wiki(row: WikiRow, message: MessageRow | None) -> Tx[None]:
    done = yield Q(INSERT_WIKI, **{n: getattr(row, n) for n in WIKI_FIELDS})
    if done.rowcount == 1:  # judged once: its author is told once
        yield from _insert_message(message)


def wiki_pages(subreddit: str) -> Tx[dict[str, WikiRevision | None]]:
    result = yield Q(
        "SELECT page, revision_id, author, revised_at, content, author_may_edit FROM "
        "wiki_pages WHERE subreddit = :subreddit ORDER BY page",
        subreddit=subreddit.lower(),
    )
    return {
        r["page"]: None
        if r["revision_id"] is None
        else WikiRevision(
            r["page"],
            r["revision_id"],
            r["content"] or "",
            r["author"],
            r["revised_at"] or 0.0,
            None if r["author_may_edit"] is None else bool(r["author_may_edit"]),
        )
        for r in result.rows
    }


def record_wiki_pages(
    subreddit: str, pages: Mapping[str, WikiRevision | None], now: float
) -> Tx[None]:
    for page, revision in pages.items():
        yield Q(
            """INSERT INTO wiki_pages (subreddit, page, revision_id, author, revised_at,
                                       content, read_at, author_may_edit)
               VALUES (:subreddit, :page, :revision, :author, :revised_at, :content, :now,
                       :may_edit)
               ON CONFLICT (subreddit, page) DO UPDATE SET
                 revision_id = excluded.revision_id, author = excluded.author,
                 revised_at = excluded.revised_at, content = excluded.content,
                 read_at = excluded.read_at, author_may_edit = excluded.author_may_edit""",
            subreddit=subreddit.lower(),
            page=page,
            revision=revision.revision_id if revision else None,
            author=revision.author if revision else None,
            revised_at=revision.revised_at if revision else None,
            content=revision.content if revision else None,
            now=now,
            may_edit=revision.author_may_edit if revision else None,
        )


# --- readers' reports -------------------------------------------------------------------------


def reports_key(fresh: str) -> Tx[str]:
    """The key of the author hashes: ``fresh`` the first time, the kept one after."""
    yield Q(
        "INSERT INTO kept (name, value) VALUES ('author_key', :value) ON CONFLICT DO NOTHING",
        value=fresh,
    )
    r = (yield Q("SELECT value FROM kept WHERE name = 'author_key'")).one()
    assert r is not None
    return str(r["value"])


def _signal(watch: str, r: Row) -> Signal:
    numbers = [float(n) for n in r["baseline"].split(",")] if r["baseline"] else []
    assessed = None
    if r["assessed_at"] is not None:
        assessed = Assessment(r["assessed_at"], r["authors"], r["expected"], r["threshold"])
    return Signal(
        watch=watch,
        started_at=r["started_at"],
        baseline=Baseline.from_numbers(numbers) if numbers else Baseline(),
        surge=surge_from_json(r["surge"]),
        notice_id=r["notice_id"],
        held=r["held"],
        quiet_until=r["quiet_until"],
        quiet_by=r["quiet_by"],
        assessed=assessed,
    )


def signal(watch: str) -> Tx[Signal | None]:
    r = (yield Q(SELECT_SIGNAL + " WHERE watch = :watch", watch=watch)).one()
    return None if r is None else _signal(watch, r)


def start_signal(watch: str, now: float) -> Tx[Signal]:
    yield Q(
        "INSERT INTO report_signals (watch, started_at) VALUES (:watch, :now) "
        "ON CONFLICT DO NOTHING",
        watch=watch,
        now=now,
    )
    found = yield from signal(watch)
    assert found is not None
    return found


def set_quiet(watch: str, until: float, by: str, now: float) -> Tx[None]:
    yield from start_signal(watch, now)
    yield Q(
        "UPDATE report_signals SET quiet_until = :until, quiet_by = :by WHERE watch = :watch",
        until=until,
        by=by,
        watch=watch,
    )


def save_signal(state: Signal, notice: EarlyRow | None) -> Tx[None]:
    assessed = state.assessed
    yield Q(
        "UPDATE report_signals SET baseline = :baseline, surge = :surge, "
        "notice_id = :notice_id, held = :held, assessed_at = :assessed_at, "
        "authors = :authors, expected = :expected, threshold = :threshold "
        "WHERE watch = :watch",
        watch=state.watch,
        baseline=",".join(repr(n) for n in state.baseline.as_numbers()),
        surge=surge_to_json(state.surge),
        notice_id=state.notice_id,
        held=state.held,
        assessed_at=assessed.at if assessed else None,
        authors=assessed.authors if assessed else 0,
        expected=assessed.expected if assessed else None,
        threshold=assessed.threshold if assessed else 0.0,
    )
    if notice is not None:
        yield from _insert_early(notice)


def _early_values(row: EarlyRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in EARLY_FIELDS}
    values["errors"] = json.dumps([list(p) for p in row.errors])
    values["products"] = json.dumps([list(p) for p in row.products])
    return values


INSERT_EARLY = (
    f"INSERT INTO early_notices ({_names(EARLY_FIELDS)}) "  # noqa: S608
    f"VALUES ({_values(EARLY_FIELDS)}) ON CONFLICT DO NOTHING"
)


def _insert_early(row: EarlyRow) -> Tx[bool]:
    done = yield Q(INSERT_EARLY, **_early_values(row))
    if done.rowcount == 1:
        yield from _want(row.watch, Kind.EARLY, row.notice_id, row.created_at)
    return done.rowcount == 1


def _early(r: Row) -> EarlyRow:
    data = dict(r)
    data["errors"] = pairs(data["errors"])
    data["products"] = pairs(data["products"])
    return EarlyRow(**data)


def early_notices(watch: str, ids: Sequence[str]) -> Tx[list[EarlyRow]]:
    rows: list[EarlyRow] = []
    for condition, values in among("notice_id", ids):
        result = yield Q(
            f"{SELECT_EARLY} WHERE watch = :watch AND {condition}", watch=watch, **values
        )
        rows += [_early(r) for r in result.rows]
    return sorted(rows, key=lambda row: row.detected)


def save_early(row: EarlyRow) -> Tx[None]:
    values = _early_values(row)
    assignments = ", ".join(f"{n} = :{n}" for n in EARLY_FIELDS if n not in ("watch", "notice_id"))
    yield Q(
        f"UPDATE early_notices SET {assignments} "  # noqa: S608 - names are ours
        "WHERE watch = :watch AND notice_id = :notice_id",
        **values,
    )
    yield from _sync_wanted(row.watch, Kind.EARLY, row.notice_id)


def add_reports(watch: str, items: Sequence[tuple[str, Report]], now: float) -> Tx[int]:
    added = 0
    for item_id, report in items:
        done = yield Q(
            "INSERT INTO reports (watch, item_id, at, author, author_since, rule, errors, "
            "products, seen_at) VALUES (:watch, :item, :at, :author, :since, :rule, :errors, "
            ":products, :now) ON CONFLICT DO NOTHING",
            watch=watch,
            item=item_id,
            at=report.at,
            author=report.author,
            since=report.author_since,
            rule=report.rule,
            errors=json.dumps(list(report.errors)),
            products=json.dumps(list(report.products)),
            now=now,
        )
        added += done.rowcount == 1
    return added


def _report(r: Row) -> Report:
    return Report(
        at=r["at"],
        author=r["author"],
        rule=r["rule"],
        errors=tuple(json.loads(r["errors"])),
        products=tuple(json.loads(r["products"])),
        author_since=r["author_since"],
    )


def reports(watch: str, since: float, until: float) -> Tx[list[Report]]:
    result = yield Q(
        SELECT_REPORTS + " WHERE watch = :watch AND at >= :since AND at <= :until "
        "ORDER BY at, item_id",
        watch=watch,
        since=since,
        until=until,
    )
    return [_report(r) for r in result.rows]


def known_reports(watch: str, ids: Sequence[str]) -> Tx[set[str]]:
    found: set[str] = set()
    for condition, values in among("item_id", ids):
        result = yield Q(
            f"SELECT item_id FROM reports WHERE watch = :watch AND {condition}",  # noqa: S608
            watch=watch,
            **values,
        )
        found |= {r["item_id"] for r in result.rows}
    return found


INSERT_ROUTE = (
    f"INSERT INTO routes ({_names(ROUTE_FIELDS)}) "  # noqa: S608
    f"VALUES ({_values(ROUTE_FIELDS)}) ON CONFLICT DO NOTHING"
)
SELECT_ROUTES = f"SELECT {_names(ROUTE_FIELDS, 'r.')} FROM routes r"  # noqa: S608


def add_route(row: RouteRow) -> Tx[bool]:
    done = yield Q(INSERT_ROUTE, **{name: getattr(row, name) for name in ROUTE_FIELDS})
    if done.rowcount != 1:
        return False  # answered already, under this watch or another
    yield Q(
        "INSERT INTO deliveries (watch, kind, key, state, thread_id, created_at, epoch) "
        "VALUES (:watch, 'route', :post, 'pending', :post, :now, :epoch) ON CONFLICT DO NOTHING",
        watch=row.watch,
        post=row.post_id,
        now=row.created_at,
        epoch=EPOCH,
    )
    yield from _sync_wanted(row.watch, Kind.ROUTE, row.post_id)
    return True


def routed(post_ids: Sequence[str]) -> Tx[set[str]]:
    found: set[str] = set()
    for condition, values in among("post_id", post_ids):
        result = yield Q(f"SELECT post_id FROM routes WHERE {condition}", **values)  # noqa: S608
        found |= {r["post_id"] for r in result.rows}
    return found


def report_posts(watch: str, since: float) -> Tx[list[str]]:
    result = yield Q(
        "SELECT item_id FROM reports WHERE watch = :watch AND at >= :since "
        "AND substr(item_id, 1, 3) = 't3_' ORDER BY at, item_id",
        watch=watch,
        since=since,
    )
    return [str(r["item_id"]).removeprefix("t3_") for r in result.rows]


def routes_to_remove(watch: str) -> Tx[list[RouteRow]]:
    result = yield Q(
        SELECT_ROUTES  # noqa: S608 - literals only
        + " WHERE r.watch = :watch AND r.action = 'remove' "
        "AND r.removal <> 'removed' AND EXISTS (SELECT 1 FROM deliveries d "
        "WHERE d.watch = r.watch AND d.kind = 'route' AND d.key = r.post_id "
        "AND d.state = 'posted') ORDER BY r.created_at, r.post_id",
        watch=watch,
    )
    return [RouteRow(**dict(r)) for r in result.rows]


# --- migrate-store ----------------------------------------------------------------------------


def export_rows() -> Tx[dict[str, list[dict[str, Any]]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, order in COPIED_TABLES.items():
        result = yield Q(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608 - names are ours
        tables[table] = [
            {k: v for k, v in dict(r).items() if k not in INTERNAL_COLUMNS} for r in result.rows
        ]
    return tables


def import_rows(tables: dict[str, list[dict[str, Any]]], described: str) -> Tx[None]:
    for table in COPIED_TABLES:
        if (yield Q(f"SELECT 1 FROM {table} LIMIT 1")).rows:  # noqa: S608 - names are ours
            raise StoreError(
                f"{described} already holds modbot state ({table} has rows): migrate-store "
                "copies into an empty store only"
            )
    for table in COPIED_TABLES:
        booleans = BOOLEAN_COLUMNS.get(table, frozenset())
        for row in tables.get(table, []):
            values = {n: bool(v) if n in booleans and v is not None else v for n, v in row.items()}
            names = list(values)
            yield Q(
                f"INSERT INTO {table} ({_names(names)}) VALUES ({_values(names)})",  # noqa: S608
                **values,
            )


class SqlStore(Generic[D]):
    """The bot's state behind the ``Store`` port, in whatever database ``dialect`` speaks.
    Build it with ``sqlite.open_sqlite`` or ``postgres.open_postgres``; close when done."""

    def __init__(self, dialect: D) -> None:
        self.dialect = dialect
        self.location = dialect.location
        # Health columns held in memory (see ``hold_health``): by watch, by column.
        self._hold_every: float | None = None
        self._held: dict[str, dict[str, Any]] = {}
        self._written_at: float | None = None
        self._polled_ok: dict[str, bool] = {}  # each watch's last poll outcome, and kind
        self._polled_kind: dict[str, str] = {}

    async def _read(self, tx: Tx[T]) -> T:
        return await self.dialect.run(tx, write=False)

    async def _write(self, tx: Tx[T]) -> T:
        return await self.dialect.run(tx, write=True)

    async def close(self) -> None:
        """Write the health held in memory, and release the store (every other write is
        already durable)."""
        try:
            await self.flush_health()
        except StoreError:
            pass  # a heartbeat a few seconds old is all that is lost; the error was said
        finally:
            await self.dialect.close()

    def version(self) -> int | None:
        """A number that changes whenever anything is committed to the store, by this
        process or another; None when the store cannot tell (then assume it changed).
        Cheap enough for every poll: an idle loop asks it before it reads anything."""
        return self.dialect.version()

    async def schema_version(self) -> int:
        """The schema version of the open store."""
        return await self.dialect.schema_version()

    async def startup_problems(self) -> list[str]:
        """What a quick look at a start finds damaged (empty when nothing is): in time
        that does not grow with the history; nothing is written to a store it faults."""
        return await self.dialect.startup_problems()

    async def integrity_problems(self) -> list[str]:
        """What is damaged, the whole store read (``modbot check --deep``)."""
        return await self.dialect.integrity_problems()

    async def writable(self) -> None:
        """Raise a ``StoreError`` unless a write transaction can start (rights, locks, a
        read-only server)."""
        await self._write(one(Q("UPDATE feeds SET watch = watch WHERE FALSE")))

    # --- feeds and incidents ----------------------------------------------------------------
    async def feed_state(self, watch: str) -> FeedState:
        """The page's baseline and validators (empty before the first good poll)."""
        return await self._read(feed_state(watch))

    async def tracked(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """The incidents the bot knows among ``ids``."""
        return await self._read(tracked(watch, tuple(ids)))

    async def announced(self, watch: str, ids: Collection[str]) -> dict[str, Tracked]:
        """Announced (or forced) incidents among ``ids``."""
        return await self._read(tracked(watch, tuple(ids), " AND {announced}"))

    async def save_poll(
        self,
        watch: str,
        *,
        url: str,
        changed: Mapping[str, Tracked],
        rendered: Mapping[str, Rendered],
        render_errors: Mapping[str, str],
        validators: Validators,
        baseline_at: datetime,
        page: PageInfo | None,
        now: float,
        platform: str | None = None,
        aliases: Sequence[Alias] = (),
        move: PlatformMove | None = None,
    ) -> None:
        """One poll's outcome, atomically: views, bodies, delivery intents, validators;
        the platform that served it, the new ids of incidents it adopted, the move."""
        await self._write(
            save_poll(
                watch,
                url=url,
                changed=changed,
                rendered=rendered,
                render_errors=render_errors,
                validators=validators,
                baseline_at=baseline_at,
                page=page,
                now=now,
                platform=platform,
                aliases=aliases,
                move=move,
            )
        )

    async def aliases(self, watch: str, ids: Collection[str]) -> dict[str, Alias]:
        """The aliases among ``ids`` (new ids of incidents the bot knows by another)."""
        return await self._read(aliases(watch, tuple(ids)))

    async def adoptable(self, watch: str, *, closed_since: float) -> dict[str, Tracked]:
        """Announced incidents still open, and those closed by a move since
        ``closed_since``: what an incident new to the page may be under a new id."""
        return await self._read(adoptable(watch, closed_since))

    async def moves(self, watch: str) -> list[PlatformMove]:
        """The moves of the watch's page to another platform, oldest first."""
        return await self._read(platform_moves(watch))

    async def save_renders(
        self, watch: str, rendered: Mapping[str, Rendered], errors: Mapping[str, str]
    ) -> None:
        """Re-rendered bodies (after a template change or a refresh)."""
        await self._write(save_renders(watch, rendered, errors))

    async def rerender_scope(
        self, watch: str, *, closed_since: float, thread_id: str | None
    ) -> dict[str, Tracked]:
        """Open incidents, and those closed since ``closed_since`` with a comment in
        ``thread_id``: what readers still see."""
        return await self._read(rerender_scope(watch, closed_since, thread_id))

    async def in_thread(self, watch: str, thread_id: str) -> dict[str, Tracked]:
        """Every announced incident with a live comment in ``thread_id``."""
        return await self._read(in_thread(watch, thread_id))

    async def force(self, watch: str, tracked: Tracked, *, now: float) -> None:
        """Post ``tracked`` whatever the rules say (a moderator asked for it)."""
        await self._write(force(watch, tracked, now))

    async def adopt_known(self, watch: str, ids: Collection[str]) -> int:
        """Incidents among ``ids`` that the bot has a comment for (found by its marker) but
        took as a baseline (a fresh state): deliver them again, so that comment is kept
        current. Returns how many."""
        return await self._write(adopt_known(watch, tuple(ids), time.time()))

    async def prune(
        self, watch: str, *, closed_before: float, keep: Collection[str] = (), now: float
    ) -> list[str]:
        """Forget what is settled: incidents closed before ``closed_before`` (but those in
        ``keep``, which the page still lists) keep one line each and lose their bodies
        and deliveries; notices posted before it go with their deliveries, and settled
        messages recorded before it lose their text. Anything with work left stays. A
        batch per transaction; returns the incidents pruned."""
        pruned: list[str] = []
        skipped: set[str] = set(keep)
        while True:
            found = await self._read(prune_candidates(watch, closed_before))
            chosen = {key: status for key, status in found if key not in skipped}
            await self._write(prune(watch, chosen, now))
            pruned += chosen
            skipped |= {key for key, _ in found}
            if len(found) < PRUNE_BATCH or not chosen:
                break
        await self._write(prune_notes(watch, closed_before))
        await self._write(prune_messages(closed_before))  # the account's, for any watch
        return pruned

    async def unrendered(self, watch: str) -> dict[str, Tracked]:
        """Incidents to post about that have no body yet (and no template error)."""
        return await self._read(unrendered(watch))

    async def open_incidents(self, watch: str) -> list[IncidentRow]:
        """Announced incidents still open, newest first."""
        return await self._read(open_incidents(watch))

    async def recent_settled(self, watch: str, limit: int) -> list[IncidentRow]:
        """The ``limit`` most recently closed announced incidents."""
        return await self._read(recent_settled(watch, limit))

    # --- deliveries -------------------------------------------------------------------------
    async def work(self, watch: str, keys: Collection[tuple[Kind, str]] | None = None) -> Work:
        """Open incidents and active deliveries, with their rows (only ``keys``, if given)."""
        return await self._read(work(watch, None if keys is None else frozenset(keys)))

    async def body(self, watch: str, kind: Kind, key: str) -> Rendered | None:
        """The body a subject's comment should show now."""
        return await self._read(body(watch, kind, key))

    async def deliveries(self, watch: str, kind: Kind, keys: Collection[str]) -> list[DeliveryRow]:
        """Every delivery row of these subjects, oldest first."""
        return await self._read(deliveries(watch, kind, tuple(keys)))

    async def start_delivery(
        self, watch: str, kind: Kind, key: str, thread_id: str, *, now: float
    ) -> DeliveryRow | None:
        """A new ``pending`` row for a subject in ``thread_id`` (None if one exists)."""
        return await self._write(start_delivery(watch, kind, key, thread_id, now))

    async def step(self, before: Stepped, after: Stepped) -> bool:
        """Write ``after`` if the row is still ``before`` (same version) and, for a
        delivery, its thread holds no other row of the subject; False if not."""
        return await self._write(step(before, after))

    # --- the outbox -------------------------------------------------------------------------
    async def add_message(self, message: MessageRow) -> tuple[MessageRow, bool]:
        """Record a message to send (once per key); the stored row and whether it is new."""
        return await self._write(add_message(message))

    async def message(self, key: str) -> MessageRow | None:
        """One message."""
        return await self._read(_message_by_key(key))

    async def outbox(self) -> list[MessageRow]:
        """The messages that need a step: unsent, unsettled, or in doubt; oldest first."""
        return await self._read(outbox())

    async def last_message(self, prefix: str) -> MessageRow | None:
        """The newest message whose key starts with ``prefix`` (an alert's condition)."""
        return await self._read(last_message(prefix))

    async def move_alerted(self, move: PlatformMove, at: float) -> None:
        """Record that the moderators were told of ``move`` (its alert went out at ``at``)."""
        await self._write(move_alerted(move.watch, move.moved_at, at))

    # --- notices ----------------------------------------------------------------------------
    async def add_note(self, note: NoteRow) -> tuple[NoteRow, bool]:
        """Record a notice and its delivery intent; the stored row and whether it is new."""
        return await self._write(add_note(note))

    async def note(self, watch: str, note_id: str) -> NoteRow | None:
        """One notice."""
        return await self._read(_note(watch, note_id))

    async def note_by_comment(self, comment_id: str) -> NoteRow | None:
        """The notice posted as ``comment_id``."""
        return await self._read(note_by_comment(comment_id))

    async def edit_note(self, note: NoteRow) -> None:
        """New words (and body) for a notice; the deliverer edits its comment."""
        await self._write(edit_note(note))

    async def recent_notes(self, watch: str, limit: int) -> list[NoteRow]:
        """The newest notices."""
        return await self._read(recent_notes(watch, limit))

    # --- inbox commands ---------------------------------------------------------------------
    async def claim_command(
        self, row: CommandRow, note: NoteRow | None = None, reply: MessageRow | None = None
    ) -> tuple[CommandRow, bool]:
        """Record a received command (with a notice's intent, and the reply of a refusal,
        atomically)."""
        return await self._write(claim_command(row, note, reply))

    async def command(self, message_id: str) -> CommandRow | None:
        """One received command."""
        return await self._read(command(message_id))

    async def finish_command(
        self,
        message_id: str,
        state: str,
        result: str,
        now: float,
        reply: MessageRow | None = None,
    ) -> None:
        """Record what a command did, and the reply that says so, atomically."""
        await self._write(finish_command(message_id, state, result, now, reply))

    async def command_read(self, message_id: str) -> None:
        """Record that the message was marked read."""
        await self._write(
            one(Q("UPDATE commands SET marked_read = TRUE WHERE message_id = :id", id=message_id))
        )

    # --- health -----------------------------------------------------------------------------
    def hold_health(self, every: float) -> None:
        """Keep the routine heartbeat in memory and write it at most every ``every``
        seconds, and at ``close``: a good poll after a good poll, a good Reddit call.
        What a reader must see at once (a poll failing after good ones, a recovery, a
        Reddit error) is written as it happens. ``health`` reads what is held too;
        another process reads what was written (``check --live`` allows for it)."""
        self._hold_every = every

    async def health(self, watch: str) -> Health:
        """The watch's health record (what this process holds included)."""
        return await self._read(health(watch, self._held.get(watch)))

    async def record_poll(
        self, watch: str, *, ok: bool, message: str, now: float, kind: str = ""
    ) -> None:
        """The outcome of one poll (``kind``: the vendor the source reads, once known)."""
        columns: dict[str, Any] = {"last_poll_at": now, "last_poll_ok": ok}
        columns["last_poll_message"] = message
        if ok:
            columns.update(last_good_poll_at=now, failing_since=None)
        if kind:
            columns["source_kind"] = kind
        if not ok:
            columns.update(last_error_at=now, last_error_kind="status page", last_error=message)
        changed = self._polled_ok.get(watch) != ok or self._polled_kind.get(watch) != kind
        self._polled_ok[watch], self._polled_kind[watch] = ok, kind
        await self._health_columns(watch, columns, now, at_once=changed)
        if changed and not ok:
            # Since when it fails survives a restart: a failure already recorded keeps
            # its start.
            await self._write(
                health_write(watch, "failing_since = COALESCE(failing_since, :now)", {"now": now})
            )

    async def record_started(self, watch: str, now: float) -> None:
        """This process starts polling the watch (for the health checks' "started 20 s ago")."""
        await self._write(health_write(watch, "started_at = :now", {"now": now}))

    async def record_stopped(self, watch: str, started_at: float) -> None:
        """The process that started polling at ``started_at`` stopped (another may have
        started since: its mark stays)."""
        await self._write(
            health_write(
                watch,
                "started_at = CASE WHEN started_at = :started THEN NULL ELSE started_at END",
                {"started": started_at},
            )
        )

    async def record_reddit(self, watch: str, *, error: str | None, kind: str, now: float) -> None:
        """A good Reddit call (``error`` None) or a failed one."""
        if error is None:
            await self._health_columns(watch, {"last_reddit_ok_at": now}, now, at_once=False)
        else:
            columns = {"last_error_at": now, "last_error_kind": kind, "last_error": error}
            await self._health_columns(watch, columns, now, at_once=True)

    async def _health_columns(
        self, watch: str, columns: dict[str, Any], now: float, *, at_once: bool
    ) -> None:
        """Hold ``columns`` of the watch's health record, or write them (with what is
        held) when ``at_once``, when nothing is held, or when the last write is
        ``hold_health``'s interval ago."""
        held = self._held.setdefault(watch, {})
        held.update(columns)
        if self._hold_every is None or at_once:
            self._held.pop(watch)
            await self._write(health_columns({watch: held}))
        elif self._written_at is None:
            self._written_at = now
        elif now - self._written_at >= self._hold_every:
            await self.flush_health(now)

    async def flush_health(self, now: float | None = None) -> None:
        """Write every health column held in memory."""
        held, self._held = self._held, {}
        self._written_at = time.time() if now is None else now
        if any(held.values()):
            await self._write(health_columns(held))

    async def record_megathread(self, watch: str, thread: Thread | None, now: float) -> None:
        """The megathread in use."""
        await self._write(
            health_write(
                watch,
                "megathread_id = :id, megathread_title = :title, "
                "megathread_permalink = :permalink, megathread_at = :now",
                {
                    "id": thread.id if thread else None,
                    "title": thread.title if thread else None,
                    "permalink": thread.permalink if thread else None,
                    "now": now,
                },
            )
        )

    async def set_paused(self, watch: str, paused: bool, *, by: str, now: float) -> None:
        """Pause or resume posting."""
        await self._write(
            health_write(
                watch,
                "paused = :paused, paused_by = :by, paused_at = :now",
                {"paused": paused, "by": by, "now": now},
            )
        )

    async def record_templates(self, watch: str, templates: str, now: float) -> None:
        """Which templates the watch renders with (and why, when not the configured ones)."""
        await self._write(
            health_write(
                watch,
                "templates = :templates, templates_at = :now",
                {"templates": templates, "now": now},
            )
        )

    # --- wiki templates ---------------------------------------------------------------------
    async def wiki_rows(self, watch: str) -> list[WikiRow]:
        """Every wiki revision decided for the watch, oldest first."""
        return await self._read(wiki_rows(watch))

    async def record_wiki(self, row: WikiRow, message: MessageRow | None = None) -> None:
        """Record the decision about one revision (kept: a revision is judged once) and
        the message that tells its author, atomically."""
        await self._write(record_wiki(row, message))

    async def wiki_pages(self, subreddit: str) -> dict[str, WikiRevision | None]:
        """The template pages of a subreddit's wiki as last read (None: no such page);
        pages never read are left out."""
        return await self._read(wiki_pages(subreddit))

    async def record_wiki_pages(
        self, subreddit: str, pages: Mapping[str, WikiRevision | None], now: float
    ) -> None:
        """What the wiki's template pages show now (None: the page does not exist)."""
        await self._write(record_wiki_pages(subreddit, pages, now))

    # --- readers' reports -------------------------------------------------------------------
    async def reports_key(self, fresh: str) -> str:
        """The key of readers' author hashes (``fresh`` is kept the first time)."""
        return await self._write(reports_key(fresh))

    async def signal(self, watch: str) -> Signal | None:
        """What the bot keeps about the watch's readers (None before the first read)."""
        return await self._read(signal(watch))

    async def start_signal(self, watch: str, *, now: float) -> Signal:
        """The watch's signal, begun at ``now`` if it has none yet."""
        return await self._write(start_signal(watch, now))

    async def save_signal(self, state: Signal, notice: EarlyRow | None = None) -> None:
        """The watch's signal after a read, and (atomically) a new early notice to post."""
        await self._write(save_signal(state, notice))

    async def set_quiet(self, watch: str, until: float, *, by: str, now: float) -> None:
        """Hold early notices until ``until`` (0: no longer)."""
        await self._write(set_quiet(watch, until, by, now))

    async def add_reports(
        self, watch: str, items: Sequence[tuple[str, Report]], *, now: float
    ) -> int:
        """Keep reports (item id and what the signal needs); how many were new."""
        return await self._write(add_reports(watch, items, now))

    async def reports(self, watch: str, since: float, until: float) -> list[Report]:
        """The watch's reports posted in ``[since, until]``, oldest first."""
        return await self._read(reports(watch, since, until))

    async def known_reports(self, watch: str, ids: Collection[str]) -> set[str]:
        """Which of these items are kept as reports already."""
        return await self._read(known_reports(watch, tuple(ids)))

    async def forget_reports(self, watch: str, before: float) -> None:
        """Drop reports posted before ``before`` (the baseline has learnt from them)."""
        await self._write(
            one(
                Q(
                    "DELETE FROM reports WHERE watch = :watch AND at < :before",
                    watch=watch,
                    before=before,
                )
            )
        )

    async def early_notices(self, watch: str, ids: Collection[str]) -> list[EarlyRow]:
        """These early notices, oldest first."""
        return await self._read(early_notices(watch, tuple(ids)))

    async def live_early_notices(self, watch: str, since: float) -> list[EarlyRow]:
        """Early notices still open, or detected since ``since`` (the ones an incident may
        still confirm or a surge still change), oldest first."""
        result = await self._read(
            one_query(
                Q(
                    SELECT_EARLY + " WHERE watch = :watch AND (state = 'open' "
                    "OR detected >= :since) ORDER BY detected, notice_id",
                    watch=watch,
                    since=since,
                )
            )
        )
        return [_early(r) for r in result]

    async def early_for_incident(self, watch: str, incident_id: str) -> EarlyRow | None:
        """The early notice an incident confirmed, if any."""
        result = await self._read(
            one_query(
                Q(
                    SELECT_EARLY + " WHERE watch = :watch AND incident_id = :id "
                    "ORDER BY detected LIMIT 1",
                    watch=watch,
                    id=incident_id,
                )
            )
        )
        return _early(result[0]) if result else None

    async def save_early(self, row: EarlyRow) -> None:
        """An early notice's new state and body; the deliverer edits its comment."""
        await self._write(save_early(row))

    async def add_route(self, row: RouteRow) -> bool:
        """Record a stray post's reply (and removal) to deliver; False when the post was
        answered already, under any watch."""
        return await self._write(add_route(row))

    async def routed(self, post_ids: Collection[str]) -> set[str]:
        """Which of these posts have been (or are being) answered, under any watch."""
        return await self._read(routed(tuple(post_ids)))

    async def report_posts(self, watch: str, since: float) -> list[str]:
        """Posts (ids without t3_) kept as the watch's reports, posted since ``since``."""
        return await self._read(report_posts(watch, since))

    async def routes_to_remove(self, watch: str) -> list[RouteRow]:
        """Stray posts to remove whose reply is posted, not removed yet."""
        return await self._read(routes_to_remove(watch))

    async def set_removal(self, post_id: str, state: str) -> None:
        """How far a stray post's removal got: removing (the intent), removed."""
        await self._write(
            one(
                Q(
                    "UPDATE routes SET removal = :state WHERE post_id = :post",
                    state=state,
                    post=post_id,
                )
            )
        )

    async def routes(self, watch: str, post_ids: Collection[str]) -> list[RouteRow]:
        """These stray posts' routes."""
        rows: list[RouteRow] = []
        for condition, values in among("post_id", tuple(post_ids)):
            found = await self._read(
                one_query(
                    Q(
                        f"{SELECT_ROUTES} WHERE r.watch = :watch AND r.{condition}",
                        watch=watch,
                        **values,
                    )
                )
            )
            rows += [RouteRow(**dict(r)) for r in found]
        return rows

    # --- several processes ------------------------------------------------------------------
    async def lease(self, deployment: str, host: str, pid: int, *, interval: float) -> Lease:
        """This process's lease on leading ``deployment`` (see the dialect's)."""
        return self.dialect.lease(deployment, host, pid, interval=interval)

    async def leadership(self, deployment: str, interval: float) -> Leadership | None:
        """Who leads the deployment and who waits; None when the store has no leases."""
        return await self.dialect.leadership(deployment, interval)

    async def confirm_lead(self) -> None:
        """Raise ``Deposed`` if this process led and another leads now."""
        await self.dialect.confirm_lead()

    async def shut_out(self) -> list[Member]:
        """Keep every ``modbot run`` off this store until ``let_in`` (``migrate-store``)."""
        return await self.dialect.shut_out()

    async def let_in(self) -> None:
        """Undo ``shut_out``."""
        await self.dialect.let_in()

    async def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the bot's tables, in the order they were written."""
        return await self._read(export_rows())

    async def import_rows(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Load rows into this empty store, in one transaction."""

        def load() -> Tx[None]:
            yield from import_rows(tables, self.dialect.described)
            yield from self.dialect.after_import()

        await self._write(load())
