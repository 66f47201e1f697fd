"""Comment bodies for one watch: its templates, its page, its limits, one render engine.

``Bodies`` is what the poller, the deliverer's callers and the moderator operations use
to turn an incident view or a notice's words into a finished body. It holds the last
good set of templates: a new set is checked by the engine (every template rendered
against sample data, within the time and memory limits) before it replaces the old.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from modbot.core.markdown import LEGACY_WATCH
from modbot.core.records import EarlyRow, IncidentView, PageInfo, Rendered
from modbot.core.render import (
    Confirmation,
    Job,
    Readers,
    Templates,
    early_job,
    incident_job,
    link_hosts,
    notice_job,
    reply_context,
    reply_job,
)
from modbot.errors import TemplateError


class Engine(Protocol):
    """Runs templates (``sandbox.RenderWorker`` in the bot: another process, with limits)."""

    async def render(
        self, templates: Templates, name: str, context: Mapping[str, Any], limit: int
    ) -> tuple[str, int]:
        """The output of one template and how many old updates it left out."""
        ...

    async def render_batch(
        self, templates: Templates, jobs: Sequence[tuple[str, Mapping[str, Any], int]]
    ) -> list[tuple[str, int] | TemplateError]:
        """Several outputs at once; a failing one is its ``TemplateError``."""
        ...

    async def check(self, templates: Templates, limit: int) -> None:
        """Raise ``TemplateError`` unless every template renders its sample data."""
        ...


class Bodies:
    """Renders one watch's comments with its current templates."""

    def __init__(
        self,
        engine: Engine,
        templates: Templates,
        *,
        home: str,
        page: PageInfo,
        zone: ZoneInfo | None,
        subreddit: str | None,
        max_length: int,
        watch: str = LEGACY_WATCH,
    ) -> None:
        self.watch = watch  # the watch's name, which its comments' markers carry
        self.engine = engine
        self.templates = templates
        # Links go to the configured page's host (and the vendors' short links) only,
        # whatever page the feed names or the store remembers.
        self.hosts = link_hosts(home)
        self.page = page
        self.zone = zone
        self.subreddit = subreddit
        self.max_length = max_length
        # What open incidents' "last checked" line shows (None: the line is off); set by
        # the poller, which decides when it may move on.
        self.checked_at: float | None = None

    async def incident(self, view: IncidentView, readers: Readers | None = None) -> Rendered:
        """The comment for one incident, under the length limit (oldest updates dropped)."""
        return await self._run(self._incident_job(view, readers))

    def _incident_job(self, view: IncidentView, readers: Readers | None) -> Job:
        return incident_job(
            view,
            self.page,
            hosts=self.hosts,
            zone=self.zone,
            subreddit=self.subreddit,
            max_length=self.max_length,
            watch=self.watch,
            checked_at=self.checked_at,
            readers=readers,
        )

    async def incidents(
        self, views: Sequence[IncidentView], readers: Mapping[str, Readers] | None = None
    ) -> list[Rendered | TemplateError]:
        """Many incidents' comments in one go (one round trip to the render worker), each
        with what readers reported about it (``readers``, by incident id)."""
        found = readers or {}
        jobs = [self._incident_job(view, found.get(view.id)) for view in views]
        outputs = await self.engine.render_batch(
            self.templates, [(job.name, job.context, job.limit) for job in jobs]
        )
        return [
            out if isinstance(out, TemplateError) else job.finish(*out)
            for job, out in zip(jobs, outputs, strict=True)
        ]

    async def notice(self, text: str, note_id: str) -> Rendered:
        """A moderator's notice; ``text`` is shown literally."""
        job = notice_job(
            text,
            note_id,
            self.page,
            hosts=self.hosts,
            subreddit=self.subreddit,
            max_length=self.max_length,
            watch=self.watch,
        )
        return await self._run(job)

    async def early(self, row: EarlyRow, confirmation: Confirmation | None = None) -> Rendered:
        """An early notice: counts and labels, never readers' words."""
        job = early_job(
            row,
            self.page,
            hosts=self.hosts,
            zone=self.zone,
            subreddit=self.subreddit,
            max_length=self.max_length,
            watch=self.watch,
            confirmation=confirmation,
        )
        return await self._run(job)

    async def reply(
        self, post_id: str, about: str, name: str, link: str, *, removed: bool
    ) -> Rendered:
        """The reply to a reader's stray post: what the megathread follows, and where."""
        context = reply_context(
            about,
            name,
            link,
            removed=removed,
            page=self.page,
            subreddit=self.subreddit,
            hosts=self.hosts,
        )
        job = reply_job(post_id, context, max_length=self.max_length, watch=self.watch)
        return await self._run(job)

    async def _run(self, job: Job) -> Rendered:
        text, omitted = await self.engine.render(self.templates, job.name, job.context, job.limit)
        return job.finish(text, omitted)

    async def adopt(self, templates: Templates) -> None:
        """Switch to ``templates`` once they pass the engine's check; raise if not."""
        await self.engine.check(templates, self.max_length)
        self.templates = templates
