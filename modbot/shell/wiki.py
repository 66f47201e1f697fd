"""Templates kept on the subreddit's wiki, where every moderator can edit them.

Opt-in per watch (``wiki_templates = true`` or ``MODBOT_WIKI_TEMPLATES=true``). The bot
reads ``wiki/modbot/incident``, ``.../manual``, ``.../maintenance``, ``.../early`` and
``.../reply``;
each page's whole text replaces the template file of that name, and a missing page
means "use the file". Pages are read at most once every ``CHECK_EVERY`` seconds (one
call each, within the Reddit budget). A new revision is checked exactly like a
template file (sandbox, every sample rendered, time and size limits); it is used only
if it passes, and its author gets one private message either way: the comment as
readers will see it, or the exact error. Every verdict is stored, so a restart neither
judges a revision again nor messages its author twice. The bot never writes the wiki.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from modbot.core import markdown
from modbot.core.early import OPEN
from modbot.core.records import IncidentView, WikiRevision, WikiRow
from modbot.core.render import (
    EARLY_TEMPLATE,
    INCIDENT_TEMPLATE,
    MAINTENANCE_TEMPLATE,
    MANUAL_TEMPLATE,
    REPLY_TEMPLATE,
    Templates,
    sample_early,
    sample_incident,
    sample_maintenance,
)
from modbot.errors import RedditError, TemplateError
from modbot.ports import Store, Wiki
from modbot.rendering.bodies import Bodies

log = logging.getLogger(__name__)

CHECK_EVERY = 300.0
FOLDER = "modbot"
PAGES = {
    "incident": INCIDENT_TEMPLATE,
    "manual": MANUAL_TEMPLATE,
    "maintenance": MAINTENANCE_TEMPLATE,
    "early": EARLY_TEMPLATE,
    "reply": REPLY_TEMPLATE,
}
MESSAGE_LIMIT = 10_000
GOOD, BROKEN = "good", "broken"


def compose(files: Templates, pages: dict[str, WikiRevision]) -> Templates:
    """The file templates with each wiki page's text in place of its file."""
    texts = {PAGES[page]: revision.content for page, revision in pages.items()}
    return replace(
        files, sources=tuple((name, texts.get(name, source)) for name, source in files.sources)
    )


def describe(files: Templates, subreddit: str, pages: dict[str, WikiRevision]) -> str:
    """Where each template comes from, for ``modbot status``."""
    if not pages:
        return files.origin
    wiki = ", ".join(
        f"{FOLDER}/{page} rev {revision.revision_id[:8]}"
        for page, revision in sorted(pages.items())
    )
    return f"wiki of r/{subreddit} ({wiki}); the rest from {files.origin}"


class WikiTemplates:
    """One watch's wiki pages: which revision of each is in use, and their verdicts."""

    def __init__(
        self,
        *,
        scope: str,
        subreddit: str,
        wiki: Wiki,
        store: Store,
        clock: Callable[[], float],
        every: float = CHECK_EVERY,
    ) -> None:
        self.scope = scope
        self.subreddit = subreddit
        self.wiki = wiki
        self.store = store
        self.clock = clock
        self.every = every
        self._unreadable = False
        self.restart()

    def restart(self) -> None:
        """Read the verdicts from the store again at the next look (another process
        may have judged revisions meanwhile)."""
        self.good: dict[str, WikiRevision] = {}  # page -> the revision in use
        self._judged: dict[str, str] = {}  # page -> the newest revision judged
        self._next_check = 0.0
        self._loaded = False
        self._applied = False

    # --- what changed ------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """True until the pages in use (stored or new) have been applied once."""
        return not self._applied

    async def changes(self) -> tuple[list[WikiRevision], list[str]] | None:
        """When due: (revisions not judged yet, pages deleted since); else None. When the
        wiki cannot be read, nothing is new: the revisions judged before stay in use."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.every
        if not self._loaded:
            await self._load()
        fresh: list[WikiRevision] = []
        gone: list[str] = []
        for page in PAGES:
            try:
                revision = await self.wiki.wiki_page(self.subreddit, page)
            except RedditError as exc:
                self._cannot_read(exc)
                return [], []
            if revision is None:
                if page in self.good:
                    gone.append(page)
            elif revision.revision_id != self._judged.get(page):
                fresh.append(revision)
        if self._unreadable:
            log.info("r/%s wiki: readable again", self.subreddit)
        self._unreadable = False
        return fresh, gone

    async def _load(self) -> None:
        for row in await self.store.wiki_rows(self.scope):  # oldest first
            self._judged[row.page] = row.revision_id
            if row.outcome == GOOD:
                self.good[row.page] = WikiRevision(
                    row.page, row.revision_id, row.content, row.author, row.revised_at
                )
        self._loaded = True

    def _cannot_read(self, exc: RedditError) -> None:
        if not self._unreadable:
            log.warning(
                "r/%s wiki: cannot read the template pages (%s); keeping the templates in use",
                self.subreddit,
                exc,
            )
        self._unreadable = True

    # --- deciding ----------------------------------------------------------------------------
    async def apply(
        self,
        files: Templates,
        fresh: list[WikiRevision],
        gone: list[str],
        bodies: Bodies,
        newest_open: Callable[[], IncidentView | None],
    ) -> Templates:
        """Judge each new revision against the files and the pages in use; adopt what
        passes, tell each author, and return the templates now in use."""
        for page in gone:
            log.info(
                "r/%s wiki: %s/%s was deleted; using the file again", self.subreddit, FOLDER, page
            )
            del self.good[page]
        for revision in fresh:
            candidate = compose(files, {**self.good, revision.page: revision})
            try:
                await bodies.adopt(candidate)
            except TemplateError as exc:
                why = self._located(str(exc), files, revision.page)
                await self._judge(revision, BROKEN)
                log.error(
                    "r/%s wiki: %s/%s revision %s by u/%s not used: %s",
                    self.subreddit,
                    FOLDER,
                    revision.page,
                    revision.revision_id,
                    revision.author or "?",
                    why,
                )
                await self._tell(revision, *self._refusal(revision, why))
                continue
            self.good[revision.page] = revision
            await self._judge(revision, GOOD)
            log.info(
                "r/%s wiki: now using %s/%s revision %s by u/%s",
                self.subreddit,
                FOLDER,
                revision.page,
                revision.revision_id,
                revision.author or "?",
            )
            preview = await self._preview(bodies, revision.page, newest_open)
            await self._tell(revision, *self._welcome(revision, preview))
        templates = compose(files, self.good)
        await bodies.adopt(templates)
        self._applied = True
        return templates

    async def _judge(self, revision: WikiRevision, outcome: str) -> None:
        self._judged[revision.page] = revision.revision_id
        await self.store.record_wiki(
            WikiRow(
                watch=self.scope,
                page=revision.page,
                revision_id=revision.revision_id,
                author=revision.author,
                revised_at=revision.revised_at,
                content=revision.content,
                outcome=outcome,
                decided_at=self.clock(),
            )
        )

    def _located(self, error: str, files: Templates, page: str) -> str:
        """The error with the wiki page named in place of the file it stands for."""
        file_path = str(Path(files.origin) / PAGES[page])
        return error.replace(file_path, f"r/{self.subreddit}/wiki/{FOLDER}/{page}")

    # --- telling the author ------------------------------------------------------------------
    async def _tell(self, revision: WikiRevision, subject: str, body: str) -> None:
        """One message per revision, ever: claimed in the store before it is sent."""
        if not revision.author:
            return
        key = (self.scope, revision.page, revision.revision_id)
        if not await self.store.claim_wiki_notice(*key):
            return
        try:
            await self.wiki.send_message(revision.author, subject, body)
        except RedditError as exc:
            log.warning("could not message u/%s about their wiki edit: %s", revision.author, exc)
            return
        await self.store.wiki_notice_sent(*key)

    async def _preview(
        self, bodies: Bodies, page: str, newest_open: Callable[[], IncidentView | None]
    ) -> str:
        if page == "manual":
            rendered = await bodies.notice(
                "A notice from the moderators looks like this.", "preview"
            )
        elif page == "maintenance":
            rendered = await bodies.incident(sample_maintenance())
        elif page == "early":
            rendered = await bodies.early(sample_early(OPEN))
        elif page == "reply":
            link = "https://www.reddit.com/r/sample/comments/abc/sample/def/"
            rendered = await bodies.reply("sample", "early", "", link, removed=False)
        else:
            rendered = await bodies.incident(newest_open() or sample_incident())
        lines = rendered.body.rstrip().split("\n")
        if lines and markdown.marker_of(lines[-1]) is not None:
            lines = lines[:-1]  # the hidden marker means nothing in a message
        return "\n".join(lines).rstrip()

    def _welcome(self, revision: WikiRevision, preview: str) -> tuple[str, str]:
        head = (
            f"Your edit of r/{self.subreddit}/wiki/{FOLDER}/{revision.page} "
            f"(revision {revision.revision_id}) passed the checks and is now used for the "
            "bot's comments. This is how one looks now:\n\n---\n\n"
        )
        room = MESSAGE_LIMIT - len(head) - 100
        return "modbot: your template edit is live", head + markdown.shorten(preview, room)

    def _refusal(self, revision: WikiRevision, why: str) -> tuple[str, str]:
        body = (
            f"Your edit of r/{self.subreddit}/wiki/{FOLDER}/{revision.page} "
            f"(revision {revision.revision_id}) was not used: the bot keeps the template it "
            f"had. The problem:\n\n{_quoted(why)}\n\nFix the page and save it again; the bot "
            f"looks at it every {self.every / 60:g} minutes."
        )
        return "modbot: your template edit was not used", markdown.shorten(body, MESSAGE_LIMIT)


def _quoted(text: str) -> str:
    """``text`` as a markdown code block, so it reads exactly as the bot saw it."""
    return "\n".join("    " + line for line in text.splitlines() or [""])
