"""Limits counted in this process's memory (one worker): exact, and no I/O on the request path.

Each check-and-reserve and each settle runs without a pause in between, so on one event
loop they are atomic, as the Redis scripts are across processes.
"""

from __future__ import annotations

import time
from typing import Iterable

from proxy.limits.demand import Demand
from proxy.limits.model import Reading, Refusal, Reservation, Scope
from proxy.limits.windows import KEEP_SECONDS, MinuteWindow


class _Counts:
    """One key's or team's counts."""

    __slots__ = ("requests", "tokens", "in_flight", "spent")

    def __init__(self) -> None:
        self.requests = MinuteWindow()
        self.tokens = MinuteWindow()
        self.in_flight = 0
        self.spent: dict[str, int] = {}  # budget period id -> units


class MemoryLimits:
    """The memory backend."""

    name = "memory"
    local = True  # reserve_now: no I/O, so no need to await
    available = True

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], _Counts] = {}

    def _of(self, scope: Scope) -> _Counts:
        key = (scope.scope, scope.name)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = _Counts()
        return counts

    async def reserve(self, scopes: tuple[Scope, ...], demand: Demand,
                      reservation_id: str) -> Reservation | Refusal:
        """:meth:`reserve_now`, for callers that treat every backend alike."""
        return self.reserve_now(scopes, demand, reservation_id)

    def reserve_now(self, scopes: tuple[Scope, ...], demand: Demand,
                    reservation_id: str) -> Reservation | Refusal:
        """Check every scope, and only when all admit the request, count it against each.

        The sliding minute's rules (``proxy/limits/windows.py``) are inlined here: this
        runs for every limited request.
        """
        now = time.time()
        second = int(now)
        oldest = second - KEEP_SECONDS + 1
        cost = demand.cost_units or 0
        tokens = demand.tokens
        all_counts = self._counts
        found = []
        for scope in scopes:
            counts = all_counts.get((scope.scope, scope.name))
            if counts is None:
                counts = all_counts[(scope.scope, scope.name)] = _Counts()
            limits = scope.limits
            if limits.budget is not None and scope.period is not None:
                if counts.spent.get(scope.period[0], 0) + cost > limits.budget.units:
                    end = scope.period[2]
                    return Refusal(scope.scope, scope.name, "budget", None if end is None else end - now)
            if limits.max_parallel is not None and counts.in_flight >= limits.max_parallel:
                return Refusal(scope.scope, scope.name, "max_parallel", 1.0)
            if limits.rpm is not None:
                window = counts.requests
                buckets = window._buckets
                while buckets and buckets[0][0] < oldest:
                    window.total -= buckets.popleft()[1]
                if window.total >= limits.rpm:
                    return Refusal(scope.scope, scope.name, "rpm", window.wait_for(now, 1, limits.rpm))
            if limits.tpm is not None:
                window = counts.tokens
                buckets = window._buckets
                while buckets and buckets[0][0] < oldest:
                    window.total -= buckets.popleft()[1]
                if window.total + tokens > limits.tpm:
                    return Refusal(scope.scope, scope.name, "tpm", window.wait_for(now, tokens, limits.tpm))
            found.append(counts)
        reset = second + KEEP_SECONDS - now  # what was just counted, at this second, lapses last
        readings = []
        index = 0
        for counts in found:
            scope = scopes[index]
            index += 1
            limits = scope.limits
            requests, used = counts.requests, counts.tokens
            if limits.rpm is not None:
                requests.add(second, 1)
            if limits.tpm is not None:
                used.add(second, tokens)
            counts.in_flight += 1
            spent = 0
            if scope.period is not None:
                period = scope.period[0]
                spent = counts.spent[period] = counts.spent.get(period, 0) + cost
            readings.append(Reading(requests.total, reset, used.total, reset, counts.in_flight, spent))
        return Reservation(reservation_id, scopes, second, tokens, cost, readings)

    def settle(self, reservation: Reservation, tokens: int, cost_units: int) -> None:
        """Replace the reservation by what the request used."""
        token_change = tokens - reservation.tokens
        cost_change = cost_units - reservation.cost_units
        for scope in reservation.scopes:
            counts = self._of(scope)
            if counts.in_flight > 0:
                counts.in_flight -= 1
            if token_change and scope.limits.tpm is not None:
                counts.tokens.adjust(reservation.second, token_change)
            if cost_change and scope.period is not None:
                period = scope.period[0]
                counts.spent[period] = max(0, counts.spent.get(period, 0) + cost_change)

    async def read(self, scopes: Iterable[Scope]) -> list[Reading]:
        """Each scope's counts now, changing nothing (``GET /v1/limits``, the budget gauges)."""
        now = time.time()
        second = int(now)
        readings = []
        for scope in scopes:
            counts = self._of(scope)
            counts.requests.expire(second)
            counts.tokens.expire(second)
            spent = counts.spent.get(scope.period[0], 0) if scope.period is not None else 0
            readings.append(Reading(counts.requests.total, counts.requests.reset_in(now),
                                    counts.tokens.total, counts.tokens.reset_in(now),
                                    counts.in_flight, spent))
        return readings

    def restore_spend(self, scope: str, name: str, period: str, units: int) -> None:
        """Set a budget's spend (from the usage ledger at start)."""
        self._counts.setdefault((scope, name), _Counts()).spent[period] = units

    async def flush(self) -> bool:
        """Nothing is ever queued."""
        return True

    async def close(self) -> None:
        """Nothing to release."""

