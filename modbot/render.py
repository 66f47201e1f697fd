"""Turning incident views and notices into comment bodies with moderators' templates.

Templates run in Jinja2's ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``
and receive plain data only (dicts, lists, strings, numbers), every string from the
feed already escaped for Reddit markdown. Output is capped while it is generated, the
body is kept under the comment length limit by dropping the oldest updates, and the
bot appends its hidden marker itself, so a template can neither forget nor forge it.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modbot import markdown
from modbot.errors import TemplateError
from modbot.incidents import ComponentView, IncidentView, UpdateView

log = logging.getLogger(__name__)

INCIDENT_TEMPLATE = "incident.md.j2"
MANUAL_TEMPLATE = "manual.md.j2"
OUTPUT_CAP = 50_000  # characters a template may produce before it is stopped
MAX_UPDATE_CHARS = 4_000
MAX_TITLE_CHARS = 300

STATUS_LABELS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "postmortem": "Postmortem",
    "update": "Update",
}
IMPACT_LABELS = {"none": "None", "minor": "Minor", "major": "Major", "critical": "Critical"}


def label(value: str, labels: Mapping[str, str]) -> str:
    """A readable label for a status or impact, including values we do not know."""
    return labels.get(value, value.replace("_", " ").capitalize() or "Unknown")


@dataclass(frozen=True)
class PageInfo:
    """The status page a comment talks about."""

    name: str
    url: str


@dataclass(frozen=True)
class Rendered:
    """A finished comment body and its hash."""

    body: str
    digest: str
    omitted_updates: int = 0


def digest(body: str) -> str:
    """The hash that decides whether a body changed."""
    return hashlib.sha256(body.encode()).hexdigest()


def format_time(moment: datetime | None, zone: ZoneInfo | None) -> str:
    """``Oct 07, 14:05 UTC``, or ``Oct 07, 07:05 PDT / 14:05 UTC`` with a zone."""
    if moment is None:
        return "unknown time"
    utc = moment.astimezone(UTC)
    text = utc.strftime("%b %d, %H:%M UTC")
    if zone is None:
        return text
    local = moment.astimezone(zone)
    return local.strftime("%b %d, %H:%M %Z") + " / " + utc.strftime("%H:%M UTC")


def _component(component: ComponentView) -> dict[str, str]:
    status = label(component.status, {})
    name = markdown.escape_line(component.name)
    text = name if component.status in ("operational", "") else f"{name} ({status.lower()})"
    return {"name": name, "status": component.status, "label": text}


def _update(update: UpdateView, zone: ZoneInfo | None) -> dict[str, str]:
    return {
        "id": update.id,
        "status": update.status,
        "status_label": label(update.status, STATUS_LABELS),
        "body": markdown.shorten(markdown.escape_text(update.body), MAX_UPDATE_CHARS),
        "time": format_time(update.shown_at, zone),
    }


def incident_context(
    view: IncidentView, page: PageInfo, zone: ZoneInfo | None, subreddit: str | None
) -> dict[str, Any]:
    """The plain data an incident template receives (all updates, newest first)."""
    url = f"{page.url}/incidents/{view.id}"
    postmortem = view.postmortem_body
    return {
        "incident": {
            "id": view.id,
            "name": markdown.shorten(markdown.escape_line(view.name), MAX_TITLE_CHARS),
            "status": view.status,
            "status_label": label(view.status, STATUS_LABELS),
            "impact": view.impact,
            "impact_label": label(view.impact, IMPACT_LABELS),
            "is_open": view.is_open,
            "url": url,
            "shortlink": view.shortlink or url,
            "started": format_time(view.created_at, zone),
            "resolved": format_time(view.resolved_at, zone) if view.resolved_at else "",
            "components": [_component(c) for c in view.components],
            "postmortem": markdown.escape_text(postmortem) if postmortem else "",
        },
        "updates": [_update(u, zone) for u in reversed(view.updates)],
        "omitted_updates": 0,
        "page": {"name": markdown.escape_line(page.name), "url": page.url},
        "modmail_url": _modmail_url(subreddit),
    }


def _modmail_url(subreddit: str | None) -> str:
    if not subreddit:
        return ""
    return f"https://www.reddit.com/message/compose?to=/r/{subreddit}"


def sample_incident() -> IncidentView:
    """A made-up incident used to check that templates render."""
    moment = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    return IncidentView(
        id="sample0000001",
        name="Elevated errors on the API",
        status="monitoring",
        impact="major",
        shortlink="https://stspg.io/sample",
        created_at=moment,
        resolved_at=None,
        components=(ComponentView("API", "partial_outage"),),
        updates=(
            UpdateView("u1", "investigating", "We are investigating.", moment),
            UpdateView("u2", "monitoring", "A fix is in place.", moment),
        ),
        postmortem_body="A short write-up.",
    )


class Renderer:
    """Loads a template folder and renders bodies; keeps the last good set in use.

    ``reload_if_changed`` re-reads the folder when a file changed, and only swaps in
    the new templates once every one of them renders against sample data.
    """

    def __init__(
        self,
        folder: Path,
        *,
        page: PageInfo,
        zone: ZoneInfo | None = None,
        subreddit: str | None = None,
        max_length: int = 10_000,
    ) -> None:
        self.folder = folder
        self.page = page
        self.zone = zone
        self.subreddit = subreddit
        self.max_length = max_length
        self._stamp = self._folder_stamp()
        self._templates = self._load()

    # --- loading -------------------------------------------------------------------
    def _folder_stamp(self) -> tuple[tuple[str, float, int], ...]:
        entries = []
        for name in (INCIDENT_TEMPLATE, MANUAL_TEMPLATE):
            path = self.folder / name
            try:
                stat = path.stat()
            except OSError:
                entries.append((name, 0.0, -1))
            else:
                entries.append((name, stat.st_mtime, stat.st_size))
        return tuple(entries)

    def _load(self) -> dict[str, jinja2.Template]:
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.folder),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        templates = {}
        for name in (INCIDENT_TEMPLATE, MANUAL_TEMPLATE):
            try:
                templates[name] = env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"{exc.filename or name}, line {exc.lineno}: {exc.message}"
                ) from None
            except (jinja2.TemplateNotFound, OSError) as exc:
                raise TemplateError(f"{self.folder / name}: cannot read ({exc})") from None
        self._templates = templates
        self.check()
        return templates

    def check(self) -> list[str]:
        """Render every template against sample data; return the template names checked."""
        self.render_incident(sample_incident())
        self.render_manual("A sample notice.", note_id="sample")
        return [INCIDENT_TEMPLATE, MANUAL_TEMPLATE]

    def reload_if_changed(self) -> bool:
        """Reload templates whose files changed; on error keep the old ones and raise."""
        stamp = self._folder_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        previous = self._templates
        try:
            self._templates = self._load()
        except TemplateError:
            self._templates = previous
            raise
        log.info("templates reloaded from %s", self.folder)
        return True

    # --- rendering -----------------------------------------------------------------
    def _run(self, name: str, context: Mapping[str, Any]) -> str:
        template = self._templates[name]
        pieces: list[str] = []
        size = 0
        try:
            for piece in template.generate(**context):
                size += len(piece)
                if size > OUTPUT_CAP:
                    raise TemplateError(
                        f"{self._path(name)}: output exceeds {OUTPUT_CAP} characters"
                    )
                pieces.append(piece)
        except TemplateError:
            raise
        except Exception as exc:  # any error a template can raise, reported with its line
            raise TemplateError(f"{self._path(name)}{_template_line(exc, name)}: {exc}") from None
        return "".join(pieces).strip()

    def _path(self, name: str) -> str:
        return str(self.folder / name)

    def render_incident(self, view: IncidentView) -> Rendered:
        """The comment body for one incident, under the length limit."""
        context = incident_context(view, self.page, self.zone, self.subreddit)
        tail = "\n\n" + markdown.marker("inc", view.id)
        updates = context["updates"]
        body = self._run(INCIDENT_TEMPLATE, context)
        if len(body) + len(tail) <= self.max_length:
            return Rendered(body + tail, digest(body + tail))
        # Too long: keep the newest updates that fit (binary search on how many).
        limit = self.max_length - len(tail)
        best: tuple[int, str] | None = None
        low, high = 0, len(updates) - 1
        while low <= high:
            keep = (low + high) // 2
            text = self._run(INCIDENT_TEMPLATE, self._trimmed(context, keep))
            if len(text) <= limit:
                best, low = (keep, text), keep + 1
            else:
                high = keep - 1
        if best is None:
            best = (
                0,
                markdown.shorten(self._run(INCIDENT_TEMPLATE, self._trimmed(context, 0)), limit),
            )
        kept, body = best
        return Rendered(body + tail, digest(body + tail), omitted_updates=len(updates) - kept)

    @staticmethod
    def _trimmed(context: Mapping[str, Any], keep: int) -> dict[str, Any]:
        updates = context["updates"]
        return dict(context, updates=updates[:keep], omitted_updates=len(updates) - keep)

    def render_manual(self, text: str, *, note_id: str) -> Rendered:
        """A moderator's notice; ``text`` is data shown literally, never template code."""
        context = {
            "text": markdown.escape_text(text),
            "page": {"name": markdown.escape_line(self.page.name), "url": self.page.url},
            "modmail_url": _modmail_url(self.subreddit),
        }
        tail = "\n\n" + markdown.marker("note", note_id)
        body = markdown.shorten(self._run(MANUAL_TEMPLATE, context), self.max_length - len(tail))
        return Rendered(body + tail, digest(body + tail))


def _template_line(exc: BaseException, name: str) -> str:
    """``, line N`` of the template frame in the traceback, when Jinja left one."""
    tb: TracebackType | None = exc.__traceback__
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename.endswith(name):
            line = lineno
    return f", line {line}" if line else ""
