"""The early notice: readers report an outage the status page does not show yet.

One watch's reports are followed by ``surge.track`` every reports interval; this module
decides what that means for the megathread. Pure: the shell reads and writes.

- A surge that starts gets one early notice, unless something holds it: the watch
  counts only (``reports = "count"``), a moderator quieted notices (``!quiet 2h``), or
  an open incident already covers what readers name (its comment is the news). A held
  surge stays held: one surge makes at most one notice, whatever happens while it lasts.
- While the surge lasts, the notice's counts follow the reports (at most one edit a
  ``REFRESH``).
- An incident the vendor opens within ``reports_link_window`` of the detection (first
  seen by the bot after it) confirms the notice: it is edited to link the incident's
  own comment, and that comment says how far ahead readers were.
- A surge that ends with no incident leaves the notice "subsided" (and an incident
  within the link window still confirms it afterwards).

The state kept per watch (``Signal``) is what a restart or another leader needs to go
on where the last one stopped: the baseline, the open surge and its notice, the quiet
hours, the last look (for ``modbot status``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

from modbot.core.readertext import normalise
from modbot.core.records import EarlyRow, IncidentView
from modbot.core.surge import Assessment, Baseline, Report, Surge, SurgeSettings, SurgeStep

OPEN, CONFIRMED, SUBSIDED = "open", "confirmed", "subsided"
REFRESH = 60.0  # seconds between two edits of an open notice's counts, at least


@dataclass(frozen=True)
class Signal:
    """What the bot keeps about one watch's readers between reads."""

    watch: str
    started_at: float  # reading began; older items are not counted
    baseline: Baseline = field(default_factory=Baseline)
    surge: Surge | None = None  # the open surge
    notice_id: str | None = None  # its early notice (None: none, or held)
    held: str = ""  # why the open surge has no notice
    quiet_until: float = 0.0  # early notices held until then
    quiet_by: str = ""
    assessed: Assessment | None = None  # the last look


def notice_id_for(detected: float) -> str:
    """The id of the notice of a surge detected at ``detected``: its marker names it, so a
    restart that decides the same notice again finds the one already recorded."""
    return f"e{int(detected)}"


def hold_reason(
    mode: str,
    signal: Signal,
    now: float,
    open_incidents: Sequence[IncidentView],
    products: Iterable[str],
) -> str:
    """Why a surge starting now gets no early notice ("" when it gets one)."""
    if mode != "notice":
        return f"reports = {mode!r}"
    if signal.quiet_until > now:
        return f"quiet ({signal.quiet_by or 'a moderator'})"
    covering = covered_by(open_incidents, products)
    if covering is not None:
        return f"incident {covering.id} is open"
    return ""


def covered_by(incidents: Sequence[IncidentView], products: Iterable[str]) -> IncidentView | None:
    """The open incident whose components cover what readers name: any open incident
    when they name no product or it lists no component, else one that lists a product
    they name."""
    named = {_key(p) for p in products}
    for incident in incidents:
        if not incident.is_open:
            continue
        parts = {_key(c.name) for c in incident.components}
        if not named or not parts or named & parts or _loosely(named, parts):
            return incident
    return None


def _key(name: str) -> str:
    return normalise(name).words


def _loosely(named: set[str], parts: set[str]) -> bool:
    """A product named within a component's name or the other way round ("Claude API"
    and "Claude API (api.anthropic.com)")."""
    return any(a in b or b in a for a in named for b in parts if a and b)


def started(signal: Signal, step: SurgeStep, reason: str, now: float) -> tuple[Signal, str | None]:
    """The state after a step that started a surge, and the new notice's id (None when
    ``reason`` holds it)."""
    assert step.surge is not None
    notice = None if reason else notice_id_for(step.surge.detected)
    return (
        replace(signal, surge=step.surge, notice_id=notice, held=reason, assessed=step.assessment),
        notice,
    )


def draft(watch: str, notice_id: str, surge: Surge, now: float) -> EarlyRow:
    """A new notice's row, without its body (the shell renders it)."""
    return EarlyRow(
        watch=watch,
        notice_id=notice_id,
        began=surge.began,
        detected=surge.detected,
        authors=surge.authors,
        errors=surge.errors,
        products=surge.products,
        state=OPEN,
        body="",
        body_hash="",
        created_at=now,
    )


def with_counts(row: EarlyRow, surge: Surge) -> EarlyRow:
    """An open notice with the surge's latest counts."""
    return replace(row, authors=surge.authors, errors=surge.errors, products=surge.products)


def counts_changed(row: EarlyRow, surge: Surge, now: float, last_edit: float) -> bool:
    """True when the notice should show new counts now."""
    if row.state != OPEN or now - last_edit < REFRESH:
        return False
    return (row.authors, row.errors, row.products) != (surge.authors, surge.errors, surge.products)


def subsided(row: EarlyRow, ended: float) -> EarlyRow:
    """The notice once its surge ended (a confirmed one stays confirmed)."""
    if row.state == CONFIRMED:
        return replace(row, ended=ended)
    return replace(row, state=SUBSIDED, ended=ended)


def confirming(
    row: EarlyRow, incidents: Sequence[tuple[IncidentView, float]], link_window: float
) -> IncidentView | None:
    """The incident that confirms ``row``: first seen by the bot after the notice was
    decided, and opened (by the page's clock, else when first seen) within
    ``link_window`` of it (and not longer before the first reports). ``incidents``: each
    with when the bot first saw it."""
    if row.state == CONFIRMED:
        return None
    found = []
    for view, first_seen in incidents:
        opened = view.created_at.timestamp() if view.created_at else first_seen
        if (
            first_seen >= row.detected
            and -link_window <= opened - row.began
            and (opened - row.detected <= link_window)
        ):
            found.append((opened, view.id, view))
    return min(found)[2] if found else None


def confirmed(row: EarlyRow, incident_id: str) -> EarlyRow:
    """The notice, confirmed by ``incident_id``."""
    return replace(row, state=CONFIRMED, incident_id=incident_id)


def lead(row: EarlyRow, view: IncidentView) -> float | None:
    """Seconds from readers' first reports to the incident's opening (None: not known)."""
    if view.created_at is None:
        return None
    return view.created_at.timestamp() - row.began


def lead_text(seconds: float | None) -> str:
    """``14 min`` / ``1 h 05 min``; "" when readers were not ahead."""
    if seconds is None or seconds < 60:
        return ""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# --- counts for the incident's comment --------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """What readers named in a span: how many readers, and how many named each label."""

    authors: int = 0
    errors: tuple[tuple[str, int], ...] = ()
    products: tuple[tuple[str, int], ...] = ()


def tally(reports: Iterable[Report], since: float, until: float, settings: SurgeSettings) -> Tally:
    """Readers' reports in ``[since, until]``: each reader once, and once per label they
    named in any of their reports; accounts too young when they reported are left out."""
    errors: dict[str, set[str]] = {}
    products: dict[str, set[str]] = {}
    authors: set[str] = set()
    for report in reports:
        if not since <= report.at <= until or _too_young(report, settings):
            continue
        authors.add(report.author)
        for label in report.errors:
            errors.setdefault(label, set()).add(report.author)
        for label in report.products:
            products.setdefault(label, set()).add(report.author)
    return Tally(len(authors), _ranked(errors), _ranked(products))


def _too_young(report: Report, settings: SurgeSettings) -> bool:
    since = report.author_since
    return since is not None and report.at - since < settings.min_account_age


def _ranked(named: dict[str, set[str]]) -> tuple[tuple[str, int], ...]:
    counts = Counter({label: len(who) for label, who in named.items()})
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# --- what is stored ---------------------------------------------------------------------------


def surge_to_json(surge: Surge | None) -> str | None:
    """An open surge as stored."""
    return None if surge is None else json.dumps(asdict(surge), sort_keys=True)


def surge_from_json(text: str | None) -> Surge | None:
    """A stored surge (None for none or a damaged value: a new surge will start)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return Surge(
            detected=float(data["detected"]),
            began=float(data["began"]),
            authors=int(data["authors"]),
            errors=pairs(data.get("errors", [])),
            products=pairs(data.get("products", [])),
            quiet_since=_maybe(data.get("quiet_since")),
            ended=_maybe(data.get("ended")),
        )
    except (ValueError, TypeError, KeyError):
        return None


def pairs(value: object) -> tuple[tuple[str, int], ...]:
    """Label counts as stored (a JSON list of [label, count])."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    if not isinstance(value, list):
        return ()
    return tuple((str(label), int(count)) for label, count in value)


def _maybe(value: object) -> float | None:
    return None if value is None else float(str(value))
