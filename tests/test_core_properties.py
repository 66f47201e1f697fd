"""Property test of the pure pipeline: diff -> render -> plan, with an in-memory target.

Random sequences of feed snapshots (new updates, edited bodies, status, impact and
name changes, incidents vanishing from the window, no-op churn) must never produce
an edit that leaves the text unchanged, and once things settle each incident's
comment must show exactly the render of its latest view.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modbot import default_templates_dir
from modbot.core import machine
from modbot.core.feed import ParseCache, parse_incidents_object
from modbot.core.incidents import ViewMemo, diff, view_of
from modbot.core.planner import Edit, Post, plan
from modbot.core.records import (
    DeliveryRow,
    IncidentView,
    Kind,
    PageInfo,
    PostedComment,
    Rendered,
    Subject,
    Tracked,
)
from modbot.core.render import Renderer, incident_job, link_hosts
from modbot.rendering.files import read_templates
from tests.fakes.statuspage import incident, update

RENDERER = Renderer(read_templates(default_templates_dir()))
PAGE = PageInfo("example", "https://example.com")


def render(view: IncidentView) -> Rendered:
    return RENDERER.body(incident_job(view, PAGE, hosts=link_hosts(PAGE.url)))


STATUSES = ["investigating", "identified", "monitoring", "resolved", "postmortem"]
BASELINE = datetime(2026, 10, 7, 12, 0, tzinfo=UTC)


@dataclass
class Model:
    """The status page as the test changes it."""

    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    minute: int = 0

    def snapshot(self) -> dict[str, Any]:
        shown = [i for key, i in self.incidents.items() if key not in self.hidden]
        return {"incidents": shown}


operation = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("update"), st.sampled_from(["a", "b", "c"]), st.sampled_from(STATUSES)),
    st.tuples(st.just("edit"), st.sampled_from(["a", "b", "c"]), st.text(max_size=20)),
    st.tuples(
        st.just("rename"), st.sampled_from(["a", "b", "c"]), st.text(min_size=1, max_size=15)
    ),
    st.tuples(
        st.just("impact"), st.sampled_from(["a", "b", "c"]), st.sampled_from(["minor", "critical"])
    ),
    st.tuples(st.just("hide"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("churn"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=20)),
)


def mutate(model: Model, op: tuple[Any, ...]) -> float:
    """Apply one operation; returns seconds of time that pass."""
    model.minute += 1
    kind, key = op[0], op[1]
    item = model.incidents.get(key) if isinstance(key, str) else None
    if kind == "open" and item is None:
        model.incidents[key] = incident(
            key, "investigating", [update(f"{key}0", "investigating", "start", model.minute)]
        )
    elif item is not None and kind == "update":
        uid = f"{key}{len(item['incident_updates'])}"
        item["incident_updates"].insert(0, update(uid, op[2], f"now {op[2]}", model.minute))
        item["status"] = op[2]
    elif item is not None and kind == "edit":
        item["incident_updates"][-1]["body"] = op[2] or "x"
    elif item is not None and kind == "rename":
        item["name"] = op[2]
    elif item is not None and kind == "impact":
        item["impact"] = op[2]
    elif item is not None and kind == "hide":
        model.hidden ^= {key}
    elif item is not None and kind == "churn":
        item["updated_at"] = f"2026-10-07T{model.minute % 24:02d}:00:00Z"
    return float(op[1]) if kind == "wait" else 1.0


@dataclass
class World:
    """Subjects, delivery rows and the comments 'on Reddit', all in memory."""

    known: dict[str, Tracked] = field(default_factory=dict)
    bodies: dict[str, Rendered] = field(default_factory=dict)
    subjects: dict[tuple[Kind, str], Subject] = field(default_factory=dict)
    rows: dict[str, DeliveryRow] = field(default_factory=dict)
    reddit: dict[str, str] = field(default_factory=dict)
    wasted_edits: int = 0

    def absorb(self, snapshot: dict[str, Any], first: bool) -> None:
        outcome = diff(
            self.known, parse_incidents_object(snapshot), baseline_at=None if first else BASELINE
        )
        self.known.update(outcome.changed)
        for key, tracked in outcome.changed.items():
            if not tracked.announce:
                continue
            body = render(tracked.view)
            self.bodies[key] = body
            self.subjects[(Kind.INCIDENT, key)] = Subject(
                Kind.INCIDENT, key, tracked.view.is_open, body.digest
            )
            if key not in self.rows:
                self.rows[key] = DeliveryRow(len(self.rows) + 1, "w", Kind.INCIDENT, key, "pending")

    def deliver(self, now: float, gap: float) -> float | None:
        for _ in range(50):
            result = plan(
                self.subjects, list(self.rows.values()), thread_id="t", now=now,
                min_edit_interval=gap,
            )  # fmt: skip
            if not result.actions:
                return result.wake_at
            for action in result.actions:
                self.execute(action, now)
        raise AssertionError("planner did not settle")

    def execute(self, action: Any, now: float) -> None:
        assert isinstance(action, Post | Edit), action
        row = action.row
        assert row is not None, "an announced incident always has its row"
        body = self.bodies[row.key]
        if isinstance(action, Post):
            claimed = machine.claim(row, "t", now)
            comment_id = f"c{len(self.reddit)}"
            assert all(c != comment_id for c in self.reddit), "second post for one incident"
            self.reddit[comment_id] = body.body
            comment = PostedComment(comment_id, "/" + comment_id, now)
            self.rows[row.key] = machine.answered(claimed, comment, body.digest, now)
        else:
            assert row.comment_id is not None
            if self.reddit[row.comment_id] == body.body:
                self.wasted_edits += 1
            self.reddit[row.comment_id] = body.body
            self.rows[row.key] = machine.edited(row, body.digest, now)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operations=st.lists(operation, max_size=40),
    gap=st.sampled_from([0.0, 5.0]),
    deliver_every=st.integers(min_value=1, max_value=3),
)
def test_edits_always_change_text_and_comments_end_at_latest_state(
    operations: list[tuple[Any, ...]], gap: float, deliver_every: int
) -> None:
    model, world, now = Model(), World(), 0.0
    world.absorb(model.snapshot(), first=True)
    for number, op in enumerate(operations):
        now += mutate(model, op)
        world.absorb(model.snapshot(), first=False)
        if number % deliver_every == 0:
            world.deliver(now, gap)
    now += gap + 1
    world.deliver(now, gap)
    assert world.wasted_edits == 0
    for key, row in world.rows.items():
        latest = render(world.known[key].view).body
        assert world.bodies[key].body == latest
        assert world.reddit[row.comment_id or ""] == latest
    assert len(world.reddit) == len(world.rows)  # one comment per announced incident


junk = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=4),
    st.dictionaries(
        st.sampled_from(["id", "status", "body", "created_at", "incident_updates"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=4), st.just([])),
        max_size=4,
    ),
)
junk_operation = st.one_of(
    operation,
    st.tuples(st.just("junk update"), st.sampled_from(["a", "b", "c"]), junk),
    st.tuples(st.just("junk incident"), junk),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(junk_operation, max_size=40))
def test_a_parse_cache_and_a_view_memo_give_what_a_fresh_parse_gives(
    operations: list[tuple[Any, ...]],
) -> None:
    """Whatever the page does between two polls (entries that are not incidents or
    updates included), parsing with the source's cache, and the views remembered, are
    what parsing afresh gives."""
    model, cache, memo = Model(), ParseCache(), ViewMemo()
    extra: list[Any] = []
    for op in operations:
        if op[0] == "junk update" and op[1] in model.incidents:
            model.incidents[op[1]]["incident_updates"].append(copy.deepcopy(op[2]))
        elif op[0] == "junk incident":
            extra.append(copy.deepcopy(op[1]))
        elif not op[0].startswith("junk"):
            mutate(model, op)
        snapshot = model.snapshot()
        snapshot["incidents"] = [*snapshot["incidents"], *extra]
        fresh = parse_incidents_object(copy.deepcopy(snapshot))
        cached = parse_incidents_object(copy.deepcopy(snapshot), cache)
        assert cached == fresh
        unique = list({i.id: i for i in reversed(cached.incidents)}.values())
        assert memo.views(unique) == [view_of(i) for i in unique]


def test_only_what_changed_is_validated_again() -> None:
    """An incident whose JSON did not change is the very object parsed last time; in one
    that changed, so is every update whose JSON did not change."""
    first = [update(f"u{n}", "investigating", f"Update {n}.", n) for n in range(3)]
    document = {
        "incidents": [incident(key, "investigating", copy.deepcopy(first)) for key in "abc"]
    }
    cache = ParseCache()
    before = parse_incidents_object(copy.deepcopy(document), cache).incidents
    document["incidents"][1]["incident_updates"].insert(0, update("u3", "identified", "Found.", 3))
    after = parse_incidents_object(copy.deepcopy(document), cache).incidents
    assert after[0] is before[0]
    assert after[2] is before[2]
    assert after[1] is not before[1]
    assert after[1].incident_updates[1:] == before[1].incident_updates
    assert all(
        new is old
        for new, old in zip(after[1].incident_updates[1:], before[1].incident_updates, strict=True)
    )
    memo = ViewMemo()
    views = memo.views(before)
    again = memo.views(after)
    assert again[0] is views[0]
    assert again[1] == view_of(after[1])
    # In the changed incident, the updates it had keep their views (made once).
    kept = {u.id: u for u in views[1].updates}
    assert all(u is kept[u.id] for u in again[1].updates if u.id != "u3")
