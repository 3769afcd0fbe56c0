"""Routing strategies over candidate descriptors (``proxy/optimise/strategies.py``,
``eligibility.py``, ``candidates.py``).

Each strategy chooses as documented, the others following as fallbacks, with
breakers, context windows, capabilities and upstream headroom taking
candidates out, each with its reason.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from proxy.optimise.candidates import (
    Candidate,
    RequestNeeds,
    RoutePlan,
    SkipReason,
    Skipped,
    request_needs,
)
from proxy.optimise.capabilities import IMAGES, TOOLS, model_capabilities
from proxy.optimise.eligibility import skip_reason
from proxy.optimise.headroom import Allowance, Headroom
from proxy.optimise.strategies import ESTIMATED_OUTPUT_TOKENS, Strategy, plan_route
from proxy.usage.pricing import ModelPrice

GPT35 = Candidate("openai/gpt-3.5-turbo", ModelPrice(0.5, 1.5), context_window=16385, max_output=4096,
                  capabilities=model_capabilities("openai", "gpt-3.5-turbo"))
HAIKU = Candidate("anthropic/claude-3-haiku", ModelPrice(0.25, 1.25), context_window=200_000, max_output=4096,
                  default_output=4096, capabilities=model_capabilities("anthropic", "claude-3-haiku"))
SONNET = Candidate("anthropic/claude-3-5-sonnet", ModelPrice(3, 15), context_window=200_000, max_output=8192,
                   default_output=4096)
NOW = 100.0
SHORT = RequestNeeds(prompt_tokens=500)


def names(plan: RoutePlan) -> list[str]:
    return [c.name for c in plan.order]


def skips(plan: RoutePlan) -> dict[str, str]:
    return {s.candidate.name: str(s.reason) for s in plan.skipped}


# ------------------------------------------------------------------ cheapest


def test_cheapest_orders_by_the_requests_cost_at_each_price() -> None:
    plan = plan_route(Strategy.CHEAPEST, [SONNET, GPT35, HAIKU], SHORT, NOW)
    assert names(plan) == ["anthropic/claude-3-haiku", "openai/gpt-3.5-turbo", "anthropic/claude-3-5-sonnet"]
    assert plan.strategy == "cheapest" and plan.chosen is HAIKU and plan.skipped == ()


def test_cheapest_weighs_output_when_the_request_asks_for_much() -> None:
    cheap_in = Candidate("a/cheap-input", ModelPrice(0.1, 10.0))
    cheap_out = Candidate("b/cheap-output", ModelPrice(1.0, 2.0))
    # 1,000 prompt tokens and 256 assumed output: 0.1*1000 + 10*256 = 2660 > 1*1000 + 2*256 = 1512
    plan = plan_route(Strategy.CHEAPEST, [cheap_in, cheap_out], RequestNeeds(1000), NOW)
    assert names(plan)[0] == "b/cheap-output"
    long_prompt = RequestNeeds(prompt_tokens=100_000, max_tokens=10)
    assert names(plan_route(Strategy.CHEAPEST, [cheap_out, cheap_in], long_prompt, NOW))[0] == "a/cheap-input"
    assert ESTIMATED_OUTPUT_TOKENS == 256


def test_cheapest_ties_keep_config_order_and_unpriced_come_last() -> None:
    twin_a = Candidate("a/m", ModelPrice(1, 1))
    twin_b = Candidate("b/m", ModelPrice(1, 1))
    free = Candidate("c/unpriced")
    assert names(plan_route(Strategy.CHEAPEST, [free, twin_b, twin_a], SHORT, NOW)) == ["b/m", "a/m", "c/unpriced"]


# ------------------------------------------------------------------ fastest


def test_fastest_uses_latency_for_plain_requests_and_ttft_for_streams() -> None:
    quick_start = Candidate("a/quick-start", ttft=0.1, latency=3.0)
    quick_end = Candidate("b/quick-end", ttft=0.5, latency=1.0)
    assert names(plan_route(Strategy.FASTEST, [quick_start, quick_end], SHORT, NOW))[0] == "b/quick-end"
    stream = RequestNeeds(prompt_tokens=500, stream=True)
    assert names(plan_route(Strategy.FASTEST, [quick_end, quick_start], stream, NOW))[0] == "a/quick-start"


def test_fastest_tries_an_unmeasured_candidate_first() -> None:
    measured = Candidate("a/measured", latency=0.2)
    new = Candidate("b/new")
    assert names(plan_route(Strategy.FASTEST, [measured, new], SHORT, NOW)) == ["b/new", "a/measured"]


# ------------------------------------------------------------------ least_busy


def test_least_busy_takes_the_fewest_in_flight_ties_in_config_order() -> None:
    busy, idle, idle_too = (Candidate("a/busy", in_flight=7), Candidate("b/idle", in_flight=1),
                            Candidate("c/idle", in_flight=1))
    plan = plan_route(Strategy.LEAST_BUSY, [busy, idle, idle_too], SHORT, NOW)
    assert names(plan) == ["b/idle", "c/idle", "a/busy"]


# ------------------------------------------------------------------ weighted


def test_weighted_draws_in_proportion_to_weight_the_rest_following_in_order() -> None:
    heavy, light = Candidate("a/heavy", weight=3.0), Candidate("b/light", weight=1.0)
    rng = random.Random(7)
    firsts = Counter(plan_route(Strategy.WEIGHTED, [heavy, light], SHORT, NOW, rng).order[0].name
                     for _ in range(4000))
    assert 0.70 < firsts["a/heavy"] / 4000 < 0.80
    plan = plan_route(Strategy.WEIGHTED, [heavy, light, SONNET], SHORT, NOW, random.Random(1))
    assert sorted(names(plan)) == sorted(["a/heavy", "b/light", SONNET.name])
    rest = [n for n in ["a/heavy", "b/light", SONNET.name] if n != names(plan)[0]]
    assert names(plan)[1:] == rest


def test_weighted_never_draws_a_zero_weight_while_others_have_some() -> None:
    never, always = Candidate("a/never", weight=0.0), Candidate("b/always", weight=1.0)
    rng = random.Random(3)
    assert {plan_route(Strategy.WEIGHTED, [never, always], SHORT, NOW, rng).order[0].name
            for _ in range(200)} == {"b/always"}


# ------------------------------------------------------------------ skipping


def test_an_open_breaker_skips_the_cheapest() -> None:
    broken = Candidate(HAIKU.name, HAIKU.price, breaker_open=True)
    plan = plan_route(Strategy.CHEAPEST, [GPT35, broken], SHORT, NOW)
    assert names(plan) == [GPT35.name] and skips(plan) == {HAIKU.name: "breaker_open"}


def test_a_prompt_too_long_for_a_window_skips_it() -> None:
    long = RequestNeeds(prompt_tokens=15_000, max_tokens=2000)  # 17,000 > gpt-3.5-turbo's 16,385
    plan = plan_route(Strategy.CHEAPEST, [GPT35, SONNET], long, NOW)
    assert names(plan) == [SONNET.name] and skips(plan) == {GPT35.name: "context_window"}


def test_the_default_output_counts_against_the_window() -> None:
    tight = Candidate("anthropic/tight", ModelPrice(1, 1), context_window=10_000, default_output=4096)
    assert skip_reason(tight, RequestNeeds(prompt_tokens=6000), NOW) is SkipReason.CONTEXT_WINDOW
    assert skip_reason(tight, RequestNeeds(prompt_tokens=6000, max_tokens=1000), NOW) is None


def test_asking_for_more_output_than_a_model_gives_skips_it() -> None:
    plan = plan_route(Strategy.CHEAPEST, [HAIKU, SONNET], RequestNeeds(prompt_tokens=100, max_tokens=8000), NOW)
    assert names(plan) == [SONNET.name] and skips(plan) == {HAIKU.name: "context_window"}


def test_a_missing_capability_skips() -> None:
    with_image = RequestNeeds(prompt_tokens=500, capabilities=frozenset((IMAGES, TOOLS)))
    plan = plan_route(Strategy.CHEAPEST, [GPT35, HAIKU], with_image, NOW)
    assert names(plan) == [HAIKU.name] and skips(plan) == {GPT35.name: "capability"}


def test_no_headroom_left_skips_until_the_reset() -> None:
    spent = Candidate(HAIKU.name, HAIKU.price, headroom=Headroom(requests=Allowance(0, NOW + 5)))
    assert skips(plan_route(Strategy.CHEAPEST, [spent, GPT35], SHORT, NOW)) == {HAIKU.name: "rate_limited"}
    assert names(plan_route(Strategy.CHEAPEST, [spent, GPT35], SHORT, NOW + 5))[0] == HAIKU.name
    few_tokens = Candidate(HAIKU.name, HAIKU.price, headroom=Headroom(tokens=Allowance(400, NOW + 5)))
    assert skips(plan_route(Strategy.CHEAPEST, [few_tokens, GPT35], SHORT, NOW)) == {HAIKU.name: "rate_limited"}


def test_the_first_reason_found_is_the_one_given() -> None:
    everything_wrong = Candidate("x/y", breaker_open=True, context_window=10, capabilities=frozenset(),
                                 headroom=Headroom(requests=Allowance(0, NOW + 5)))
    needs = RequestNeeds(prompt_tokens=500, capabilities=frozenset((TOOLS,)))
    assert skip_reason(everything_wrong, needs, NOW) is SkipReason.BREAKER_OPEN
    assert skip_reason(Candidate("x/y", context_window=10, capabilities=frozenset()), needs, NOW) \
        is SkipReason.CONTEXT_WINDOW
    assert skip_reason(Candidate("x/y", capabilities=frozenset(),
                                 headroom=Headroom(requests=Allowance(0, NOW + 5))), needs, NOW) \
        is SkipReason.CAPABILITY


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_skips_the_same_way_and_can_be_left_with_none(strategy: Strategy) -> None:
    long = RequestNeeds(prompt_tokens=300_000)
    plan = plan_route(strategy, [GPT35, HAIKU], long, NOW)
    assert plan.order == () and plan.chosen is None
    assert plan.skipped == (Skipped(GPT35, SkipReason.CONTEXT_WINDOW), Skipped(HAIKU, SkipReason.CONTEXT_WINDOW))
    assert plan.skipped_header() == "openai/gpt-3.5-turbo=context_window, anthropic/claude-3-haiku=context_window"


def test_the_callers_object_rides_along() -> None:
    marker = object()
    plan = plan_route(Strategy.CHEAPEST, [Candidate("a/b", ref=marker)], SHORT, NOW)
    assert plan.chosen is not None and plan.chosen.ref is marker and plan.skipped_header() == ""


def test_a_bodys_needs_are_read_off_it() -> None:
    body = {"model": "m", "stream": True, "max_tokens": 300, "tools": [{"type": "function"}],
            "messages": [{"role": "user", "content": "hi"}]}
    assert request_needs(body, 42) == RequestNeeds(42, 300, frozenset((TOOLS,)), True)
    assert request_needs({**body, "max_completion_tokens": 100}, 42).max_tokens == 100
    assert request_needs({"messages": [], "max_tokens": 0, "stream": "yes"}, 1) == RequestNeeds(1)
    assert request_needs({"messages": [], "max_tokens": True}, 1).max_tokens is None
