"""Pages that move to another platform: the same incidents under new ids keep their one
comment, and nothing is resolved by a page falling silent.

The rules first (``core.moves``), then the whole bot against a page that moves
(``tests/fakes/moving.py``) with real asyncpraw and the fake Reddit.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench import moves as bench_moves
from modbot.app import App
from modbot.config.settings import Settings
from modbot.config.watches import Watch, load_watches
from modbot.core.feed import parse_incidents_object
from modbot.core.incidents import view_of
from modbot.core.markdown import marker_of
from modbot.core.moves import MOVED, Alias, closed_by_move, match, normalised_name, translate
from modbot.core.records import Tracked, Validators
from modbot.errors import ConfigError, FeedGone, FeedUnavailable
from modbot.shell.statusview import status_text
from modbot.sources.choose import AutoSource, make_http_client
from modbot.store import open_store
from tests.conftest import expected_body, expire_waits_at, reddit_settings
from tests.fakes.incidentio import FakeIncidentio
from tests.fakes.moving import INCIDENTS_PATH, MovingPage, compat, renamed, ulid
from tests.fakes.reddit import Comment, FakeReddit
from tests.fakes.site import FakeSite
from tests.fakes.statuspage import incident, update

OLD = "abcdefghijkl"  # a Statuspage id
T = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def parsed(*incidents: dict) -> list:
    return parse_incidents_object({"incidents": list(incidents)}).incidents


def tracked(item: dict) -> Tracked:
    return Tracked(view_of(parsed(item)[0]), announce=True)


def opened(ident: str = OLD, name: str = "Elevated errors on Claude Opus") -> dict:
    return incident(
        ident, "investigating", [update("u1", "investigating", "Looking.", 1)], name=name
    )


# --- the rules --------------------------------------------------------------------------------


def test_names_match_whatever_their_case_spacing_and_punctuation() -> None:
    assert normalised_name(" Elevated  errors: Claude-Opus ") == normalised_name(
        "elevated errors claude opus"
    )


def test_the_same_name_starting_within_30_minutes_is_the_same_incident() -> None:
    new = renamed(opened(), ulid("n"))
    for update_ in new["incident_updates"]:
        update_["created_at"] = update_["display_at"] = "2026-10-07T13:25:00Z"
    new["created_at"] = "2026-10-07T13:25:00Z"
    assert match({OLD: tracked(opened())}, parsed(new)) == {new["id"]: OLD}
    new["created_at"] = "2026-10-07T13:45:00Z"  # 44 minutes after the old one's start
    assert match({OLD: tracked(opened())}, parsed(new)) == {}


def test_another_name_is_another_incident_unless_a_link_names_the_old_id() -> None:
    new = renamed(opened(name="API errors"), ulid("n"))
    assert match({OLD: tracked(opened())}, parsed(new)) == {}
    new["incident_updates"][0]["body"] = f"Moved from https://status.example.com/incidents/{OLD}"
    assert match({OLD: tracked(opened())}, parsed(new)) == {new["id"]: OLD}


def test_each_known_incident_is_taken_once_by_the_closest_start() -> None:
    near, far = renamed(opened(), ulid("near")), renamed(opened(), ulid("far"))
    far["created_at"] = "2026-10-07T13:20:00Z"
    assert match({OLD: tracked(opened())}, parsed(far, near)) == {near["id"]: OLD}


def test_a_translated_snapshot_keeps_the_old_id_and_the_updates_the_new_platform_lacks() -> None:
    before = incident(
        OLD,
        "identified",
        [update("u2", "identified", "Found it.", 20), update("u1", "investigating", "Looking.", 1)],
    )
    # The new platform brought over one of the two updates (in Markdown) and added one.
    after = incident(
        ulid("n"),
        "monitoring",
        [
            update(ulid("n3"), "monitoring", "A fix is out.", 40),
            update(ulid("n2"), "identified", "**Found** it", 20),
        ],
    )
    alias = Alias(after["id"], OLD, view_of(parsed(before)[0]))
    (read,) = translate(
        parse_incidents_object({"incidents": [compat(after)]}), {after["id"]: alias}
    ).incidents
    view = view_of(read)
    assert view.id == OLD
    assert view.status == "monitoring"
    assert [u.body for u in view.updates] == ["Looking.", "**Found** it", "A fix is out."]


def test_an_incident_the_new_platform_does_not_list_is_closed_as_moved_not_resolved() -> None:
    closed = closed_by_move(
        tracked(opened()),
        before="statuspage",
        after="incidentio",
        page_url="https://status.example.com",
        at=T + timedelta(hours=1),
    )
    view = closed.view
    assert view.status == MOVED
    assert not view.is_open
    assert view.resolved_at is None
    assert "moved from Atlassian Statuspage to incident.io" in view.updates[-1].body
    # Closing it again (a second poll of the move) adds no second line.
    again = closed_by_move(
        closed,
        before="statuspage",
        after="incidentio",
        page_url="https://status.example.com",
        at=T + timedelta(hours=2),
    )
    assert len(again.view.updates) == len(view.updates)


# --- the whole bot, against a page that moves --------------------------------------------------


class Bot:
    """One bot (real asyncpraw) watching ``page``, posting into the fake Reddit."""

    def __init__(self, page: MovingPage, reddit: FakeReddit, settings: Settings) -> None:
        self.page, self.reddit, self.settings = page, reddit, settings

    @asynccontextmanager
    async def running(self) -> AsyncIterator[App]:
        async with App(self.settings, dry_run=False, out=io.StringIO()) as app:
            yield app

    async def polls(self, count: int = 1) -> None:
        """``count`` runs of ``run --once``, each in a process of its own (a restart
        between any two: nothing survives in memory)."""
        for _ in range(count):
            async with self.running() as app:
                await app.run_once()

    def comments(self) -> list[Comment]:
        thread = self.reddit.megathread.id  # type: ignore[attr-defined]
        return [c for c in self.reddit.comments_by("modbot") if c.submission_id == thread]

    def only_comment(self) -> Comment:
        found = self.comments()
        assert len(found) == 1, [c.body[:80] for c in found]
        return found[0]

    async def store(self) -> Any:
        return await open_store(self.settings.database)


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with FakeSite() as served:
        yield served


@pytest.fixture
def bot(
    site: FakeSite, reddit: FakeReddit, make_settings: Callable[..., Settings]
) -> Callable[..., Bot]:
    def make(**overrides: Any) -> Bot:
        values = {"statuspage_url": site.url, "move_threshold": 3, **reddit_settings(reddit)}
        return Bot(MovingPage(site), reddit, make_settings(**(values | overrides)))

    return make


def expected(item: dict, home: str, alias: Alias | None = None) -> str:
    (read,) = parsed(item)
    if alias is not None:
        (read,) = translate(
            parse_incidents_object({"incidents": [item]}), {alias.alias_id: alias}
        ).incidents
    return expected_body(view_of(read), home, subreddit="ClaudeAI")


def stages(ident: str = OLD) -> list[dict]:
    """An incident's life on its first platform: investigating, then identified."""
    first = update("u1", "investigating", "We are looking into elevated errors.", 1)
    second = update("u2", "identified", "The cause is a bad deploy; rolling back.", 20)
    return [
        incident(ident, "investigating", [first], name="Elevated errors on Claude Opus"),
        incident(ident, "identified", [second, first], name="Elevated errors on Claude Opus"),
    ]


def on_incidentio(before: dict, status: str, *more: dict) -> dict:
    """``before`` as incident.io lists it after taking it over: a new id, its updates
    brought over under new ids, ``more`` added on top."""
    moved = renamed(incident(before["id"], status, [*more, *before["incident_updates"]],
                             name=before["name"]), ulid(before["id"]))  # fmt: skip
    return compat(moved)


async def test_a_silent_move_during_an_open_incident_leaves_one_comment_current(
    bot: Callable[..., Bot],
) -> None:
    watching = bot()
    for step in stages():
        watching.page.statuspage([step])
        await watching.polls()
    posted = watching.only_comment()
    # OpenAI's move: the same address answers, now incident.io's compatible layer:
    # other ids, no Statuspage header.
    fix = update("u3", "monitoring", "A fix has been rolled out; watching.", 40)
    moved = on_incidentio(stages()[1], "monitoring", fix)
    watching.page.incidentio([moved])
    await watching.polls()
    comment = watching.only_comment()
    assert comment.id == posted.id
    assert marker_of(comment.body) == f"inc-{OLD}"  # the marker keeps the id it had
    old_view = view_of(parsed(stages()[1])[0])
    alias = Alias(moved["id"], OLD, old_view)
    assert comment.body == expected(moved, watching.page.url, alias)
    resolved = on_incidentio(
        stages()[1], "resolved", update("u4", "resolved", "All good now.", 60), fix
    )
    watching.page.incidentio([resolved])
    await watching.polls(2)
    comment = watching.only_comment()
    assert comment.body == expected(resolved, watching.page.url, alias)
    assert "🟢 Resolved" in comment.body
    store = await watching.store()
    try:
        (move,) = await store.moves("default")
        assert (move.before, move.after, move.adopted, move.closed) == (
            "statuspage", "incidentio", 1, 0
        )  # fmt: skip
        assert move.alerted_at is None  # for the moderators' notice to pick up
        assert (await store.feed_state("default")).platform == "incidentio"
        # ... and it is read incident.io's way from then on.
        assert (await store.health("default")).source_kind == "incidentio"
        screen = await status_text(
            store, "default", url=watching.page.url, subreddit="ClaudeAI", dry_run=False, now=0
        )
        assert "platform:    incident.io (moved from Atlassian Statuspage on " in screen
        assert "moderators not told yet" in screen
    finally:
        await store.close()


async def test_the_moderators_are_told_of_a_move_by_modmail_once_and_status_says_so(
    bot: Callable[..., Bot], reddit: FakeReddit
) -> None:
    reddit.add_moderator("modbot", ["all"])  # new modmail is for moderators
    watching = bot()
    watching.page.statuspage([stages()[1]])
    await watching.polls()
    watching.page.incidentio([on_incidentio(stages()[1], "identified")])
    await watching.polls(3)  # the move, then two more runs (each a process of its own)
    (conversation,) = reddit.modmail()
    (told,) = conversation.messages
    assert "moved to another platform" in told.body
    assert "from Atlassian Statuspage to incident.io" in told.body
    assert "What to do" in told.body
    store = await watching.store()
    try:
        (move,) = await store.moves("default")
        assert move.alerted_at is not None  # marked once the alert went out
        screen = await status_text(
            store, "default", url=watching.page.url, subreddit="ClaudeAI", dry_run=False, now=0
        )
        assert "moderators told" in screen
    finally:
        await store.close()


def test_the_threshold_is_a_setting_and_a_watch_key(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    assert load_watches(make_settings())[0].move_threshold == 5
    settings = make_settings(move_threshold=2)
    assert load_watches(settings)[0].move_threshold == 2
    path = tmp_path / "modbot.toml"
    path.write_text('[[watch]]\nname = "a"\nprovider = "openai"\nmove_threshold = 9\n'
                    '[[watch]]\nname = "b"\nprovider = "anthropic"\n')  # fmt: skip
    first, second = load_watches(make_settings(config=path, move_threshold=3))
    assert (first.move_threshold, second.move_threshold) == (9, 3)
    path.write_text('[[watch]]\nname = "a"\nprovider = "openai"\nmove_threshold = 0\n')
    with pytest.raises(ConfigError, match="move_threshold"):
        load_watches(make_settings(config=path))


@pytest.mark.parametrize("where_the_json_was", ["a script shell", "nothing (404)"])
async def test_a_page_that_moves_loudly_is_read_again_after_the_threshold(
    bot: Callable[..., Bot], caplog: pytest.LogCaptureFixture, where_the_json_was: str
) -> None:
    watching = bot(move_threshold=3)
    for step in stages():
        watching.page.statuspage([step])
        await watching.polls()
    posted = watching.only_comment().body
    # The page moves to Datadog: a script shell where Statuspage's JSON and feed were,
    # the incident in /config.json under a new id, with only the new platform's update.
    moved = renamed(
        incident(OLD, "monitoring", [update("d3", "monitoring", "Recovering.", 40)],
                 name="Elevated errors on Claude Opus"),
        "2a3d415a-1eed-417f-b269-6e308a7f7990",
    )  # fmt: skip
    moved["created_at"] = stages()[1]["created_at"]
    watching.page.datadog([moved])
    if where_the_json_was == "nothing (404)":
        for path in (INCIDENTS_PATH, "/history.atom"):
            del watching.page.site.answers[path]
    async with watching.running() as app:  # one process: the failures count in memory
        for _ in range(2):
            report = await app.run_once()
            assert not report.ok
            assert watching.only_comment().body == posted  # nothing resolved meanwhile
        report = await app.run_once()  # the third failure in a row: another platform
        assert report.ok
    comment = watching.only_comment()
    assert "Recovering." in comment.body
    assert "We are looking into elevated errors." in comment.body  # carried over
    assert "The cause is a bad deploy; rolling back." in comment.body
    assert marker_of(comment.body) == f"inc-{OLD}"
    said = [r.getMessage() for r in caplog.records if "the page moved from" in r.getMessage()]
    assert len(said) == 1  # said once (the moderators' alert is logged as an alert)
    assert "moved from Atlassian Statuspage to Datadog status pages" in said[0]
    store = await watching.store()
    try:
        (move,) = await store.moves("default")
        assert (move.before, move.after, move.adopted) == ("statuspage", "datadog", 1)
    finally:
        await store.close()
    # A restart reads the page where it moved at once, without failing again.
    await watching.polls()
    assert "Recovering." in watching.only_comment().body


async def test_html_for_an_hour_then_back_is_no_move_and_resolves_nothing(
    bot: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    watching = bot(source_kind="incidentio", move_threshold=2)
    ident = ulid("openai")
    first, second = (compat(renamed(step, ident)) for step in stages(ident))
    watching.page.incidentio([first])
    await watching.polls()
    posted = watching.only_comment().body
    watching.page.challenge()
    async with watching.running() as app:
        for _ in range(12):  # an hour of polls, at this test's pace
            assert not (await app.run_once()).ok
        assert watching.only_comment().body == posted
        watching.page.incidentio([second])
        assert (await app.run_once()).ok
    comment = watching.only_comment()
    assert comment.body == expected(second, watching.page.url)
    assert any("no other platform answers" in r.getMessage() for r in caplog.records)
    store = await watching.store()
    try:
        assert await store.moves("default") == []
        assert (await store.feed_state("default")).platform == "incidentio"
    finally:
        await store.close()


async def test_an_incident_the_page_stops_listing_is_never_resolved_by_silence(
    bot: Callable[..., Bot],
) -> None:
    watching = bot()
    watching.page.statuspage([stages()[1]])
    await watching.polls()
    posted = watching.only_comment().body
    watching.page.statuspage([])  # no move: the page just stops listing it
    await watching.polls(2)
    assert watching.only_comment().body == posted
    store = await watching.store()
    try:
        (row,) = await store.open_incidents("default")
        assert row.incident_id == OLD
    finally:
        await store.close()


async def test_after_a_move_an_incident_the_new_platform_does_not_list_is_closed_as_moved(
    bot: Callable[..., Bot],
) -> None:
    watching = bot()
    watching.page.statuspage([stages()[1]])
    await watching.polls()
    other = compat(renamed(incident("x", "resolved", [update("r", "resolved", "Old.", -900)],
                                    name="Something long ago"), ulid("other")))  # fmt: skip
    watching.page.incidentio([other])
    await watching.polls()
    comment = watching.only_comment()  # the old incident's; the resolved one is history
    assert "No longer followed: the status page moved" in comment.body
    assert "moved from Atlassian Statuspage to incident.io" in comment.body
    assert "Resolved" not in comment.body
    # The new platform lists it after all (re-created, same name, same start): the
    # comment is followed again, and resolved when the source says so.
    late = on_incidentio(stages()[1], "resolved", update("u9", "resolved", "Fixed.", 50))
    watching.page.incidentio([late, other])
    await watching.polls()
    comment = watching.only_comment()
    assert "🟢 Resolved" in comment.body
    assert "Fixed." in comment.body


async def test_a_post_in_flight_when_the_page_moves_is_found_by_its_old_marker(
    bot: Callable[..., Bot],
) -> None:
    watching = bot()
    watching.reddit.fail_next("POST", "/api/comment/", 503, when="after")  # stored, unanswered
    watching.page.statuspage([stages()[0]])
    await watching.polls()
    assert len(watching.comments()) == 1
    moved = on_incidentio(stages()[1], "identified")
    watching.page.incidentio([moved])
    expire_waits_at(watching.settings.database)
    await watching.polls(2)
    comment = watching.only_comment()
    alias = Alias(moved["id"], OLD, view_of(parsed(stages()[0])[0]))
    assert comment.body == expected(moved, watching.page.url, alias)


async def test_a_crash_after_the_adoption_was_saved_edits_the_same_comment(
    bot: Callable[..., Bot],
) -> None:
    watching = bot()
    watching.page.statuspage([stages()[0]])
    await watching.polls()
    moved = on_incidentio(stages()[1], "identified")
    watching.page.incidentio([moved])
    async with watching.running() as app:
        await app.first.poller.poll()  # saved; the process dies before it delivers
    store = await watching.store()
    try:
        assert set(await store.aliases("default", [moved["id"]])) == {moved["id"]}
    finally:
        await store.close()
    await watching.polls()
    comment = watching.only_comment()
    alias = Alias(moved["id"], OLD, view_of(parsed(stages()[0])[0]))
    assert comment.body == expected(moved, watching.page.url, alias)


async def test_a_maintenance_open_before_a_move_is_not_completed_by_the_new_summary(
    bot: Callable[..., Bot],
) -> None:
    # incident.io's summary lists every unfinished maintenance, so one missing from it
    # has completed: but not one of the old platform's, which it never listed.
    watching = bot(maintenance=True)
    work = incident("mntabcdefghi", "in_progress", [update("m1", "in_progress", "Upgrading.", 1)],
                    name="Database upgrade")  # fmt: skip
    watching.page.statuspage([], maintenances=[work])
    await watching.polls()
    assert "Maintenance in progress" in watching.only_comment().body
    watching.page.clear()
    FakeIncidentio(watching.page.site)  # the captured page: its own incidents and summary
    await watching.polls(2)  # read the Statuspage way, then incident.io's, summary and all
    comment = watching.only_comment()
    assert "completed" not in comment.body.lower()
    assert "moved from Atlassian Statuspage to incident.io" in comment.body


@pytest.mark.slow
async def test_bench_moves_every_scenario_once_meets_its_targets() -> None:
    outcomes = await bench_moves.measure(runs=1)
    assert all(o.runs == 1 for o in outcomes.values())
    assert bench_moves.succeeded(outcomes), [f for o in outcomes.values() for f in o.failures]


async def test_a_page_no_platform_answers_for_is_asked_less_and_less_often(
    site: FakeSite, make_settings: Callable[..., Settings]
) -> None:
    # Mistral's page: a challenge only a browser passes, at every address a bot tries.
    site.misbehave(INCIDENTS_PATH, "status", 403)
    settings = make_settings(statuspage_url=site.url)
    async with App(settings, dry_run=True, out=io.StringIO()) as app:
        reports = [await app.first.poller.poll() for _ in range(8)]
    assert not any(r.ok for r in reports)
    assert all("cannot tell what kind of status page" in r.message for r in reports)
    # Asked on polls 1, 3 and 6 (after gaps of 1 and 2 polls), not on all eight.
    assert site.requests[INCIDENTS_PATH] == 3


async def test_an_outage_is_not_a_move(site: FakeSite) -> None:
    """5xx and timeouts are a page that is down, not one that moved: no detection."""
    page = MovingPage(site)
    page.statuspage([stages()[1]])
    watch = Watch(
        name="w", url=site.url, kind="auto", subreddit=None, megathread_title="M",
        components=(), timezone=None, templates_dir=None, poll_interval=1.0,
        maintenance=False, move_threshold=2,
    )  # fmt: skip
    async with make_http_client(2.0) as http:
        source = AutoSource(watch, http, attempts=1)
        assert (await source.fetch(Validators())).platform == "statuspage"
        site.misbehave(INCIDENTS_PATH, "status", 503)
        for _ in range(6):
            with pytest.raises(FeedUnavailable):
                await source.fetch(Validators())
        detected = site.requests[INCIDENTS_PATH]
        assert site.requests["/config.json"] == 0  # no detection ran
        site.misbehave(INCIDENTS_PATH, "status", 404)
        for _ in range(2):
            with pytest.raises(FeedGone):
                await source.fetch(Validators())
        assert site.requests["/config.json"] == 1  # the second 404 in a row: detection
        assert site.requests[INCIDENTS_PATH] == detected + 3
