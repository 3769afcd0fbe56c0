"""The sliding minute behind ``rpm`` and ``tpm``, counted in whole seconds.

Use is added to the bucket of the second it happened in, and a bucket counts for
:data:`KEEP_SECONDS` seconds (61): whatever second a request fell in, it stays counted
for at least a full minute, so no 60-second window ever holds more than the limit. The
same rules are written once more in Lua for Redis (``proxy/limits/redis_backend.py``);
``tests/limits/test_backends.py`` runs both through the same cases.
"""

from __future__ import annotations

from collections import deque

KEEP_SECONDS = 61
"""A bucket made in second ``b`` counts while the clock's second is at most ``b + 60``."""


class MinuteWindow:
    """Use per second over the last minute, with its running total."""

    __slots__ = ("_buckets", "total")

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [second, amount], oldest first
        self.total = 0

    def expire(self, second: int) -> None:
        """Forget buckets that no longer count at ``second``."""
        buckets = self._buckets
        oldest = second - KEEP_SECONDS + 1
        while buckets and buckets[0][0] < oldest:
            self.total -= buckets.popleft()[1]

    def add(self, second: int, amount: int) -> None:
        """Count ``amount`` at ``second`` (call :meth:`expire` first)."""
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += amount
        else:
            buckets.append([second, amount])
        self.total += amount

    def adjust(self, second: int, delta: int) -> None:
        """Change what was counted at ``second`` by ``delta`` (a settled reservation), if it still counts."""
        for bucket in reversed(self._buckets):
            if bucket[0] == second:
                change = max(delta, -bucket[1])
                bucket[1] += change
                self.total += change
                return
            if bucket[0] < second:
                return

    def wait_for(self, now: float, need: int, limit: int) -> float | None:
        """Seconds from ``now`` until ``need`` more fits under ``limit``; ``None`` if it never can."""
        if need > limit:
            return None
        excess = self.total + need - limit
        if excess <= 0:
            return 0.0
        freed = 0
        for second, amount in self._buckets:
            freed += amount
            if freed >= excess:
                return max(0.0, second + KEEP_SECONDS - now)
        return float(KEEP_SECONDS)

    def reset_in(self, now: float) -> float:
        """Seconds from ``now`` until everything counted has expired (0 when nothing is)."""
        if not self._buckets:
            return 0.0
        return max(0.0, self._buckets[-1][0] + KEEP_SECONDS - now)
