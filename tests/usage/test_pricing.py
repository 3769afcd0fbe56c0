"""Prices of models and the cost of a request (``proxy/usage/pricing.py``).

* a model's ``pricing`` in the config wins; otherwise the genai-prices
  package's shipped data prices the spec's models, dated ids and aliases alike;
* models nobody prices have no price (the caller counts ``cost: null``);
* costs are exact: worked examples computed by hand, cache reads and writes at
  their own prices, and a property test that a cost is the sum of its parts;
* nothing is fetched: the lookups work with the network refused.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import load_config, parse_config
from proxy.formats.anthropic.response import to_openai_usage
from proxy.formats.anthropic.stream import StreamTranslator
from proxy.usage.pricing import (
    DATASET,
    ModelPrice,
    TokenUsage,
    cost_usd,
    dataset_price,
    model_price,
    saved_by_prompt_cache,
)

ROOT = Path(__file__).resolve().parents[2]
ANTHROPIC_DATA = ROOT / "tests" / "data" / "anthropic"
SPEC_CONFIG = ROOT / "config" / "llm_gateway_config.json"
SPEC_KEYS = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "OPENROUTER_API_KEY": "sk-r"}
PURE = settings(max_examples=300, deadline=None, database=None)

OPUS = ModelPrice(input=15, output=75, cached_input=1.5, cache_write=18.75)


# ============================================================ where a price comes from


def test_configured_pricing_wins_over_the_dataset() -> None:
    price = model_price("openai", "gpt-4", {"input": 1, "output": 2, "cached_input": 0.5})
    assert price == ModelPrice(input=1, output=2, cached_input=0.5, cache_write=None, source="config")


def test_a_loaded_config_carries_configured_and_dataset_prices() -> None:
    doc = {
        "providers": {"openai": {"api_key": "sk-x", "models": {
            "gpt-4": {"pricing": {"input": 1, "output": 2, "cached_input": 0.5, "cache_write": 1.25}},
            "gpt-3.5-turbo": {},
        }}},
        "routing": {"default_provider": "openai", "default_model": "gpt-4"},
    }
    models = parse_config(doc, environ={}).providers["openai"].models
    assert models["gpt-4"].price == ModelPrice(1, 2, 0.5, 1.25, "config")
    assert models["gpt-3.5-turbo"].price is not None
    assert models["gpt-3.5-turbo"].price.source == DATASET == "genai-prices"


SPEC_MODELS = [
    ("openai", "gpt-4"),
    ("openai", "gpt-3.5-turbo"),
    ("openai", "text-embedding-ada-002"),
    ("anthropic", "claude-3-opus-20240229"),
    ("anthropic", "claude-3-sonnet-20240229"),
    ("openrouter", "anthropic/claude-3-opus"),
]


@pytest.mark.parametrize(("provider_type", "model"), SPEC_MODELS)
def test_the_dataset_prices_the_spec_models(provider_type: str, model: str) -> None:
    price = model_price(provider_type, model, None)
    assert price is not None, f"{provider_type} {model} has no dataset price"
    assert price.source == "genai-prices"
    assert price.input > 0
    assert price.output >= 0
    if "embedding" not in model:
        assert price.output > 0
    if price.cached_input is not None:
        assert 0 <= price.cached_input < price.input


def test_dataset_prices_known_from_the_providers_price_lists() -> None:
    # USD per million tokens, as OpenAI and Anthropic list them
    assert model_price("openai", "gpt-4", None) == ModelPrice(30, 60, None, None, "genai-prices")
    assert model_price("anthropic", "claude-3-opus-20240229", None) == ModelPrice(
        15, 75, cached_input=1.5, cache_write=18.75, source="genai-prices")
    sonnet = model_price("anthropic", "claude-3-sonnet-20240229", None)
    assert sonnet is not None and sonnet.cached_input == 0.3 and sonnet.cache_write == 3.75


@pytest.mark.parametrize(("dated", "alias"), [
    ("claude-3-opus-20240229", "claude-3-opus"),
    ("claude-3-sonnet-20240229", "claude-3-sonnet"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest"),
])
def test_dated_ids_and_undated_aliases_have_the_same_price(dated: str, alias: str) -> None:
    assert model_price("anthropic", dated, None) == model_price("anthropic", alias, None) is not None


def test_azure_deployments_named_after_the_model_get_openais_price() -> None:
    assert model_price("azure", "gpt-4", None) == model_price("openai", "gpt-4", None) is not None
    assert model_price("azure", "GPT-4", None) == model_price("openai", "gpt-4", None)


def test_openrouter_ids_the_router_does_not_list_get_the_vendors_price() -> None:
    price = model_price("openrouter", "anthropic/claude-3-opus-20240229", None)
    assert price == model_price("anthropic", "claude-3-opus-20240229", None) is not None


def test_tiered_prices_are_taken_at_their_base() -> None:
    """Claude Sonnet 4.5 costs more for every token past 200k prompt tokens: the base price is taken."""
    price = model_price("anthropic", "claude-sonnet-4-5", None)
    assert price == ModelPrice(3, 15, cached_input=0.3, cache_write=3.75, source="genai-prices")


@pytest.mark.parametrize(("provider_type", "model"), [
    ("openai", "no-such-model-anywhere"),
    ("anthropic", "claude-from-the-future-9"),
    ("openrouter", "nobody/knows-this"),
    ("azure", "my-team-deployment"),
    ("openai", "dall-e-3"),  # priced per image, not per token
    ("openai", ""),
    ("mock", "mock-gpt"),
    ("mock", "gpt-4"),
    ("openai_compatible", "gpt-4"),
    ("openai_compatible", "llama3"),
])
def test_models_without_any_price_have_none(provider_type: str, model: str) -> None:
    assert model_price(provider_type, model, None) is None


def test_the_spec_config_prices_every_model_from_the_dataset() -> None:
    config = load_config(SPEC_CONFIG, environ=SPEC_KEYS)
    for provider in config.providers.values():
        for model in provider.models.values():
            assert model.price is not None, model.qualified_name
            assert model.price.source == "genai-prices"


def test_the_embedded_default_prices_its_mock_models_in_the_config() -> None:
    config = load_config(ROOT / "proxy" / "defaults" / "local.json", environ={})
    prices = {m.name: m.price for m in config.providers["mock"].models.values()}
    assert prices == {
        "mock-gpt": ModelPrice(0.5, 1.5, source="config"),
        "mock-fast": ModelPrice(0.1, 0.3, source="config"),
        "mock-embedding": ModelPrice(0.02, 0, source="config"),
    }


def test_lookups_are_cached_across_reloads() -> None:
    load_config(SPEC_CONFIG, environ=SPEC_KEYS)
    before = dataset_price.cache_info()
    load_config(SPEC_CONFIG, environ=SPEC_KEYS)
    after = dataset_price.cache_info()
    assert after.misses == before.misses
    assert after.hits > before.hits


def test_a_snapshot_fetched_by_genai_prices_is_not_used() -> None:
    """Only the data shipped in the package prices models, whatever else the process did."""
    from genai_prices import data_snapshot

    dataset_price.cache_clear()
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=True))
    try:
        assert model_price("openai", "gpt-4", None) == ModelPrice(30, 60, None, None, "genai-prices")
    finally:
        data_snapshot.set_custom_snapshot(None)
        dataset_price.cache_clear()


def test_prices_are_found_with_the_network_refused() -> None:
    """A fresh interpreter that cannot open a socket or resolve a name still prices the spec's config."""
    script = textwrap.dedent(f"""
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError("genai-prices tried the network")

        socket.socket.connect = socket.socket.connect_ex = refuse
        socket.create_connection = socket.getaddrinfo = refuse

        from proxy.config import load_config
        config = load_config({str(SPEC_CONFIG)!r}, environ={SPEC_KEYS!r})
        prices = [m.price for p in config.providers.values() for m in p.models.values()]
        assert prices and all(p is not None and p.source == "genai-prices" for p in prices), prices

        from genai_prices import data_snapshot
        assert data_snapshot._custom_snapshot is None  # nothing was updated behind our back
        print("priced", len(prices))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "priced 7"


# ============================================================ what usage is read


@pytest.mark.parametrize(("usage", "expected"), [
    (None, TokenUsage()),
    ([], TokenUsage()),
    ("lots", TokenUsage()),
    (7, TokenUsage()),
    ({}, TokenUsage()),
    ({"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}, TokenUsage(12, 4)),
    ({"prompt_tokens": "12", "completion_tokens": -1, "prompt_tokens_details": None}, TokenUsage()),
    ({"prompt_tokens": 12.0, "completion_tokens": True, "prompt_tokens_details": []}, TokenUsage()),
    ({"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 20}},
     TokenUsage(100, 0, 80, 20)),
    ({"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": None, "cache_write_tokens": "5",
                                                       "audio_tokens": 3}},
     TokenUsage(100, 0, 0, 0)),
    ({"prompt_tokens": 2**70, "completion_tokens": 0}, TokenUsage(2**70, 0)),
])
def test_token_usage_from_openai(usage: Any, expected: TokenUsage) -> None:
    assert TokenUsage.from_openai(usage) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
odd_usages = json_values | st.dictionaries(
    st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"]),
    json_values | st.dictionaries(st.sampled_from(["cached_tokens", "cache_write_tokens"]), json_values),
)


@PURE
@given(odd_usages)
def test_any_usage_object_reads_as_whole_counts(usage: Any) -> None:
    read = TokenUsage.from_openai(usage)
    for count in (read.prompt_tokens, read.completion_tokens, read.cached_tokens, read.cache_write_tokens):
        assert type(count) is int and count >= 0


def test_anthropic_cache_reads_and_writes_reach_the_usage_read() -> None:
    usage = to_openai_usage({"input_tokens": 21, "cache_creation_input_tokens": 5,
                             "cache_read_input_tokens": 1800, "output_tokens": 9})
    assert TokenUsage.from_openai(usage) == TokenUsage(prompt_tokens=1826, completion_tokens=9,
                                                       cached_tokens=1800, cache_write_tokens=5)


# ============================================================ what it cost


def test_cache_reads_and_writes_cost_their_own_prices() -> None:
    """The golden Anthropic answer with cache use, priced as Claude 3 Opus (15 / 75, reads 1.5, writes 18.75).

    21 fresh × 15 = 315, 1800 read × 1.5 = 2700, 5 written × 18.75 = 93.75, 9 out × 75 = 675:
    3783.75 per million tokens = $0.00378375.
    """
    case = orjson.loads((ANTHROPIC_DATA / "responses" / "cache_usage.json").read_bytes())
    usage = TokenUsage.from_openai(case["openai_response"]["usage"])
    assert usage == TokenUsage(1826, 9, 1800, 5)
    assert cost_usd(OPUS, usage) == 0.00378375
    # the cache reads would have cost 1800 × 15 = 27000 as fresh input: 24300 saved
    assert saved_by_prompt_cache(OPUS, usage) == 0.0243


def test_cache_prices_default_to_the_input_price() -> None:
    """gpt-4 at 30 / 60 with no cache prices: 1000 prompt × 30 + 50 out × 60 = 33000 → $0.033."""
    price = ModelPrice(input=30, output=60)
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=50, cached_tokens=400, cache_write_tokens=100)
    assert cost_usd(price, usage) == 0.033
    assert saved_by_prompt_cache(price, usage) == 0.0


def test_openai_cached_prompt_tokens_cost_half() -> None:
    """gpt-4o at 2.5 / 10, reads 1.25: 1200 fresh × 2.5 + 800 read × 1.25 + 300 out × 10 = 7000 → $0.007."""
    price = model_price("openai", "gpt-4o", None)
    assert price is not None and (price.input, price.cached_input, price.output) == (2.5, 1.25, 10)
    usage = TokenUsage.from_openai({"prompt_tokens": 2000, "completion_tokens": 300,
                                    "prompt_tokens_details": {"cached_tokens": 800}})
    assert cost_usd(price, usage) == 0.007
    assert saved_by_prompt_cache(price, usage) == 0.001


def test_costs_are_exact_decimals_not_float_sums() -> None:
    cheap = ModelPrice(input=0.1, output=0.2)
    assert 3 * 0.1 / 1e6 != 3e-07  # what float arithmetic would give
    assert cost_usd(cheap, TokenUsage(prompt_tokens=3)) == 3e-07
    assert cost_usd(cheap, TokenUsage(prompt_tokens=1, completion_tokens=1)) == 3e-07
    assert cost_usd(ModelPrice(input=0.075, output=0), TokenUsage(prompt_tokens=1)) == 7.5e-08


def test_costs_are_rounded_to_ten_decimal_places() -> None:
    tiny = ModelPrice(input=0.00015, output=0.00004)
    assert cost_usd(tiny, TokenUsage(prompt_tokens=1)) == 2e-10  # 1.5e-10, half to even
    assert cost_usd(tiny, TokenUsage(completion_tokens=1)) == 0.0  # 4e-11
    assert cost_usd(tiny, TokenUsage(prompt_tokens=1, completion_tokens=1)) == 2e-10  # 1.9e-10


def test_a_stream_and_a_plain_answer_with_the_same_usage_cost_the_same() -> None:
    case = orjson.loads((ANTHROPIC_DATA / "streams" / "text_with_usage.json").read_bytes())
    translator = StreamTranslator(include_usage=True, created=1)
    chunks = [chunk for event in case["anthropic_events"] for chunk in translator.translate(event)]
    streamed = TokenUsage.from_openai(chunks[-1]["usage"])
    plain = TokenUsage.from_openai(to_openai_usage({"input_tokens": 10, "cache_creation_input_tokens": 3,
                                                    "cache_read_input_tokens": 200, "output_tokens": 7}))
    assert streamed == plain == TokenUsage(213, 7, 200, 3)
    # 10 × 15 + 200 × 1.5 + 3 × 18.75 + 7 × 75 = 150 + 300 + 56.25 + 525 = 1031.25
    assert cost_usd(OPUS, streamed) == cost_usd(OPUS, plain) == 0.00103125


def test_counts_that_do_not_add_up_never_cost_more_than_the_prompt() -> None:
    """Cache reads beyond the prompt count as the whole prompt, never as negative fresh input."""
    assert cost_usd(OPUS, TokenUsage(prompt_tokens=10, cached_tokens=50)) == cost_usd(
        OPUS, TokenUsage(prompt_tokens=10, cached_tokens=10)) == 0.000015
    assert cost_usd(OPUS, TokenUsage(prompt_tokens=10, cached_tokens=4, cache_write_tokens=50)) == cost_usd(
        OPUS, TokenUsage(prompt_tokens=10, cached_tokens=4, cache_write_tokens=6))


prices_strategy = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
optional_prices = st.none() | prices_strategy
counts = st.integers(min_value=0, max_value=10**8)


@st.composite
def consistent_usages(draw: Any) -> TokenUsage:
    cached, written, fresh = draw(counts), draw(counts), draw(counts)
    return TokenUsage(prompt_tokens=cached + written + fresh, completion_tokens=draw(counts),
                      cached_tokens=cached, cache_write_tokens=written)


def as_price(input: Decimal, output: Decimal, cached: Decimal | None, write: Decimal | None) -> ModelPrice:
    return ModelPrice(input=float(input), output=float(output),
                      cached_input=None if cached is None else float(cached),
                      cache_write=None if write is None else float(write))


@PURE
@given(prices_strategy, prices_strategy, optional_prices, optional_prices, consistent_usages())
def test_a_cost_is_the_sum_of_its_parts(input: Decimal, output: Decimal, cached: Decimal | None,
                                        write: Decimal | None, usage: TokenUsage) -> None:
    price = as_price(input, output, cached, write)
    fresh = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    parts = [
        cost_usd(price, TokenUsage(prompt_tokens=fresh)),
        cost_usd(price, TokenUsage(prompt_tokens=usage.cached_tokens, cached_tokens=usage.cached_tokens)),
        cost_usd(price, TokenUsage(prompt_tokens=usage.cache_write_tokens,
                                   cache_write_tokens=usage.cache_write_tokens)),
        cost_usd(price, TokenUsage(completion_tokens=usage.completion_tokens)),
    ]
    total = cost_usd(price, usage)
    assert total >= 0
    assert abs(total - sum(parts)) <= 1e-9
    # and each part is its count times its own price (the exact reference, in decimals)
    reference = (fresh * input + usage.cached_tokens * (input if cached is None else cached)
                 + usage.cache_write_tokens * (input if write is None else write)
                 + usage.completion_tokens * output) / 1_000_000
    assert abs(Decimal(repr(total)) - reference) <= Decimal("1e-10")
    saved = saved_by_prompt_cache(price, usage)
    assert abs(saved - (cost_usd(price, TokenUsage(prompt_tokens=usage.cached_tokens)) - parts[1])) <= 1e-9


@PURE
@given(prices_strategy, prices_strategy, optional_prices, optional_prices, odd_usages)
def test_no_usage_object_costs_less_than_nothing(input: Decimal, output: Decimal, cached: Decimal | None,
                                                 write: Decimal | None, usage: Any) -> None:
    assert cost_usd(as_price(input, output, cached, write), TokenUsage.from_openai(usage)) >= 0


@PURE
@given(prices_strategy, prices_strategy, optional_prices, optional_prices,
       counts, counts, counts, counts)
def test_any_counts_cost_at_most_the_prompt_at_its_dearest_price(
        input: Decimal, output: Decimal, cached: Decimal | None, write: Decimal | None,
        prompt: int, completion: int, reads: int, writes: int) -> None:
    price = as_price(input, output, cached, write)
    dearest = max(p for p in (input, cached, write) if p is not None)
    cost = cost_usd(price, TokenUsage(prompt, completion, reads, writes))
    assert 0 <= cost
    assert Decimal(repr(cost)) <= (prompt * dearest + completion * output) / 1_000_000 + Decimal("1e-10")
