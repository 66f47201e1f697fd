"""The Reddit target of a dry run: every comment is printed instead of posted."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from modbot.core import markdown
from modbot.core.records import PostedComment, Removal, Thread


class DryRunTarget:
    """Prints each comment, so a moderator sees exactly what the bot would post."""

    THREAD = Thread(id="dry-run", title="(dry run: no megathread)", permalink="")

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._count = 0

    async def current_thread(self, max_age: float | None = None) -> Thread | None:
        """Dry-run has one pretend thread."""
        return self.THREAD

    def thread_suspect(self) -> None:
        """Nothing to look up in dry-run."""

    async def post(self, thread: Thread, body: str) -> PostedComment:
        """Print the body as a new comment."""
        self._count += 1
        comment_id = f"dry{self._count}"
        self._print("NEW comment", body)
        return PostedComment(id=comment_id, permalink="(dry run)", created_utc=time.time())

    async def edit(self, comment_id: str, body: str) -> None:
        """Print the body as an edit."""
        self._print("EDIT of the comment", body)

    async def find(self, thread_id: str, marker_id: str | None) -> list[PostedComment]:
        """Dry-run comments live only in the terminal: nothing to find."""
        return []

    async def delete(self, comment_id: str) -> None:
        """Printed comments cannot be taken back: nothing to do."""

    async def removed(self, comment_ids: list[str]) -> dict[str, Removal]:
        """Nobody removes printed comments."""
        return {}

    def _print(self, what: str, body: str) -> None:
        found = markdown.marker_of(body) or "?"
        about = found.replace("inc-", "incident ", 1).replace("note-", "notice ", 1)
        rule = "-" * 72
        self.out.write(f"{rule}\n[dry-run] {what} for {about}\n{rule}\n{body}\n{rule}\n\n")
        self.out.flush()
