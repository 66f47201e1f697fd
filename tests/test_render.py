"""Rendering comments from views with sandboxed, capped, validated templates."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from modbot import default_templates_dir
from modbot.core.markdown import marker_of
from modbot.core.records import ComponentView, IncidentView, PageInfo, Rendered, UpdateView
from modbot.core.render import (
    Renderer,
    format_time,
    incident_job,
    link_hosts,
    notice_job,
    sample_jobs,
)
from modbot.errors import TemplateError
from modbot.rendering.files import read_templates

PAGE = PageInfo(name="status.example.com", url="https://status.example.com")
HOSTS = link_hosts(PAGE.url)
T = datetime(2026, 10, 7, 14, 0, tzinfo=UTC)


def view(
    status: str = "investigating", updates: int = 1, body: str = "We are looking."
) -> IncidentView:
    return IncidentView(
        id="abc123",
        name="Elevated errors",
        status=status,
        impact="major",
        shortlink="https://stspg.io/abc",
        created_at=T,
        resolved_at=T + timedelta(hours=1) if status in ("resolved", "postmortem") else None,
        components=(ComponentView("API", "partial_outage"),),
        updates=tuple(
            UpdateView(f"u{i}", status, f"{body} ({i})", T + timedelta(minutes=i))
            for i in range(updates)
        ),
    )


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    return folder


class Comments:
    """The shipped templates, rendered in this process as the worker would."""

    def __init__(self, folder: Path | None = None, max_length: int = 10_000) -> None:
        self.renderer = Renderer(read_templates(folder or default_templates_dir()))
        self.max_length = max_length

    def render_incident(self, incident: IncidentView) -> Rendered:
        job = incident_job(
            incident, PAGE, hosts=HOSTS, subreddit="ClaudeAI", max_length=self.max_length
        )
        return self.renderer.body(job)

    def render_manual(self, text: str, *, note_id: str) -> Rendered:
        return self.renderer.body(
            notice_job(text, note_id, PAGE, hosts=HOSTS, subreddit="ClaudeAI")
        )


def check(folder: Path) -> None:
    """What the render worker does before it accepts a set of templates."""
    templates = read_templates(folder)
    renderer = Renderer(templates)
    for name, context in sample_jobs(templates):
        renderer.render(name, context, 10_000)


@pytest.fixture
def renderer() -> Comments:
    return Comments()


@pytest.mark.parametrize(
    "status", ["investigating", "identified", "monitoring", "resolved", "postmortem", "weird_new"]
)
def test_every_status_renders_title_status_impact_components_and_link(
    renderer: Comments, status: str
) -> None:
    body = renderer.render_incident(view(status)).body
    assert "Elevated errors" in body
    assert "Impact: Major" in body
    assert "API" in body
    assert "https://stspg.io/abc" in body
    assert "Oct 07, 14:00 UTC" in body
    assert marker_of(body) == "inc-abc123"
    assert body.rstrip().endswith("[](#modbot-inc-abc123)")


def test_postmortem_links_the_incident_page(renderer: Comments) -> None:
    body = renderer.render_incident(view("postmortem")).body
    assert "https://status.example.com/incidents/abc123" in body
    assert "postmortem" in body.lower()


def test_postmortem_text_is_shown_when_the_feed_has_it(renderer: Comments) -> None:
    with_text = view("postmortem").__class__(
        **{**view("postmortem").__dict__, "postmortem_body": "Root cause: u/x"}
    )
    body = renderer.render_incident(with_text).body
    assert r"Root cause: u\/x" in body


def test_updates_are_newest_first(renderer: Comments) -> None:
    body = renderer.render_incident(view(updates=3)).body
    assert body.index(r"\(2\)") < body.index(r"\(1\)") < body.index(r"\(0\)")


def test_footer_discloses_the_bot_and_links_modmail(renderer: Comments) -> None:
    body = renderer.render_incident(view()).body
    assert "bot" in body.lower()
    assert "message/compose?to=/r/ClaudeAI" in body


def test_time_zone_is_shown_next_to_utc() -> None:
    assert format_time(T, None) == "Oct 07, 14:00 UTC"
    assert format_time(T, ZoneInfo("America/Los_Angeles")) == "Oct 07, 07:00 PDT / 14:00 UTC"


def test_feed_text_cannot_ping_link_or_forge_the_marker(renderer: Comments) -> None:
    evil = "Hi u/spez [x](https://evil) # big\n[](#modbot-inc-other)"
    body = renderer.render_incident(view(body=evil)).body
    assert marker_of(body) == "inc-abc123"
    assert "u/spez" not in body
    assert "[x](" not in body


def test_long_incidents_drop_oldest_updates_with_a_note(renderer: Comments) -> None:
    rendered = renderer.render_incident(view(updates=60, body="word " * 60))
    assert len(rendered.body) <= 10_000
    assert rendered.omitted_updates > 0
    assert f"{rendered.omitted_updates} older updates not shown" in rendered.body
    assert r"\(59\)" in rendered.body  # the newest is kept
    assert r"\(0\)" not in rendered.body


def test_a_smaller_subreddit_limit_is_respected() -> None:
    small = Comments(max_length=2_000)
    assert len(small.render_incident(view(updates=30, body="word " * 30)).body) <= 2_000


def test_same_view_renders_the_same_text(renderer: Comments) -> None:
    assert renderer.render_incident(view()).digest == renderer.render_incident(view()).digest


def test_manual_text_is_data_not_template_code(renderer: Comments) -> None:
    body = renderer.render_manual("{{ 7*7 }} {% raw %} u/spez **hi**", note_id="n1").body
    assert "49" not in body
    assert r"{{ 7\*7 }}" in body
    assert r"u\/spez" in body
    assert marker_of(body) == "note-n1"


def test_syntax_error_names_file_and_line(templates: Path) -> None:
    (templates / "incident.md.j2").write_text("line one\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"incident\.md\.j2, line 2"):
        check(templates)


def test_runtime_error_names_file_and_line(templates: Path) -> None:
    (templates / "incident.md.j2").write_text("one\ntwo {{ incident.no_such_field }}\n")
    with pytest.raises(TemplateError, match=r"incident\.md\.j2, line 2.*no_such_field"):
        check(templates)


def test_sandbox_blocks_unsafe_access(templates: Path) -> None:
    (templates / "incident.md.j2").write_text("{{ incident.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match=r"incident\.md\.j2"):
        check(templates)


def test_output_is_capped(templates: Path) -> None:
    (templates / "incident.md.j2").write_text("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}")
    with pytest.raises(TemplateError, match="output exceeds"):
        check(templates)


def test_missing_template_is_reported(templates: Path) -> None:
    (templates / "manual.md.j2").unlink()
    with pytest.raises(TemplateError, match=r"manual\.md\.j2"):
        check(templates)


def test_any_number_of_long_updates_renders_newest_first() -> None:
    comments = Comments()
    for count, size in ((13, 4_000), (400, 100), (3, 30_000)):
        rendered = comments.render_incident(view(updates=count, body="x" * size))
        assert len(rendered.body) <= 10_000
        assert rendered.omitted_updates > 0
        newest = format_time(T + timedelta(minutes=count - 1), None)
        assert newest in rendered.body


def test_a_lone_surrogate_a_template_writes_itself_cannot_reach_a_body(templates: Path) -> None:
    (templates / "incident.md.j2").write_text("{{ '\\ud800' }} {{ incident.name }}")
    job = incident_job(view(), PAGE, hosts=HOSTS)
    body = Renderer(read_templates(templates)).body(job).body
    body.encode("utf-8")
    assert body.startswith("\ufffd Elevated errors")
