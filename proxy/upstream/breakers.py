"""Circuit breakers, one per provider and model.

A breaker is ``closed`` while its upstream answers. After ``failure_threshold``
failures in a row it opens: requests skip that upstream at no cost. After
``cooldown`` seconds it lets one probe through (``half_open``); the probe's
success closes it, its failure opens it again. A provider that refuses our
key is marked unhealthy as a whole for one cool-down.

Breakers live on the application, not in a config snapshot, so a reload keeps
what they have learned. Each worker process has its own.

Whoever wants to hear about state changes (the metrics) sets
``BreakerBoard.on_change``; it is called with ``(provider, model, state)``
each time a breaker moves to another state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

StateListener = Callable[[str], None]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


@dataclass(slots=True)
class BreakerSettings:
    """How quickly a breaker opens and how long it stays open."""

    failure_threshold: int = 5
    cooldown: float = 30.0


class CircuitBreaker:
    """The breaker of one upstream model."""

    __slots__ = ("settings", "state", "failures", "opened_at", "probing", "on_change")

    def __init__(self, settings: BreakerSettings, on_change: StateListener | None = None) -> None:
        self.settings = settings
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False
        self.on_change = on_change

    def _move(self, state: str) -> None:
        """Enter ``state``, telling the listener when that is a change."""
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self, now: float | None = None) -> bool:
        """May a request go to this upstream now? Claims the probe when half-open."""
        if self.state == CLOSED:
            return True
        now = time.monotonic() if now is None else now
        if self.state == OPEN and now - self.opened_at >= self.settings.cooldown:
            self._move(HALF_OPEN)
            self.probing = False
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def would_allow(self, now: float | None = None) -> bool:
        """Like :meth:`allow`, without claiming anything (for routing and health)."""
        if self.state == CLOSED:
            return True
        now = time.monotonic() if now is None else now
        if self.state == OPEN:
            return now - self.opened_at >= self.settings.cooldown
        return not self.probing

    def record_success(self) -> None:
        """The upstream answered: close."""
        self._move(CLOSED)
        self.failures = 0
        self.probing = False

    def record_failure(self, now: float | None = None) -> None:
        """The upstream failed: count it, and open at the threshold or after a failed probe."""
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.settings.failure_threshold:
            self.trip(now)

    def trip(self, now: float | None = None) -> None:
        """Open now, whatever the count."""
        self.opened_at = time.monotonic() if now is None else now
        self._move(OPEN)
        self.probing = False

    def release(self) -> None:
        """The request ended with no verdict on the upstream (a client error, a cancel)."""
        self.probing = False

    def retry_in(self, now: float | None = None) -> float:
        """Seconds until this breaker lets a probe through (0 if it would now)."""
        if self.state != OPEN:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, self.settings.cooldown - (now - self.opened_at))


class BreakerBoard:
    """All breakers of one gateway process, keyed by (provider, model)."""

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._provider_down_until: dict[str, float] = {}
        self.on_change: Callable[[str, str, str], None] | None = None

    def configure(self, settings: BreakerSettings) -> None:
        """Apply new thresholds (a reload) to existing and future breakers."""
        self.settings.failure_threshold = settings.failure_threshold
        self.settings.cooldown = settings.cooldown

    def get(self, provider: str, model: str) -> CircuitBreaker:
        """The breaker of ``provider``'s ``model``, created closed on first use."""
        key = (provider, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(self.settings, self._listener(provider, model))
        return breaker

    def _listener(self, provider: str, model: str) -> StateListener:
        """What a new breaker calls on a state change: ``on_change`` as it is at that moment."""

        def changed(state: str) -> None:
            if self.on_change is not None:
                self.on_change(provider, model, state)

        return changed

    def mark_provider_down(self, provider: str, now: float | None = None) -> None:
        """Our key for ``provider`` was refused: skip the whole provider for one cool-down."""
        now = time.monotonic() if now is None else now
        self._provider_down_until[provider] = now + self.settings.cooldown

    def provider_down(self, provider: str, now: float | None = None) -> bool:
        """Whether ``provider`` is marked unhealthy right now."""
        until = self._provider_down_until.get(provider)
        if until is None:
            return False
        now = time.monotonic() if now is None else now
        if now >= until:
            del self._provider_down_until[provider]
            return False
        return True

    def provider_retry_in(self, provider: str, now: float | None = None) -> float:
        """Seconds until a provider marked down may be tried again."""
        now = time.monotonic() if now is None else now
        return max(0.0, self._provider_down_until.get(provider, now) - now)

    def provider_status(self, provider: str, models: Iterable[str]) -> str:
        """``available``, ``degraded`` (some models' breakers open) or ``unavailable``."""
        if self.provider_down(provider):
            return "unavailable"
        states = [self._breakers[(provider, m)].would_allow() if (provider, m) in self._breakers else True
                  for m in models]
        if all(states):
            return "available"
        return "degraded" if any(states) else "unavailable"

    def states(self) -> dict[tuple[str, str], str]:
        """Every breaker's state, for metrics."""
        return {key: breaker.state for key, breaker in self._breakers.items()}
