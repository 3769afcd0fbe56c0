"""What each deployment has shown lately: requests in flight, moving-average speed, rate-limit headroom.

One :class:`DeploymentStats` per worker process, keyed by a deployment's
qualified name (``provider/model``), fed by every request that reaches the
deployment, whether a rule routed it or the caller named the model:

* :meth:`~DeploymentStats.started` / :meth:`~DeploymentStats.finished` around
  each upstream attempt count what is in flight (never below zero);
* :meth:`~DeploymentStats.observe` takes an answered attempt's latency and,
  for a stream, its time to first token, into exponentially weighted moving
  averages (:data:`EWMA_WEIGHT` for the newest sample; the first sample is
  taken as it is). Failed attempts are not timed: a fast error must not look
  like a fast model;
* :meth:`~DeploymentStats.observe_headers` keeps the headroom of the latest
  answer that sent rate-limit headers (:mod:`proxy.optimise.headroom`). It
  only looks whether there are any (a few dictionary lookups, on every
  upstream answer) and keeps the headers; they are parsed when a routing
  strategy first reads :attr:`DeploymentState.headroom` (a deployment only
  ever named explicitly never pays for it).

Every value from outside is bounded: a time that is not a finite number of
seconds from 0 to :data:`MAX_SECONDS` is ignored. Nothing here blocks or
allocates per request beyond a deployment's first sight.
"""

from __future__ import annotations

import math
from typing import Mapping

from proxy.optimise.headroom import Headroom, counts_suffice, has_rate_limits, parse_headroom

EWMA_WEIGHT = 0.2
"""The weight of the newest sample: about the last ten samples count."""
MAX_SECONDS = 3600.0


class DeploymentState:
    """One deployment's numbers (read them; :class:`DeploymentStats` writes them)."""

    __slots__ = ("in_flight", "ttft", "latency", "_headroom", "_pending")

    def __init__(self) -> None:
        self.in_flight = 0
        self.ttft: float | None = None
        """Seconds: moving average time to first token of answered streams."""
        self.latency: float | None = None
        """Seconds: moving average time to a whole answer (plain answers) or its end (streams)."""
        self._headroom: Headroom | None = None
        self._pending: tuple[Mapping[str, str], float, float] | None = None

    def has_room(self, prompt_tokens: int, now: float) -> bool:
        """Whether the latest headroom leaves room for a request of ``prompt_tokens`` at ``now``
        (:meth:`Headroom.exhausted`'s opposite), parsing the latest headers only when their counts fall short."""
        pending = self._pending
        if pending is not None and counts_suffice(pending[0], prompt_tokens):
            return True
        headroom = self.headroom
        return headroom is None or not headroom.exhausted(prompt_tokens, now)

    @property
    def headroom(self) -> Headroom | None:
        """The rate-limit headroom of the latest answer that gave one (its headers parsed now if new)."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            parsed = parse_headroom(*pending)
            if parsed is not None:
                self._headroom = parsed
        return self._headroom


class DeploymentStats:
    """In-flight counts, moving averages and headroom of every deployment seen."""

    def __init__(self, weight: float = EWMA_WEIGHT) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError("the EWMA weight must be in (0, 1]")
        self._weight = weight
        self._states: dict[str, DeploymentState] = {}

    def state(self, name: str) -> DeploymentState:
        """The numbers of deployment ``name`` (created on first sight)."""
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = DeploymentState()
        return state

    def peek(self, name: str) -> DeploymentState | None:
        """The numbers of deployment ``name``, or ``None`` if it was never seen (nothing is created)."""
        return self._states.get(name)

    def started(self, name: str) -> None:
        """An attempt on ``name`` began."""
        self.state(name).in_flight += 1

    def finished(self, name: str) -> None:
        """An attempt on ``name`` ended, however it ended."""
        state = self.state(name)
        if state.in_flight > 0:
            state.in_flight -= 1

    def observe(self, name: str, latency: float | None = None, ttft: float | None = None) -> None:
        """Fold an answered attempt's ``latency`` and (streams) ``ttft``, in seconds, into the averages."""
        state = self.state(name)
        if _sane(latency):
            state.latency = self._average(state.latency, latency)  # type: ignore[arg-type]
        if _sane(ttft):
            state.ttft = self._average(state.ttft, ttft)  # type: ignore[arg-type]

    def observe_headers(self, name: str, headers: Mapping[str, str], now: float, wall_now: float) -> None:
        """Keep the rate-limit headroom that an answer's ``headers`` give, if they give any.

        ``headers`` are kept as they are (read-only) and parsed when the headroom is read.
        """
        if has_rate_limits(headers):
            self.state(name)._pending = (headers, now, wall_now)

    def _average(self, previous: float | None, sample: float) -> float:
        return sample if previous is None else previous + self._weight * (sample - previous)


def _sane(seconds: float | None) -> bool:
    return (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
            and math.isfinite(seconds) and 0.0 <= seconds <= MAX_SECONDS)
