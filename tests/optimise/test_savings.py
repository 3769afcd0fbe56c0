"""What routing, the prompt cache and trimming saved (``proxy/optimise/savings.py``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.optimise.savings import SavingReason, saved_by_prompt_cache, saved_by_routing, saved_by_trim
from proxy.usage.pricing import ModelPrice, TokenUsage, cost_usd

HAIKU = ModelPrice(input=0.25, output=1.25, cached_input=0.03, cache_write=0.3)
GPT35 = ModelPrice(input=0.5, output=1.5)
OPUS = ModelPrice(input=15, output=75, cached_input=1.5, cache_write=18.75)


def test_routing_saves_the_dearest_candidates_price_of_the_same_usage() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=200)
    # at Opus: 1000 * 15e-6 + 200 * 75e-6 = 0.03; at Haiku: 1000 * 0.25e-6 + 200 * 1.25e-6 = 0.0005
    assert saved_by_routing(usage, HAIKU, [HAIKU, GPT35, OPUS]) == 0.0295


def test_routing_to_the_dearest_saves_nothing() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=200)
    assert saved_by_routing(usage, OPUS, [HAIKU, OPUS]) == 0.0


def test_routing_savings_price_cached_tokens_at_each_candidates_cache_price() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=0, cached_tokens=800)
    # Opus: 200 * 15e-6 + 800 * 1.5e-6 = 0.0042; Haiku: 200 * 0.25e-6 + 800 * 0.03e-6 = 0.000074
    assert saved_by_routing(usage, HAIKU, [OPUS, HAIKU]) == 0.004126


def test_unknown_prices_save_nothing() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=10)
    assert saved_by_routing(usage, None, [OPUS]) == 0.0
    assert saved_by_routing(usage, HAIKU, [None]) == 0.0
    assert saved_by_prompt_cache(None, usage) == 0.0
    assert saved_by_trim(None, 500) == 0.0


def test_prompt_cache_reads_save_the_difference_to_fresh_input() -> None:
    usage = TokenUsage(prompt_tokens=10_000, completion_tokens=100, cached_tokens=8000, cache_write_tokens=1000)
    # 8,000 reads at 15 - 1.5 per million
    assert saved_by_prompt_cache(OPUS, usage) == 0.108


def test_trimming_saves_the_dropped_tokens_at_the_input_price() -> None:
    assert saved_by_trim(OPUS, 2000) == 0.03
    assert saved_by_trim(OPUS, 0) == 0.0


def test_the_reasons_are_the_metrics_labels() -> None:
    assert [r.value for r in SavingReason] == ["cache", "routing", "prompt_cache", "trim"]


@settings(max_examples=300, deadline=None, database=None)
@given(prompt=st.integers(0, 10**7), completion=st.integers(0, 10**6), cached=st.integers(0, 10**7))
def test_routing_savings_are_the_exact_difference_and_never_negative(prompt: int, completion: int,
                                                                     cached: int) -> None:
    usage = TokenUsage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=min(cached, prompt))
    saved = saved_by_routing(usage, HAIKU, [GPT35, OPUS, HAIKU])
    assert saved >= 0.0
    assert saved == round(cost_usd(OPUS, usage) - cost_usd(HAIKU, usage), 10)
