"""What a routing strategy decides on: the candidates, the request, and the plan it makes.

A :class:`Candidate` is one deployment a rule names, as it stands for this
request (price, speed, load, breaker, limits, capabilities, headroom); a
:class:`RequestNeeds` is what the request asks of it; a :class:`RoutePlan` is
the strategy's answer: the order to try the candidates that can serve, and
the ones skipped with a :class:`SkipReason`. All are plain records:
building them is the caller's job (from the config,
:mod:`proxy.optimise.deployment_stats` and the breakers), deciding is
:mod:`proxy.optimise.strategies`'.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from proxy.optimise.capabilities import ALL, request_capabilities
from proxy.optimise.headroom import Headroom
from proxy.usage.pricing import ModelPrice


class SkipReason(enum.StrEnum):
    """Why a candidate cannot serve a request (as ``X-Gateway-Skipped`` names it)."""

    BREAKER_OPEN = "breaker_open"
    CONTEXT_WINDOW = "context_window"
    CAPABILITY = "capability"
    RATE_LIMITED = "rate_limited"


@dataclass(slots=True)
class Candidate:
    """One deployment a strategy may choose, as it stands now.

    Built for each request and not changed after (not frozen only because a
    frozen dataclass of this size takes five times as long to build).
    """

    name: str
    """``provider/model``."""
    price: ModelPrice | None = None
    weight: float = 1.0
    ttft: float | None = None
    """Seconds: moving average time to first token (streams), ``None`` before any."""
    latency: float | None = None
    """Seconds: moving average latency, ``None`` before any."""
    in_flight: int = 0
    breaker_open: bool = False
    context_window: int | None = None
    max_output: int | None = None
    default_output: int = 0
    """The output tokens asked for when the request sets no ``max_tokens`` (Anthropic always asks)."""
    capabilities: frozenset[str] = ALL
    headroom: Headroom | None = None
    ref: Any = None
    """The caller's own object for this deployment (its ``ModelConfig``), carried through."""


@dataclass(slots=True)
class RequestNeeds:
    """What a request asks of a candidate (built once per request, not changed after)."""

    prompt_tokens: int = 0
    """Estimated (or counted) prompt tokens."""
    max_tokens: int | None = None
    """The request's ``max_tokens`` / ``max_completion_tokens``, if it gave one."""
    capabilities: frozenset[str] = frozenset()
    stream: bool = False

    def output_tokens(self, candidate: Candidate) -> int:
        """The output ``candidate`` will be asked for: the request's limit, else the candidate's default."""
        return self.max_tokens if self.max_tokens is not None else candidate.default_output


def request_needs(body: dict[str, Any], prompt_tokens: int) -> RequestNeeds:
    """What a parsed Chat Completions ``body`` asks of a candidate, with its (estimated) prompt tokens.

    A ``max_completion_tokens`` or ``max_tokens`` that is not a whole number
    of at least 1 counts as none (validation answers for it).
    """
    limit = None
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if type(value) is int and value >= 1:
            limit = value
            break
    return RequestNeeds(prompt_tokens, limit, request_capabilities(body), body.get("stream") is True)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A candidate that cannot serve the request, and why."""

    candidate: Candidate
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A strategy's answer: the candidates to try, in order (the chosen first), and those skipped."""

    strategy: str
    order: tuple[Candidate, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def chosen(self) -> Candidate | None:
        """The candidate to try first, or ``None`` when every one was skipped."""
        return self.order[0] if self.order else None

    def skipped_header(self) -> str:
        """The skipped candidates as ``provider/model=reason`` pairs, comma separated (``""``: none)."""
        return ", ".join(f"{s.candidate.name}={s.reason}" for s in self.skipped)
