"""Turn the models that may answer a request into a plan: the order to try them, and those skipped.

A request has a *choice* (a rule's candidates, or the deployments of one
model name, chosen among by a strategy) and a *rest* (a single model, then
the fallbacks of the plan). :func:`plan_request`:

1. describes each candidate of the choice as it stands now (breaker, moving
   averages, in-flight count and rate-limit headroom from
   :class:`~proxy.optimise.deployment_stats.DeploymentStats`, limits and
   capabilities from the config) and lets the strategy order the ones that
   can serve (:mod:`proxy.optimise.strategies`);
2. appends the rest, skipping only those whose context window cannot hold the
   request (breakers and keys of the rest are the fallback loop's business);
   without a choice, the first of the rest is the model the request is for,
   and is never replaced by a fallback with a larger window: if it cannot
   hold the request, it is trimmed or refused;
3. when nothing can serve and a model skipped for its window has ``trim``,
   drops the conversation's oldest turns to fit the first such model in the
   strategy's order (:func:`proxy.optimise.trimming.trim_oldest`) and plans
   once more;
4. when still nothing can serve: the candidates skipped for another reason
   than their window, in the strategy's order (so the fallback loop answers
   503 or 429 as it always has), or, if every one was skipped for its
   window, :attr:`Plan.too_long` says why (a 400 ``context_length_exceeded``).

Windows are only checked when asked (chat requests) and only where known;
the prompt is only counted when its size in bytes puts a window at risk
(:class:`~proxy.optimise.prompt_size.PromptSize`). Otherwise the request's
rough size (bytes / 4) serves the cost ranking and the headroom check, never
the fitting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from proxy.config.model import ModelConfig
from proxy.optimise.candidates import Candidate, RequestNeeds, SkipReason, request_needs
from proxy.optimise.deployment_stats import DeploymentStats
from proxy.optimise.eligibility import skip_reason
from proxy.optimise.prompt_size import PromptSize
from proxy.optimise.strategies import Strategy, ordered
from proxy.optimise.trimming import trim_oldest
from proxy.tokens.bound import rough_prompt_tokens
from proxy.tokens.counting import PromptTokens

Unavailable = Callable[[ModelConfig], bool]
"""Whether a model's provider or breaker lets nothing through now (``breaker_open``)."""
_RNG = random.Random()


@dataclass(slots=True)
class Plan:
    """The models to try in order, the ones skipped and why, and what trimming did."""

    order: tuple[ModelConfig, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    """``(provider/model, reason)`` of every model passed over, in the order they were looked at."""
    strategy: str | None = None
    """The strategy that chose, when there was a choice."""
    trimmed: int = 0
    """Messages dropped to fit the window (0: none)."""
    trimmed_tokens: int = 0
    too_long: str | None = None
    """Why no model can hold the request (then ``order`` is empty)."""

    def skipped_header(self) -> str:
        """``X-Gateway-Skipped``: ``provider/model=reason`` pairs, comma separated."""
        return ", ".join(f"{name}={reason}" for name, reason in self.skipped)


@dataclass(slots=True)
class _Round:
    """One planning pass, before the fallbacks to nothing-can-serve."""

    order: list[ModelConfig]
    skipped: list[tuple[ModelConfig, SkipReason]]
    others: list[Candidate]
    """Candidates of the choice skipped for something else than their window (config order)."""


@dataclass(slots=True)
class Choice:
    """The models a request may go to: a strategy's ``candidates``, then the ``rest`` (and ``fallbacks_of``).

    ``fallbacks_of(chosen)`` gives the fallbacks after the candidate a
    strategy chose (its ``fallback_map`` entries, the same model elsewhere);
    ``keep_others`` keeps the candidates not chosen as fallbacks (the config
    has fallback on).
    """

    candidates: Sequence[ModelConfig] = ()
    strategy: Strategy | None = None
    rest: Sequence[ModelConfig] = ()
    fallbacks_of: Callable[[ModelConfig], Sequence[ModelConfig]] | None = None
    keep_others: bool = True


def plan_request(choice: Choice, body: dict[str, Any], body_bytes: int, *, windows: bool,
                 unavailable: Unavailable, stats: DeploymentStats, now: float,
                 rng: random.Random = _RNG) -> Plan:
    """The plan for ``body`` (``body_bytes`` long): ``choice``'s candidates in its strategy's order, then the rest.

    ``windows``: check context windows (the body is a Chat Completions
    request). ``now`` is on the clock the headroom was read with (the event
    loop's). ``body["messages"]`` is replaced when the conversation is trimmed.
    """
    size = PromptSize(body, body_bytes) if windows else None
    needs = request_needs(body, rough_prompt_tokens(body_bytes)) if choice.candidates else _plain_needs(body)
    planned = _plan_once(choice, needs, size, unavailable, stats, now, rng)
    trimmed = 0
    trimmed_tokens = 0
    if not planned.order and size is not None:
        cut = _trim(planned, choice.strategy, needs, size, rng)
        if cut is not None:
            trimmed, trimmed_tokens = cut
            planned = _plan_once(choice, needs, size, unavailable, stats, now, rng)
    order = planned.order
    too_long = None
    if not order:
        order = [c.ref for c in ordered(choice.strategy or Strategy.WEIGHTED, planned.others, needs, rng)]
        if not choice.keep_others:
            order = order[:1]
        if not order:
            too_long = _too_long_message(planned.skipped, needs, size)
    strategy = choice.strategy.value if choice.strategy is not None else None
    return Plan(tuple(order), tuple((m.qualified_name, str(r)) for m, r in planned.skipped),
                strategy, trimmed, trimmed_tokens, too_long)


def surely_fits(models: Sequence[ModelConfig], body: dict[str, Any], body_bytes: int) -> bool:
    """Whether every one of ``models`` can surely hold the request, by its size alone (never counting).

    The quick test of a plan without a choice: when it says yes, the plan
    stands as it is; when no, :func:`plan_request` looks closer.
    """
    size: PromptSize | None = None
    asked = requested_output(body)
    for model in models:
        window, largest = model.context_limit, model.output_limit
        if window is None and largest is None:
            continue
        output = asked if asked is not None else model.default_output
        if model.max_tokens is not None and output > model.max_tokens:
            continue  # that limit's own check answers
        if largest is not None and output > largest:
            return False
        if window is not None and model.counter is not None:
            if size is None:
                size = PromptSize(body, body_bytes)
            if size.at_risk(window, output):
                return False
    return True


def requested_output(body: dict[str, Any]) -> int | None:
    """The request's ``max_completion_tokens`` or ``max_tokens`` (a whole number of at least 1), if any."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if type(value) is int and value >= 1:
            return value
    return None


def _plain_needs(body: dict[str, Any]) -> RequestNeeds:
    """What a request without a choice needs for the window check: only its output limit."""
    return RequestNeeds(0, requested_output(body))


def _plan_once(choice: Choice, needs: RequestNeeds, size: PromptSize | None, unavailable: Unavailable,
               stats: DeploymentStats, now: float, rng: random.Random) -> _Round:
    skipped: list[tuple[ModelConfig, SkipReason]] = []
    others: list[Candidate] = []
    order: list[ModelConfig] = []
    rest = choice.rest
    if choice.candidates:
        eligible: list[Candidate] = []
        for model in choice.candidates:
            candidate, own_needs = _candidate(model, needs, size, unavailable, stats)
            reason = skip_reason(candidate, own_needs, now)
            if reason is None:
                eligible.append(candidate)
            else:
                skipped.append((model, reason))
                if reason is not SkipReason.CONTEXT_WINDOW:
                    others.append(candidate)
        order = [c.ref for c in ordered(choice.strategy or Strategy.WEIGHTED, eligible, needs, rng)]
        if not choice.keep_others:
            order = order[:1]
        if order and choice.fallbacks_of is not None:
            rest = (*rest, *choice.fallbacks_of(order[0]))
    seen = {m.qualified_name for m in choice.candidates}
    for index, model in enumerate(rest):
        if model.qualified_name in seen:
            continue
        seen.add(model.qualified_name)
        if size is not None and not _fits(model, needs, size):
            skipped.append((model, SkipReason.CONTEXT_WINDOW))
            if index == 0 and not choice.candidates:  # the one model asked for: no silent switch
                return _Round([], skipped, others)
        else:
            order.append(model)
    return _Round(order, skipped, others)


def _candidate(model: ModelConfig, needs: RequestNeeds, size: PromptSize | None, unavailable: Unavailable,
               stats: DeploymentStats) -> tuple[Candidate, RequestNeeds]:
    """``model`` as a strategy sees it now, and what the request needs of it (its own count, if counted)."""
    name = model.qualified_name
    state = stats.state(name)
    candidate = Candidate(name, model.price, model.weight, state.ttft, state.latency, state.in_flight,
                          unavailable(model), None, _largest_output(model), model.default_output,
                          model.capabilities, state.headroom, model)
    window = model.context_limit if size is not None else None
    if window is None or model.counter is None or not size.at_risk(window, needs.output_tokens(candidate)):  # type: ignore[union-attr]
        return candidate, needs
    candidate.context_window = window
    counted = size.counted(model.counter)  # type: ignore[union-attr]
    return candidate, RequestNeeds(counted.total, needs.max_tokens, needs.capabilities, needs.stream)


def _output(model: ModelConfig, needs: RequestNeeds) -> int:
    return needs.max_tokens if needs.max_tokens is not None else model.default_output


def _largest_output(model: ModelConfig) -> int | None:
    """The most output a candidate may be asked for: its largest output, or its configured ``max_tokens``."""
    largest, configured = model.output_limit, model.max_tokens
    if configured is None:
        return largest
    return configured if largest is None else min(largest, configured)


def _output_allowed(model: ModelConfig, needs: RequestNeeds) -> bool:
    """Whether the output the request asks of ``model`` is one it may write (so trimming could help)."""
    largest = _largest_output(model)
    return largest is None or _output(model, needs) <= largest


def _fits(model: ModelConfig, needs: RequestNeeds, size: PromptSize) -> bool:
    """Whether ``model``'s window (and largest output) can hold the request; unknown limits always can.

    An output above the model's configured ``max_tokens`` is left to that
    limit's own check (400 ``max_tokens_exceeded`` for the routed model).
    """
    output = _output(model, needs)
    if model.max_tokens is not None and output > model.max_tokens:
        return True
    largest = model.output_limit
    if largest is not None and output > largest:
        return False
    window = model.context_limit
    if window is None or model.counter is None or not size.at_risk(window, output):
        return True
    return size.counted(model.counter).total + output <= window


def _trim(planned: _Round, strategy: Strategy | None, needs: RequestNeeds, size: PromptSize,
          rng: random.Random) -> tuple[int, int] | None:
    """Drop the oldest turns to fit the first trimmable model skipped for its window; ``None``: none can."""
    messages = size.body.get("messages")
    if not isinstance(messages, list):
        return None
    targets = [m for m, reason in planned.skipped if reason is SkipReason.CONTEXT_WINDOW and m.trim is not None
               and m.counter is not None and m.context_limit is not None and _output_allowed(m, needs)]
    if not targets:
        return None
    if strategy is not None and len(targets) > 1:
        as_candidates = [Candidate(m.qualified_name, m.price, m.weight, ref=m) for m in targets]
        targets = [c.ref for c in ordered(strategy, as_candidates, needs, rng)]
    for target in targets:
        cut = _trim_for(target, messages, needs, size)
        if cut is not None:
            return cut
    return None


def _trim_for(model: ModelConfig, messages: list[Any], needs: RequestNeeds,
              size: PromptSize) -> tuple[int, int] | None:
    """Trim ``messages`` to ``model``'s window; the dropped messages and tokens, or ``None``."""
    assert model.counter is not None and model.context_limit is not None and model.trim is not None
    counted = size.counted(model.counter)
    if len(counted.messages) != len(messages):
        return None
    tokens = dict(zip(map(id, messages), counted.messages))
    budget = model.context_limit - _output(model, needs) - counted.fixed
    result = trim_oldest(messages, budget, lambda m: tokens[id(m)], keep_system=model.trim.keep_system)
    if result is None or not result.dropped_count:
        return None
    size.body["messages"] = result.messages
    kept = tuple(tokens[id(m)] for m in result.messages)
    size.forget_counts()
    size.know(PromptTokens(counted.fixed + sum(kept), counted.fixed, kept, counted.method))
    return result.dropped_count, result.dropped_tokens


def _too_long_message(skipped: list[tuple[ModelConfig, SkipReason]], needs: RequestNeeds,
                      size: PromptSize | None) -> str:
    """Why no model can hold the request, model by model."""
    reasons = []
    for model, reason in skipped:
        if reason is not SkipReason.CONTEXT_WINDOW:
            continue
        output = _output(model, needs)
        largest = _largest_output(model)
        if largest is not None and output > largest:
            reasons.append(f"{model.qualified_name} writes at most {largest:,} output tokens and the "
                           f"request asks for {output:,}")
            continue
        window = model.context_limit
        if size is None or model.counter is None or window is None:
            continue
        counted = size.counted(model.counter)
        how = "counted" if model.counter.exact else "estimated"
        reasons.append(f"{model.qualified_name} holds {window:,} tokens and the request needs "
                       f"{counted.total + output:,} ({counted.total:,} prompt, {how}, + {output:,} output)")
    return ("This request does not fit the context window of any model that could answer it: "
            + "; ".join(reasons) + ". Shorten the conversation, ask for fewer output tokens (max_tokens), "
            "or use a model with a larger window.")
