"""The account's mail and pages loop: commands sent to the bot on Reddit (read the
inbox, check the sender, run, reply), the wiki's template pages, and the outbox.

Each command is handled exactly once, whatever crashes in between:

1. The sender must moderate the subreddit of every watch the command is about (the
   lists are cached for a few minutes). A command may name a watch (``!pause openai``);
   otherwise it is about every watch in the subreddits the sender moderates.
2. The message id is recorded with the command, in the same transaction as its effect
   when it has one: ``!post`` records the notice's intent there, and the deliverer,
   the one owner of comments, posts it. A re-run after a crash finds the intent and
   only waits for it.
3. The result is recorded (``done``) together with the reply that says it, a message
   of the outbox; the outbox sends it (exactly once: after a lost answer it is looked
   for by its marker), and once it went out (or Reddit refused it for good) the
   command's message is marked read.

Commands sent by modmail to a watch's subreddit are taken like private messages (the
same checks, exactly once, the reply in the conversation through the outbox). A
conversation is marked read, for the bot's account only, once every command in it is
settled; until then it is read again at each pass.

Messages that are not commands are left alone and stay unread; a malformed command
gets the help text. Each pass also reads the wiki's template pages when they are due
(the pollers judge what they find) and sends whatever else the outbox holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from modbot.core import outbox
from modbot.core.commands import (
    CHANGE_PERMISSIONS,
    CHANGING,
    Command,
    duration,
    help_text,
    parse,
    post_needs_a_watch,
)
from modbot.core.records import CommandRow, InboxItem, MessageRow, NoteRow
from modbot.errors import CommandError, ModbotError, RedditError
from modbot.ports import Mailbox, Store
from modbot.shell.crashpoints import Checkpoint, no_checkpoint
from modbot.shell.operations import Operations
from modbot.shell.outbox import Outbox
from modbot.shell.wiki import WikiPages

log = logging.getLogger(__name__)

RUNNING = "running"
DONE = "done"
REFUSED = "refused"


def note_id_for(item: InboxItem) -> str:
    """The notice id of a ``!post`` message: the message names it, so a re-run finds it."""
    kind, _, rest = item.fullname.partition("_")
    return ("mm" if kind == "modmail" else "msg") + rest


class Inbox:
    """Handles the bot account's unread messages and mentions, for every watch."""

    def __init__(
        self,
        mailbox: Mailbox,
        watches: Mapping[str, Operations],
        store: Store,
        clock: Callable[[], float],
        checkpoint: Checkpoint = no_checkpoint,
        *,
        outbox: Outbox,
        pages: WikiPages | None = None,
        on_command: Callable[[str], None] | None = None,
    ) -> None:
        self.on_command = on_command  # told "done", "refused" or "failed", once a command
        self.mailbox = mailbox
        self.watches = dict(watches)
        self.store = store
        self.clock = clock
        self.checkpoint = checkpoint
        self.outbox = outbox
        self.pages = pages
        self.subreddits = sorted({o.subreddit for o in watches.values() if o.subreddit})
        self._modmail_trouble: str | None = None  # said once, until modmail reads again

    def restart(self) -> None:
        """Forget what memory holds (another process led meanwhile)."""
        self.outbox.restart()
        if self.pages is not None:
            self.pages.restart()

    async def check(self) -> int:
        """Read the wiki when due, handle every unread command once, and send what the
        outbox holds; returns how many commands were handled."""
        await self.read_pages()
        handled = 0
        try:
            unread = await self.mailbox.unread()
        except RedditError as exc:
            log.warning("inbox: cannot read it now: %s", exc)
            unread = []
        else:
            # The inbox is read every few seconds: a heartbeat of the Reddit connection.
            for operations in self.watches.values():
                await self.store.record_reddit(
                    operations.watch, error=None, kind="", now=self.clock()
                )
        for item in unread:
            try:
                if await self.handle(item):
                    handled += 1
            except RedditError as exc:
                log.warning("inbox: %s; will try %s again", exc, item.fullname)
        handled += await self.check_modmail()
        await self.send_messages()
        return handled

    async def check_modmail(self) -> int:
        """Handle the commands sent by modmail to the watches' subreddits, once each; mark
        each conversation read once all its commands are settled."""
        if not self.subreddits:
            return 0
        try:
            items = await self.mailbox.modmail_unread(self.subreddits)
        except RedditError as exc:
            # Said once: an account without the mail permission meets this every pass.
            if str(exc) != self._modmail_trouble:
                log.warning("modmail: cannot read it (commands by modmail wait): %s", exc)
            self._modmail_trouble = str(exc)
            return 0
        if self._modmail_trouble is not None:
            log.info("modmail: readable again")
            self._modmail_trouble = None
        handled = 0
        conversations: dict[str, InboxItem] = {}
        unsettled: set[str] = set()
        for item in items:
            assert item.conversation is not None
            conversations.setdefault(item.conversation, item)
            try:
                command, settled = await self._handle(item)
            except RedditError as exc:
                log.warning("modmail: %s; will try %s again", exc, item.fullname)
                command, settled = True, False
            handled += command
            if command and not settled:
                unsettled.add(item.conversation)
        for conversation, item in conversations.items():
            if conversation not in unsettled:
                try:
                    await self.mailbox.mark_read(item)
                except RedditError as exc:
                    log.warning("modmail: %s; will look at it again", exc)
        return handled

    async def read_pages(self) -> None:
        """Read the wiki's template pages, when due, for the pollers to judge."""
        if self.pages is not None:
            await self.pages.read()

    async def send_messages(self) -> int:
        """Every step of the outbox due now; how many messages went out."""
        return await self.outbox.round()

    async def handle(self, item: InboxItem) -> bool:
        """Handle one inbox item; False when it is not a command (left unread)."""
        return (await self._handle(item))[0]

    async def _handle(self, item: InboxItem) -> tuple[bool, bool]:
        """Handle one item: (whether it is a command, whether its reply is settled). A
        settled private message or mention is marked read here; a modmail conversation by
        ``check_modmail``, once all its commands are."""
        if item.author is None:
            return False, False  # from Reddit itself or a subreddit: not a command
        try:
            command = parse(item.body, self.mailbox.username, self.watches)
        except CommandError as exc:
            command = Command("help", f"error: {exc}")
        if command is None:
            return False, False
        row, new = await self._record(item, item.author, command)
        if row.state == RUNNING:
            result = await self._run(item, item.author, command)
            now = self.clock()
            reply = outbox.reply(item, result, now)
            await self.store.finish_command(item.fullname, DONE, result, now, reply)
            self._count("done")
        elif new:  # refused, or failed before it ran: counted once, when first seen
            self._count("refused" if row.state == REFUSED else "failed")
        self.checkpoint("after-command")
        sent = await self.outbox.send(outbox.reply_key(item.fullname))
        self.checkpoint("after-reply")
        settled = outbox.settled(sent)
        if settled:
            # Unread until then: a reply Reddit asked to wait for, or whose answer was
            # lost, keeps the command in view (and the outbox settles it).
            if item.conversation is None:
                await self._mark_read_once(item)
            else:
                await self.store.command_read(item.fullname)
        return True, settled

    def _count(self, result: str) -> None:
        if self.on_command is not None:
            self.on_command(result)

    async def _record(
        self, item: InboxItem, author: str, command: Command
    ) -> tuple[CommandRow, bool]:
        """Record the command (and a notice's intent) once; refusals are recorded as such."""
        chosen, refusal = await self._chosen(author, command)
        note: NoteRow | None = None
        reply: MessageRow | None = None
        state = REFUSED if refusal else RUNNING
        if refusal is None and command.name == "post":
            try:
                note = await chosen[0].notice(
                    command.argument, source=f"u/{author}", note_id=note_id_for(item)
                )
            except ModbotError as exc:
                state, refusal = DONE, f"!post failed: {exc}"
        if refusal is not None:
            reply = outbox.reply(item, refusal, self.clock())
        return await self.store.claim_command(
            CommandRow(
                message_id=item.fullname,
                author=author,
                command=command.name,
                argument=command.argument,
                state=state,
                received_at=self.clock(),
                result=refusal,
                done_at=self.clock() if refusal else None,
            ),
            note,
            reply,
        )

    async def _chosen(self, author: str, command: Command) -> tuple[list[Operations], str | None]:
        """The watches a command is about, or why the sender may not give it."""
        named = [self.watches[command.watch]] if command.watch else list(self.watches.values())
        allowed: list[Operations] = []
        lacking = False
        for operations in named:
            moderator = None
            if operations.subreddit:
                moderator = (await self.mailbox.moderators(operations.subreddit)).get(
                    author.lower()
                )
            if moderator is None:
                continue
            if command.name in CHANGING and not CHANGE_PERMISSIONS & set(moderator.permissions):
                lacking = True
                continue
            allowed.append(operations)
        if lacking and not allowed:
            log.warning("ignored !%s from u/%s: lacks the posts permission", command.name, author)
            return [], f"!{command.name} needs the 'posts' (or 'all') moderator permission."
        if not allowed:
            log.warning("ignored !%s from u/%s: not a moderator", command.name, author)
            where = " or ".join(f"r/{s}" for s in self.subreddits) or "this subreddit"
            return [], f"Sorry, only moderators of {where} can give me commands."
        if command.name == "post" and len({o.subreddit for o in allowed}) > 1:
            return [], post_needs_a_watch(self.watches)
        return allowed, None

    async def _run(self, item: InboxItem, author: str, command: Command) -> str:
        log.info("running !%s from u/%s", command.name, author)
        chosen, refusal = await self._chosen(author, command)
        if refusal is not None:
            return refusal
        try:
            return await self._execute(item, author, command, chosen)
        except (ModbotError, RedditError) as exc:
            return f"!{command.name} failed: {exc}"

    async def _execute(
        self, item: InboxItem, author: str, command: Command, chosen: list[Operations]
    ) -> str:
        if command.name == "help":
            prefix = command.argument.removeprefix("error: ")
            head = f"I did not understand that ({prefix}).\n\n" if command.argument else ""
            return head + help_text(self.subreddits, list(self.watches))
        if command.name == "status":
            screens = [(await ops.status()).text for ops in chosen]
            return "\n\n".join("\n".join("    " + ln for ln in s.splitlines()) for s in screens)
        if command.name == "post":
            return (await chosen[0].notice_outcome(note_id_for(item))).text
        return "\n".join(await self._each(command, author, chosen))

    async def _each(self, command: Command, author: str, chosen: list[Operations]) -> list[str]:
        """Pause, resume, quiet or refresh every chosen watch; a line for each."""
        lines: list[str] = []
        for ops in chosen:
            prefix = f"{ops.poller.watch}: " if len(self.watches) > 1 else ""
            if command.name == "pause":
                lines.append(prefix + (await ops.pause(f"u/{author}")).text)
            elif command.name == "resume":
                lines.append(prefix + (await ops.resume(f"u/{author}")).text)
            elif command.name == "quiet":
                seconds = duration(command.argument)
                lines.append(prefix + (await ops.quiet(seconds, f"u/{author}")).text)
            else:
                try:
                    lines.append(prefix + (await ops.refresh(command.argument or None)).text)
                except CommandError as exc:
                    if len(chosen) == 1:
                        raise
                    lines.append(prefix + str(exc))
        return lines

    async def _mark_read_once(self, item: InboxItem) -> None:
        await self.mailbox.mark_read(item)
        await self.store.command_read(item.fullname)
