"""Named crash points for the crash tests and benchmarks (``MODBOT_CRASH_AT``).

Production code takes a ``Checkpoint`` callable and calls it at the moments where a
crash matters for exactly-once delivery; by default it does nothing. The app passes
``crash_at(point)`` only when the test-only setting is present, and that SIGKILLs the
process when the named point is reached.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)

Checkpoint = Callable[[str], None]
# After an intent is committed; after Reddit answered a post but before its id is
# saved; after an edit landed but before it is recorded; after a command ran but
# before its reply; after the reply but before the message is marked read; after a
# message's intent (a reply, a wiki editor's message) is committed; after Reddit took
# the message but before that is recorded; after a stray post's removal is intended, and
# after Reddit removed it but before that is recorded; after an early notice was decided
# (saved with its surge) but before it is delivered.
CRASH_POINTS = (
    "after-intent",
    "after-answer",
    "after-edit",
    "after-command",
    "after-reply",
    "after-message-intent",
    "after-message-answer",
    "after-removal-intent",
    "after-removal",
    "after-notice",
)


def no_checkpoint(name: str) -> None:
    """The default: named crash points do nothing."""


def crash_at(point: str | None) -> Checkpoint:
    """A checkpoint that SIGKILLs this process at ``point``."""
    if not point:
        return no_checkpoint

    def checkpoint(name: str) -> None:
        if name == point:
            log.warning("crash point %s reached: killing the process (MODBOT_CRASH_AT)", name)
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint
