"""The account's Reddit call budget, shared fairly among the watches that use it.

Reddit allows about 100 calls a minute per account; the bot keeps to
``MODBOT_REDDIT_CALLS_PER_MINUTE`` over any 60 s. Many watches share that one budget,
so a plain first-come limit would let one busy watch (fifty incidents changing at
once) take every slot while another watch's first comment waits behind it for minutes.
Instead, once a caller has used its fair share of the window (the budget divided
among the callers, every one that has called since the start), it may only take a
slot that no caller still under its share is waiting for. A caller under its share
therefore gets the next slot that frees, within one window at most.

That alone still let a busy watch fill the whole window in the second before a quiet
one asked, which then waited the whole window (61 s, in two of three runs of the
benchmark). So a caller over its share also leaves a slot free for each caller that
has called before but not in this window (at most half the budget): a quiet watch's
first comment then goes out at once, however busy the others are.

Pure and synchronous: the clock is passed in; the Reddit client asks and sleeps.
"""

from __future__ import annotations

from collections import Counter, deque
from contextvars import ContextVar

WINDOW = 60.0

# Who the current task is calling for (a watch's name; "" for the account itself, such
# as the inbox). Set by each watch's deliverer for the length of its round, so every
# call its tasks make is counted against that watch without threading a name through.
CALLER: ContextVar[str] = ContextVar("modbot_reddit_caller", default="")


class CallBudget:
    """At most ``limit`` calls in any ``window`` seconds, shared fairly among callers."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._calls: deque[tuple[float, str]] = deque()  # (when, caller), oldest first
        self._waiting: dict[str, float] = {}  # caller -> when it was last refused
        self._known: set[str] = set()  # every caller that has ever called

    def wait(self, who: str, now: float) -> float:
        """0 when ``who`` may call now (then ``spend`` it), else seconds to wait first."""
        self._expire(now)
        used = Counter(caller for _, caller in self._calls)
        if len(self._calls) < self.limit:
            callers = self._known | set(used) | set(self._waiting) | {who}
            share = max(1, self.limit // len(callers))
            starving = {w for w in self._waiting if w != who and used[w] < share}
            idle = sum(1 for c in self._known - starving if c != who and not used[c])
            kept = len(starving) + min(idle, self.limit // 2)  # free slots others may need
            if used[who] < share or len(self._calls) + kept < self.limit:
                self._waiting.pop(who, None)
                return 0.0
        self._waiting[who] = now
        return self._next_free(now)

    def spend(self, who: str, now: float) -> None:
        """Count one call by ``who``."""
        self._calls.append((now, who))
        self._known.add(who)

    def used(self, now: float) -> int:
        """Calls in the window ending ``now``."""
        self._expire(now)
        return len(self._calls)

    def _next_free(self, now: float) -> float:
        """Seconds until a slot frees (a short pause when one is merely reserved)."""
        if len(self._calls) < self.limit:
            return min(1.0, self.window / self.limit)
        return max(self._calls[0][0] + self.window - now, 0.01)

    def _expire(self, now: float) -> None:
        while self._calls and self._calls[0][0] <= now - self.window:
            self._calls.popleft()
        for who, when in list(self._waiting.items()):
            if when <= now - self.window:
                del self._waiting[who]
