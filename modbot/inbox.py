"""Commands sent to the bot on Reddit: read the inbox, check the sender, run, reply.

Each message is handled exactly once, whatever crashes in between:

1. The message id and the parsed command are recorded (``running``) before anything.
2. The sender must moderate the subreddit (the list is cached for a few minutes);
   otherwise the command is ``refused`` and not run.
3. The command runs. Every operation is safe to repeat (see ``commands``), so a
   crash here re-runs it to the same effect, never twice over.
4. The result is recorded (``done``), then sent as the reply (``sending`` ->
   ``sent``; a reply interrupted by a crash is not sent again), then the message is
   marked read.

Messages that are not commands are left alone and stay unread; a malformed command
gets the help text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from modbot.commands import CHANGE_PERMISSIONS, CHANGING, Command, Operations, help_text, parse
from modbot.errors import CommandError, ModbotError, RedditError, RedditRejected
from modbot.reddit import InboxItem, RedditClient
from modbot.store import CommandRow, Store

log = logging.getLogger(__name__)

RUNNING = "running"
DONE = "done"
REFUSED = "refused"


class Inbox:
    """Handles the bot account's unread messages and mentions."""

    def __init__(
        self, reddit: RedditClient, operations: Operations, store: Store, clock: Callable[[], float]
    ) -> None:
        self.reddit = reddit
        self.operations = operations
        self.store = store
        self.clock = clock
        self.checkpoint = operations.publisher.checkpoint

    async def check(self) -> int:
        """Handle every unread command once; returns how many were handled."""
        handled = 0
        try:
            unread = await self.reddit.unread()
        except RedditError as exc:
            log.warning("inbox: cannot read it now: %s", exc)
            return 0
        for item in unread:
            try:
                if await self.handle(item):
                    handled += 1
            except RedditError as exc:
                log.warning("inbox: %s; will try %s again", exc, item.fullname)
        return handled

    async def handle(self, item: InboxItem) -> bool:
        """Handle one inbox item; False when it is not a command (left unread)."""
        if item.author is None:
            return False  # from Reddit itself or a subreddit: not a command
        try:
            command = parse(item.body, self.reddit.username)
        except CommandError as exc:
            command = Command("help", f"error: {exc}")
        if command is None:
            return False
        row, _ = self.store.claim_command(
            CommandRow(
                message_id=item.fullname,
                author=item.author,
                command=command.name,
                argument=command.argument,
                state=RUNNING,
                received_at=self.clock(),
            )
        )
        if row.state == RUNNING:
            state, result = await self._run(item, item.author, command)
            self.store.update_command(
                item.fullname, state=state, result=result, done_at=self.clock()
            )
        self.checkpoint("after-command")
        await self._reply_once(item)
        self.checkpoint("after-reply")
        await self._mark_read_once(item)
        return True

    async def _run(self, item: InboxItem, author: str, command: Command) -> tuple[str, str]:
        moderators = await self.reddit.moderators()
        moderator = moderators.get(author.lower())
        if moderator is None:
            log.warning("ignored !%s from u/%s: not a moderator", command.name, author)
            return REFUSED, (
                f"Sorry, only moderators of r/{self.reddit.subreddit_name} can give me commands."
            )
        if command.name in CHANGING and not CHANGE_PERMISSIONS & set(moderator.permissions):
            log.warning("ignored !%s from u/%s: lacks the posts permission", command.name, author)
            return REFUSED, f"!{command.name} needs the 'posts' (or 'all') moderator permission."
        log.info("running !%s from u/%s", command.name, author)
        try:
            return DONE, await self._execute(item, author, command)
        except (ModbotError, RedditError) as exc:
            return DONE, f"!{command.name} failed: {exc}"

    async def _execute(self, item: InboxItem, author: str, command: Command) -> str:
        ops = self.operations
        if command.name == "help":
            prefix = command.argument.removeprefix("error: ")
            head = f"I did not understand that ({prefix}).\n\n" if command.argument else ""
            return head + help_text(self.reddit.subreddit_name)
        if command.name == "status":
            return "\n".join("    " + line for line in ops.status().text.splitlines())
        if command.name == "pause":
            return ops.pause(f"u/{author}").text
        if command.name == "resume":
            return ops.resume(f"u/{author}").text
        if command.name == "refresh":
            return (await ops.refresh(command.argument or None)).text
        # The message id names the notice, so a re-run after a crash finds it.
        note_id = "msg" + item.fullname.partition("_")[2]
        return (await ops.post_notice(command.argument, source=f"u/{author}", note_id=note_id)).text

    async def _reply_once(self, item: InboxItem) -> None:
        row = self.store.command(item.fullname)
        if row is None or row.result is None or row.reply_state == "sent":
            return
        if row.reply_state == "sending":
            log.info("not replying to %s again: an earlier reply may have gone out", item.fullname)
            return
        self.store.update_command(item.fullname, reply_state="sending")
        try:
            await self.reddit.reply(item, row.result)
        except RedditRejected:
            self.store.update_command(item.fullname, reply_state="none")  # nothing was sent
            raise
        self.store.update_command(item.fullname, reply_state="sent")

    async def _mark_read_once(self, item: InboxItem) -> None:
        await self.reddit.mark_read(item)
        self.store.update_command(item.fullname, marked_read=1)
