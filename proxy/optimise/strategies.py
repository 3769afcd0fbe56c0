"""Routing strategies: which candidate answers a request, and the fallback order of the others.

:func:`plan_route` first sets aside the candidates that cannot serve
(:mod:`proxy.optimise.eligibility`), then orders the rest by the strategy;
ties always keep the rule's (config) order:

``cheapest``
    lowest estimated cost of this request at each candidate's price: its
    prompt tokens at the input price plus its output (the request's
    ``max_tokens``, else :data:`ESTIMATED_OUTPUT_TOKENS`) at the output
    price, in the same integer units :func:`proxy.usage.pricing.cost_usd`
    uses. Candidates without a price come last (the config refuses
    ``cheapest`` over unpriced models).
``fastest``
    lowest moving-average time to first token for a stream, latency for a
    plain request (:mod:`proxy.optimise.deployment_stats`). A candidate not
    yet measured comes first, so that every deployment gets measured; once
    measured it competes on its figures.
``least_busy``
    fewest requests in flight to the deployment.
``weighted``
    the gateway's choice for a model served by several providers, and the
    default of a rule: one candidate drawn at random in proportion to its
    ``weight``, the others after it in config order.

When every candidate is skipped the plan's order is empty; the caller
answers from the skip reasons (all ``context_window``: the request is too
long for every candidate).
"""

from __future__ import annotations

import enum
import random
from typing import Any, Callable, Sequence

from proxy.optimise.candidates import Candidate, RequestNeeds, RoutePlan, Skipped
from proxy.optimise.eligibility import skip_reason

ESTIMATED_OUTPUT_TOKENS = 256
"""The output a request without ``max_tokens`` is costed at by ``cheapest`` (the same for all)."""
_RNG = random.Random()


class Strategy(enum.StrEnum):
    """How a multi-candidate rule chooses."""

    CHEAPEST = "cheapest"
    FASTEST = "fastest"
    LEAST_BUSY = "least_busy"
    WEIGHTED = "weighted"


def plan_route(strategy: Strategy, candidates: Sequence[Candidate], request: RequestNeeds, now: float,
               rng: random.Random = _RNG) -> RoutePlan:
    """The order in which to try ``candidates`` for ``request`` (``now`` on the headroom's clock)."""
    eligible: list[Candidate] = []
    skipped: list[Skipped] = []
    for candidate in candidates:
        reason = skip_reason(candidate, request, now)
        if reason is None:
            eligible.append(candidate)
        else:
            skipped.append(Skipped(candidate, reason))
    return RoutePlan(strategy.value, ordered(strategy, eligible, request, rng), tuple(skipped))


def ordered(strategy: Strategy, candidates: list[Candidate], request: RequestNeeds,
          rng: random.Random = _RNG) -> tuple[Candidate, ...]:
    """``candidates`` (all able to serve) in ``strategy``'s order."""
    if len(candidates) < 2:
        return tuple(candidates)
    if strategy is Strategy.CHEAPEST:
        output = request.max_tokens if request.max_tokens is not None else ESTIMATED_OUTPUT_TOKENS
        return _sorted(candidates, lambda c: _cost_units(c, request.prompt_tokens, output))
    if strategy is Strategy.FASTEST:
        return _sorted(candidates, _ttft if request.stream else _latency)
    if strategy is Strategy.LEAST_BUSY:
        return _sorted(candidates, _in_flight)
    return _weighted(candidates, rng)


def _sorted(candidates: list[Candidate], key: Callable[[Candidate], Any]) -> tuple[Candidate, ...]:
    return tuple(sorted(candidates, key=key))  # sorted is stable: ties keep config order


def _cost_units(candidate: Candidate, prompt: int, output: int) -> tuple[int, int]:
    price = candidate.price
    if price is None:
        return (1, 0)
    units = price.units
    return (0, prompt * units[0] + output * units[3])


def _ttft(candidate: Candidate) -> tuple[int, float]:
    return (0, 0.0) if candidate.ttft is None else (1, candidate.ttft)


def _latency(candidate: Candidate) -> tuple[int, float]:
    return (0, 0.0) if candidate.latency is None else (1, candidate.latency)


def _in_flight(candidate: Candidate) -> int:
    return candidate.in_flight


def _weighted(candidates: list[Candidate], rng: random.Random) -> tuple[Candidate, ...]:
    weights = [max(c.weight, 0.0) for c in candidates]
    if sum(weights) <= 0:
        return tuple(candidates)
    chosen = rng.choices(candidates, weights=weights)[0]
    return (chosen, *(c for c in candidates if c is not chosen))
