"""The routing stage's fast path: the usual choice, where every candidate can serve and only their order is left.

A rule with several candidates (or a model name several providers serve) is
planned by :mod:`proxy.optimise.planner`, which describes each candidate as a
:class:`~proxy.optimise.candidates.Candidate` and asks why it might not
serve. On a request path of a few hundred microseconds that care costs about
30 µs, nearly all of it spent finding that nothing is wrong. A
:class:`QuickChoice`, built once per rule when the config is loaded, checks
the same conditions with everything static precomputed, and returns the
strategy's order (:func:`quick_order`, the same order
:func:`proxy.optimise.strategies.ordered` gives), or ``None`` as soon as one
candidate might not serve, or any condition needs a closer look:

* its breaker is not closed, its provider is marked down or has no key;
* a context window might not hold the prompt (the bound of
  :mod:`proxy.tokens.bound`, images counted in the parsed body);
* the output asked for is above what it may write;
* the request uses a capability some candidate lacks;
* its upstream's latest remaining counts fall short of the request.

``None`` sends the request to the full planner, which says which candidate
is skipped and why. Nothing here is counted or parsed beyond the remaining
counts of the latest rate-limit headers.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from proxy.optimise.capabilities import ALL, request_capabilities
from proxy.optimise.prompt_size import image_parts
from proxy.optimise.strategies import ESTIMATED_OUTPUT_TOKENS, Strategy
from proxy.tokens.bound import BOUND_SLACK, MIN_IMAGE_PART_BYTES, ROUGH_BYTES_PER_TOKEN
from proxy.tokens.estimate import IMAGE_TOKENS
from proxy.upstream.breakers import CLOSED, BreakerBoard

if TYPE_CHECKING:
    from proxy.config.model import ModelConfig
    from proxy.optimise.deployment_stats import DeploymentStats


class QuickCandidate:
    """One candidate's static facts, as the fast path reads them."""

    __slots__ = ("model", "name", "provider", "model_name", "configured", "units_in", "units_out", "largest",
                 "default_output", "window", "counted")

    def __init__(self, model: "ModelConfig", configured: bool) -> None:
        self.model = model
        self.name = model.qualified_name
        self.provider, self.model_name = model.provider, model.name
        self.configured = configured
        units = model.price.units if model.price is not None else None
        self.units_in = units[0] if units else None
        self.units_out = units[3] if units else None
        largest, ceiling = model.output_limit, model.max_tokens
        self.largest = ceiling if largest is None else (largest if ceiling is None else min(largest, ceiling))
        self.default_output = model.default_output
        self.window = model.context_limit if model.counter is not None else None
        self.counted = model.counter is not None


class QuickChoice:
    """A choice's candidates, precomputed for :func:`quick_order`."""

    __slots__ = ("strategy", "candidates", "lacking", "priced", "weights")

    def __init__(self, strategy: Strategy, models: Sequence["ModelConfig"], configured: Iterable[str]) -> None:
        ready = set(configured)
        self.strategy = strategy
        self.candidates = tuple(QuickCandidate(m, m.provider in ready) for m in models)
        self.lacking = any(m.capabilities != ALL for m in models)
        self.priced = all(c.units_in is not None for c in self.candidates)
        self.weights = [max(m.weight, 0.0) for m in models]


def quick_order(choice: QuickChoice, body: dict[str, Any], body_bytes: int, windows: bool,
                board: BreakerBoard, stats: "DeploymentStats", now: float,
                rng: random.Random) -> list["ModelConfig"] | None:
    """The strategy's order of ``choice``'s candidates when every one can surely serve; else ``None``."""
    asked = None
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if type(value) is int and value >= 1:
            asked = value
            break
    if choice.lacking:
        used = request_capabilities(body)
        if used and not all(used <= c.model.capabilities for c in choice.candidates):
            return None
    prompt = body_bytes // ROUGH_BYTES_PER_TOKEN
    bound = body_bytes + BOUND_SLACK
    images = -1
    for candidate in choice.candidates:
        if (not candidate.configured or board.provider_down(candidate.provider)
                or board.get(candidate.provider, candidate.model_name).state != CLOSED):
            return None
        output = asked if asked is not None else candidate.default_output
        if candidate.largest is not None and output > candidate.largest:
            return None
        window = candidate.window
        if windows and window is not None:
            room = window - output
            if bound > room:
                return None
            if bound + (body_bytes // MIN_IMAGE_PART_BYTES) * IMAGE_TOKENS > room:
                if images < 0:
                    images = image_parts(body.get("messages"))
                if bound + images * IMAGE_TOKENS > room:
                    return None
        state = stats.peek(candidate.name)
        if state is not None and not state.has_room(prompt, now):
            return None
    return _ordered(choice, prompt, asked, stats, body.get("stream") is True, rng)


def _ordered(choice: QuickChoice, prompt: int, asked: int | None, stats: "DeploymentStats", stream: bool,
             rng: random.Random) -> list["ModelConfig"] | None:
    """The order :func:`proxy.optimise.strategies.ordered` gives when no candidate is skipped."""
    candidates = choice.candidates
    strategy = choice.strategy
    if strategy is Strategy.CHEAPEST:
        if not choice.priced:
            return None
        output = asked if asked is not None else ESTIMATED_OUTPUT_TOKENS
        ranked = sorted(candidates, key=lambda c: prompt * c.units_in + output * c.units_out)  # type: ignore[operator]
    elif strategy is Strategy.FASTEST:
        ranked = sorted(candidates, key=lambda c: _speed(stats, c.name, stream))
    elif strategy is Strategy.LEAST_BUSY:
        ranked = sorted(candidates, key=lambda c: _busy(stats, c.name))
    else:
        if sum(choice.weights) <= 0:
            return [c.model for c in candidates]
        chosen = rng.choices(candidates, weights=choice.weights)[0]
        return [chosen.model, *(c.model for c in candidates if c is not chosen)]
    return [c.model for c in ranked]


def _speed(stats: "DeploymentStats", name: str, stream: bool) -> tuple[int, float]:
    state = stats.peek(name)
    value = None if state is None else (state.ttft if stream else state.latency)
    return (0, 0.0) if value is None else (1, value)


def _busy(stats: "DeploymentStats", name: str) -> int:
    state = stats.peek(name)
    return 0 if state is None else state.in_flight
