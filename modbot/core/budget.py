"""The account's Reddit call budget, shared fairly among the watches that use it.

Reddit allows about 100 calls a minute per account; the bot keeps to
``MODBOT_REDDIT_CALLS_PER_MINUTE`` over any 60 s. Many watches share that one budget,
so a plain first-come limit would let one busy watch (fifty incidents changing at
once) take every slot while another watch's first comment waits behind it for minutes.

The rule: a caller takes a slot only if, after it, a slot stays free for every other
caller that has made fewer calls in the window (at most half the budget is kept so),
and no waiting caller has called less (or as much, and waited longer). The
least-served caller therefore always gets the next free slot, and a busy watch that
filled half the window in a second leaves the rest to the watches that have called
less, each of which then goes at once.

Every caller the bot has is expected up front (``expect``): a watch that has never
called, the quietest of all, is the one a slot is most owed to. Before it was, a busy
watch could fill the window in the second before nine quiet watches asked for the first
time, and the last of them waited a whole window (61 s in half of the benchmark's runs).

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


# A refused caller asks again when told; one that has not by then (it gave up, or its
# task was cancelled) stops holding slots back from the others this long after.
ASKS_AGAIN_WITHIN = 5.0


class CallBudget:
    """At most ``limit`` calls in any ``window`` seconds, shared fairly among callers."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._calls: deque[tuple[float, str]] = deque()  # (when, caller), oldest first
        # refused caller -> (when it was first refused, when it has asked again by)
        self._waiting: dict[str, tuple[float, float]] = {}
        self._known: set[str] = set()  # every caller expected or seen

    def expect(self, *callers: str) -> None:
        """Callers that will call: each is owed a slot before it ever asks."""
        self._known.update(callers)

    def wait(self, who: str, now: float) -> float:
        """0 when ``who`` may call now (then ``spend`` it), else seconds to wait first."""
        self._expire(now)
        used = Counter(caller for _, caller in self._calls)
        mine = used[who]
        since = self._waiting[who][0] if who in self._waiting else now
        behind = [c for c in self._known | set(self._waiting) if c != who and used[c] < mine]
        free = self.limit - len(self._calls)
        kept = min(len(behind), self.limit // 2)
        # Among waiting callers, the one that has called least goes first; of equals, the
        # one that has waited longest (so that no caller starves behind its equals).
        ahead = any(
            (used[c], first) < (mine, since) for c, (first, _) in self._waiting.items() if c != who
        )
        if free > kept and not ahead:
            self._waiting.pop(who, None)
            return 0.0
        pause = self._pause(now, free, kept)
        self._waiting[who] = (since, now + pause + ASKS_AGAIN_WITHIN)
        return pause

    def spend(self, who: str, now: float) -> None:
        """Count one call by ``who``."""
        self._calls.append((now, who))
        self._known.add(who)

    def used(self, now: float) -> int:
        """Calls in the window ending ``now``."""
        self._expire(now)
        return len(self._calls)

    def _pause(self, now: float, free: int, kept: int) -> float:
        """Seconds until enough of the window's calls have left it for one more slot
        than those kept; a short pause when there are enough and a caller ahead merely
        takes one first. (A caller kept a slot for may free it sooner by calling.)"""
        if free > kept:
            return min(1.0, self.window / self.limit)
        leaving = kept - free + 1  # calls that must leave the window first
        return max(self._calls[leaving - 1][0] + self.window - now, 0.01)

    def _expire(self, now: float) -> None:
        while self._calls and self._calls[0][0] <= now - self.window:
            self._calls.popleft()
        for who, (_, until) in list(self._waiting.items()):
            if until < now:
                del self._waiting[who]
