"""Settled incidents older than ``MODBOT_KEEP_DAYS`` leave the state: their bodies and
deliveries go, one line stays, and their comments are never touched again, even when
the page lists them again (an edit, a postmortem) or their comment is still in the
megathread when the bot starts."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from modbot.app import App
from modbot.config.settings import Settings
from modbot.core import machine, outbox
from modbot.core.records import Kind
from modbot.store import open_store
from tests.conftest import StateLocation, reddit_settings
from tests.fakes.reddit import FakeReddit
from tests.fakes.statuspage import FakeStatuspage, incident, update
from tests.test_reddit_delivery import stage

DAY = 86_400.0


def postmortem(incident_id: str) -> dict[str, Any]:
    """The incident of ``stage(3)``, with a postmortem published long after."""
    resolved = stage(3, incident_id)
    note = update(f"{incident_id}pm", "postmortem", "What happened, in full.", 90 * 24 * 60)
    return incident(incident_id, "postmortem", [note, *resolved["incident_updates"]])


def edits_of(reddit: FakeReddit, comment_id: str) -> int:
    return sum(
        1
        for call in reddit.calls
        if call.path.rstrip("/") == "/api/editusertext"
        and call.form.get("thing_id") == f"t1_{comment_id}"
    )


async def test_a_pruned_incident_is_never_announced_or_edited_again(
    statuspage: FakeStatuspage,
    reddit: FakeReddit,
    make_settings: Callable[..., Settings],
    state_location: StateLocation,
) -> None:
    now = [1_800_000_000.0]
    settings = make_settings(
        statuspage_url=statuspage.url, database=state_location, **reddit_settings(reddit)
    )
    assert settings.keep_days == 90
    statuspage.set_incidents([stage(0, "old")])
    async with App(settings, dry_run=False, out=io.StringIO(), clock=lambda: now[0]) as app:
        await app.run_once()
        (comment,) = reddit.comments_by("modbot")
        for page in ([stage(3, "old")], [stage(0, "new")]):  # resolved; then off the page
            statuspage.set_incidents(page)
            now[0] += 60
            await app.run_once()
        assert "Resolved" in reddit.comments[comment.id].body
        now[0] += 91 * DAY
        await app.run_once()  # a day's prune: "old" is settled, 91 days ago
        assert await app.store.deliveries(app.watch, Kind.INCIDENT, ["old"]) == []
        kept = (await app.store.tracked(app.watch, ["old"]))["old"]
        assert not kept.announce
        assert kept.view.updates == ()
        assert [row.incident_id for row in await app.store.recent_settled(app.watch, 10)] == []
        edited = edits_of(reddit, comment.id)
        statuspage.set_incidents([postmortem("old"), stage(0, "new")])
        now[0] += 60
        await app.run_once()
    async with App(settings, dry_run=False, out=io.StringIO(), clock=lambda: now[0]) as app:
        for _ in range(3):  # a start: its heal lists the thread's comments, "old"'s too
            now[0] += 60
            await app.run_once()
        assert await app.store.deliveries(app.watch, Kind.INCIDENT, ["old"]) == []
    assert edits_of(reddit, comment.id) == edited
    assert "Resolved" in reddit.comments[comment.id].body
    assert "What happened" not in reddit.comments[comment.id].body
    markers = [c.body.rsplit("\n", 1)[-1] for c in reddit.comments_by("modbot")]
    assert sum("old" in marker for marker in markers) == 1  # no second comment


async def test_an_incident_the_page_still_lists_is_kept(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    now = [1_800_000_000.0]
    settings = make_settings(statuspage_url=statuspage.url)
    statuspage.set_incidents([stage(0, "listed")])
    async with App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app:
        await app.run_once()
        statuspage.set_incidents([stage(3, "listed")])
        now[0] += 60
        await app.run_once()
        now[0] += 91 * DAY
        await app.run_once()
        kept = (await app.store.tracked(app.watch, ["listed"]))["listed"]
        assert kept.announce
        assert len(kept.view.updates) == 4


async def test_keep_days_zero_keeps_everything(
    statuspage: FakeStatuspage, make_settings: Callable[..., Settings]
) -> None:
    now = [1_800_000_000.0]
    settings = make_settings(statuspage_url=statuspage.url, keep_days=0)
    statuspage.set_incidents([stage(3, "gone")])
    async with App(settings, dry_run=True, out=io.StringIO(), clock=lambda: now[0]) as app:
        await app.run_once()
        statuspage.set_incidents([])
        now[0] += 3650 * DAY
        await app.run_once()
        assert (await app.store.tracked(app.watch, ["gone"]))["gone"].view.updates


async def test_old_settled_messages_lose_their_text_and_keep_their_key(
    state_location: StateLocation,
) -> None:
    """A reply or wiki message settled before ``MODBOT_KEEP_DAYS`` keeps its row (its key
    is never recorded, nor sent, again) and loses its text; one with a step left, or a
    recent one, is kept whole."""
    store = await open_store(state_location)
    try:
        old, _ = await store.add_message(
            outbox.private_message("old", "alice", "Hi", "A long text. " * 50, 10.0)
        )
        claimed = machine.claim_message(old, 11.0)
        assert await store.step(old, claimed)
        assert await store.step(claimed, machine.message_answered(claimed, "t4_x", 12.0))
        waiting, _ = await store.add_message(
            outbox.private_message("waiting", "bob", "Hi", "Still to send.", 10.0)
        )
        recent, _ = await store.add_message(
            outbox.private_message("recent", "carol", "Hi", "Sent lately.", 95 * DAY)
        )
        claimed = machine.claim_message(recent, 95 * DAY)
        assert await store.step(recent, claimed)
        assert await store.step(claimed, machine.message_answered(claimed, "t4_y", 95 * DAY))
        await store.prune("default", closed_before=5 * DAY, now=95 * DAY)
        pruned = await store.message("old")
        assert pruned is not None
        assert (pruned.state, pruned.sent_id, pruned.body) == ("sent", "t4_x", "")
        again, new = await store.add_message(
            outbox.private_message("old", "alice", "Hi", "A long text.", 96 * DAY)
        )
        assert not new
        assert again.state == "sent"
        assert (await store.message("waiting")) == waiting
        kept = await store.message("recent")
        assert kept is not None
        assert "Sent lately." in kept.body
    finally:
        await store.close()
