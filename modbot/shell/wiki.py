"""Templates kept on the subreddit's wiki, where every moderator can edit them.

Opt-in per watch (``wiki_templates = true`` or ``MODBOT_WIKI_TEMPLATES=true``). The bot
reads ``wiki/modbot/incident``, ``.../manual``, ``.../maintenance``, ``.../early`` and
``.../reply``;
each page's whole text replaces the template file of that name, and a missing page
means "use the file". Two halves, on either side of the store:

* ``WikiPages``, the inbox's (the account's mail and pages loop, one of the two parts
  of the bot that talk to Reddit): reads each subreddit's pages at most once every
  ``CHECK_EVERY`` seconds (one call each, within the Reddit budget) and records what
  changed.
* ``WikiTemplates``, a poller's (it owns the watch's templates and render worker):
  judges each recorded revision it has not judged yet exactly like a template file
  (sandbox, every sample rendered, time and size limits) and uses it only if it
  passes. The verdict and the private message that tells its author (the comment as
  readers will see it, or the exact error) are recorded in one transaction, and the
  outbox sends that message exactly once. A restart neither judges a revision again
  nor messages its author twice. The bot never writes the wiki.

Only moderators with the ``wiki`` (or ``all``) permission may change what the pinned bot
posts: the wiki may let other accounts edit the pages. The inbox notes, with each
revision it records, whether its author is one; another author's revision is judged
``not a moderator`` without being rendered, the last good template stays, and the
verdict is logged once and kept (``modbot status`` names it, and it is what an alert to
the moderators reads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

from modbot.core import markdown, outbox
from modbot.core.alerts import Condition
from modbot.core.early import OPEN
from modbot.core.records import IncidentView, MessageRow, Moderator, WikiRevision, WikiRow
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
from modbot.ports import Mailbox, Store, Wiki
from modbot.rendering.bodies import Bodies
from modbot.shell.alerts import Alert, no_alert

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
GOOD, BROKEN, NOT_MODERATOR = "good", "broken", "not a moderator"
# The moderator permissions that let an account change the templates.
WIKI_PERMISSIONS = frozenset({"all", "wiki"})


def may_edit(moderators: dict[str, Moderator], author: str | None) -> bool:
    """Whether ``author`` moderates with a permission that covers the wiki."""
    found = moderators.get(author.lower()) if author else None
    return found is not None and bool(WIKI_PERMISSIONS & set(found.permissions))


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


class WikiPages:
    """The template pages of the subreddits whose watches take templates from the wiki,
    as the inbox reads them: each subreddit at most every ``every`` seconds, and only
    what changed is written to the store."""

    def __init__(
        self,
        *,
        subreddits: Collection[str],
        wiki: Wiki,
        mailbox: Mailbox,
        store: Store,
        clock: Callable[[], float],
        every: float = CHECK_EVERY,
    ) -> None:
        self.subreddits = sorted({name.lower(): name for name in subreddits}.values())
        self.wiki = wiki
        self.mailbox = mailbox
        self.store = store
        self.clock = clock
        self.every = every
        self._unreadable: set[str] = set()
        self.restart()

    def restart(self) -> None:
        """Read every subreddit at the next pass, and record what it shows."""
        self._next_read = dict.fromkeys(self.subreddits, 0.0)
        self._recorded: dict[str, dict[str, str | None]] = {}  # subreddit -> page -> revision

    async def read(self) -> None:
        """Read the pages of every subreddit that is due; record what changed. A wiki that
        cannot be read changes nothing: the pollers keep the templates in use. What could
        not be recorded (a full disk) is read again at the next pass."""
        for subreddit in self.subreddits:
            now = self.clock()
            if now < self._next_read[subreddit]:
                continue
            pages: dict[str, WikiRevision | None] = {}
            try:
                for page in PAGES:
                    pages[page] = await self.wiki.wiki_page(subreddit, page)
                pages = await self._vetted(subreddit, pages)
            except RedditError as exc:
                self._next_read[subreddit] = now + self.every
                self._cannot_read(subreddit, exc)
                continue
            if subreddit in self._unreadable:
                log.info("r/%s wiki: readable again", subreddit)
                self._unreadable.discard(subreddit)
            await self._record(subreddit, pages, now)
            self._next_read[subreddit] = now + self.every

    async def _vetted(
        self, subreddit: str, pages: dict[str, WikiRevision | None]
    ) -> dict[str, WikiRevision | None]:
        """The pages, each revision marked with whether its author may edit templates
        (the moderator list is cached by the mailbox; not asked for when no page exists)."""
        if not any(pages.values()):
            return pages
        moderators = await self.mailbox.moderators(subreddit)
        return {
            page: r and replace(r, author_may_edit=may_edit(moderators, r.author))
            for page, r in pages.items()
        }

    async def _record(
        self, subreddit: str, pages: dict[str, WikiRevision | None], now: float
    ) -> None:
        """Write the pages that changed since the last write (all, after a start)."""
        recorded = self._recorded.setdefault(subreddit, {})
        shown = {page: (r.revision_id if r else None) for page, r in pages.items()}
        changed = {page: pages[page] for page in pages if recorded.get(page, "") != shown[page]}
        if changed:
            await self.store.record_wiki_pages(subreddit, changed, now)
            recorded.update(shown)

    def _cannot_read(self, subreddit: str, exc: RedditError) -> None:
        if subreddit not in self._unreadable:
            log.warning(
                "r/%s wiki: cannot read the template pages (%s); keeping the templates in use",
                subreddit,
                exc,
            )
        self._unreadable.add(subreddit)


class WikiTemplates:
    """One watch's wiki pages: which revision of each is in use, and their verdicts.

    It reads only the store: the inbox (``WikiPages``) reads the wiki."""

    def __init__(
        self,
        *,
        scope: str,
        subreddit: str,
        store: Store,
        clock: Callable[[], float],
        alert: Alert = no_alert,
    ) -> None:
        self.scope = scope
        self.subreddit = subreddit
        self.store = store
        self.clock = clock
        self.alert = alert  # a rejected revision is the moderators' business too
        self.restart()

    def restart(self) -> None:
        """Read the verdicts from the store again at the next look (another process
        may have judged revisions meanwhile)."""
        self.good: dict[str, WikiRevision] = {}  # page -> the revision in use
        self._judged: dict[str, str] = {}  # page -> the newest revision judged
        # The pages (page -> revision) as applied last, and as being applied now: what is
        # not applied in full (a store write failed) is looked at again.
        self._applied: dict[str, tuple[str, bool | None] | None] | None = None
        self._applying: dict[str, tuple[str, bool | None] | None] | None = None
        self._loaded = False

    # --- what changed ------------------------------------------------------------------------
    async def changes(self) -> tuple[list[WikiRevision], list[str]] | None:
        """(revisions recorded but not judged yet, pages deleted since), or None when the
        pages show what they showed when they were last applied (the first look after a
        start always has something to apply: the verdicts in the store)."""
        if not self._loaded:
            await self._load()
        pages = await self.store.wiki_pages(self.subreddit)
        shown = {page: _shown(r) for page, r in pages.items()}
        if shown == self._applied:
            return None
        self._applying = shown
        fresh: list[WikiRevision] = []
        gone: list[str] = []
        for page in PAGES:
            if page not in pages:
                continue  # not read yet: what was judged before stays in use
            revision = pages[page]
            if revision is None:
                if page in self.good:
                    gone.append(page)
            elif revision.author_may_edit is None:
                continue  # read before authors were vetted: judged once the inbox reads it
            elif revision.revision_id != self._judged.get(page):
                fresh.append(revision)
        return fresh, gone

    async def _load(self) -> None:
        for row in await self.store.wiki_rows(self.scope):  # oldest first
            self._judged[row.page] = row.revision_id
            if row.outcome == GOOD:
                self.good[row.page] = WikiRevision(
                    row.page, row.revision_id, row.content, row.author, row.revised_at
                )
        self._loaded = True

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
            if not revision.author_may_edit:
                await self._ignore(revision)
                continue
            candidate = compose(files, {**self.good, revision.page: revision})
            try:
                await bodies.adopt(candidate)
            except TemplateError as exc:
                why = self._located(str(exc), files, revision.page)
                await self._judge(revision, BROKEN, self._refusal(revision, why))
                await self.alert(
                    Condition.WIKI_REJECTED,
                    True,
                    f"{FOLDER}/{revision.page} revision {revision.revision_id} by "
                    f"u/{revision.author or '?'}: {why}",
                )
                log.error(
                    "r/%s wiki: %s/%s revision %s by u/%s not used: %s",
                    self.subreddit,
                    FOLDER,
                    revision.page,
                    revision.revision_id,
                    revision.author or "?",
                    why,
                )
                continue
            preview = await self._preview(bodies, revision.page, newest_open)
            await self._judge(revision, GOOD, self._welcome(revision, preview))
            self.good[revision.page] = revision
            log.info(
                "r/%s wiki: now using %s/%s revision %s by u/%s",
                self.subreddit,
                FOLDER,
                revision.page,
                revision.revision_id,
                revision.author or "?",
            )
        templates = compose(files, self.good)
        await bodies.adopt(templates)
        self._applied = self._applying
        return templates

    async def _ignore(self, revision: WikiRevision) -> None:
        """A revision by someone who may not change the templates: never rendered, its
        verdict kept (logged once: a revision is judged once, restarts included)."""
        await self._judge(revision, NOT_MODERATOR, None)
        await self.alert(
            Condition.WIKI_REJECTED,
            True,
            f"{FOLDER}/{revision.page} revision {revision.revision_id} by "
            f"u/{revision.author or '?'}: ignored, not a moderator with the wiki permission "
            "(undo the revision, or give that account the wiki permission if it should edit "
            "the templates)",
        )
        log.error(
            "r/%s wiki: %s/%s revision %s by u/%s ignored: not a moderator with the wiki "
            "permission; keeping the template in use",
            self.subreddit,
            FOLDER,
            revision.page,
            revision.revision_id,
            revision.author or "?",
        )

    async def _judge(
        self, revision: WikiRevision, outcome: str, told: tuple[str, str] | None
    ) -> None:
        """Record the verdict and, in the same transaction, the message that tells the
        revision's author (one per revision, ever; the outbox sends it). Only once that
        is written is the revision taken as judged."""
        now = self.clock()
        message: MessageRow | None = None
        if revision.author and told is not None:
            key = outbox.wiki_key(self.scope, revision.page, revision.revision_id)
            message = outbox.private_message(key, revision.author, *told, now)
        await self.store.record_wiki(
            WikiRow(
                watch=self.scope,
                page=revision.page,
                revision_id=revision.revision_id,
                author=revision.author,
                revised_at=revision.revised_at,
                content=revision.content,
                outcome=outcome,
                decided_at=now,
            ),
            message,
        )
        self._judged[revision.page] = revision.revision_id

    def _located(self, error: str, files: Templates, page: str) -> str:
        """The error with the wiki page named in place of the file it stands for."""
        file_path = str(Path(files.origin) / PAGES[page])
        return error.replace(file_path, f"r/{self.subreddit}/wiki/{FOLDER}/{page}")

    # --- telling the author ------------------------------------------------------------------
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
        room = outbox.MESSAGE_LIMIT - len(head) - 100
        return "modbot: your template edit is live", head + markdown.shorten(preview, room)

    def _refusal(self, revision: WikiRevision, why: str) -> tuple[str, str]:
        body = (
            f"Your edit of r/{self.subreddit}/wiki/{FOLDER}/{revision.page} "
            f"(revision {revision.revision_id}) was not used: the bot keeps the template it "
            f"had. The problem:\n\n{_quoted(why)}\n\nFix the page and save it again; the bot "
            f"looks at it every {CHECK_EVERY / 60:g} minutes."
        )
        return "modbot: your template edit was not used", body


def _shown(revision: WikiRevision | None) -> tuple[str, bool | None] | None:
    """What a page shows, as far as judging it goes: the revision, and whether its
    author was vetted (a revision read before is judged once it is)."""
    return None if revision is None else (revision.revision_id, revision.author_may_edit)


def ignored(rows: list[WikiRow]) -> list[WikiRow]:
    """The pages whose newest revision judged was ignored as not a moderator's."""
    newest = {row.page: row for row in rows}  # rows come oldest first
    return [row for page, row in sorted(newest.items()) if row.outcome == NOT_MODERATOR]


def _quoted(text: str) -> str:
    """``text`` as a markdown code block, so it reads exactly as the bot saw it."""
    return "\n".join("    " + line for line in text.splitlines() or [""])
