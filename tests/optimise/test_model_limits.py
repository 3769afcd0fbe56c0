"""Context windows and largest outputs (``proxy/optimise/model_limits.py``).

* the config's ``context_window`` and ``max_output_tokens`` win;
* otherwise the pricing dataset gives the spec's models their windows, and
  the table their largest outputs, dated ids, aliases and OpenRouter ids alike;
* a model nobody knows has no limits, and a family's unknown newcomer is not
  taken for its elder.
"""

from __future__ import annotations

import pytest

from proxy.optimise.model_limits import ModelLimits, model_limits, table_max_output
from proxy.usage.pricing import DATASET


def test_the_config_wins() -> None:
    assert model_limits("openai", "gpt-4o", 64_000, 2048) == ModelLimits(64_000, 2048, "config", "config")


def test_each_configured_value_wins_on_its_own() -> None:
    limits = model_limits("openai", "gpt-4", None, 1000)
    assert limits is not None
    assert (limits.context_window, limits.window_source) == (8192, DATASET)
    assert (limits.max_output_tokens, limits.output_source) == (1000, "config")


@pytest.mark.parametrize("provider, model, window, output", [
    ("openai", "gpt-4", 8192, 8192),
    ("openai", "gpt-4-turbo", 128_000, 4096),
    ("openai", "gpt-4o", 128_000, 16384),
    ("openai", "gpt-3.5-turbo", 16385, 4096),
    ("azure", "gpt-35-turbo", 16385, 4096),
    ("anthropic", "claude-3-opus-20240229", 200_000, 4096),
    ("anthropic", "claude-3-sonnet-20240229", 200_000, 4096),
    ("anthropic", "claude-3-haiku-20240307", 200_000, 4096),
    ("anthropic", "claude-3-5-sonnet-20241022", 200_000, 8192),
    ("anthropic", "claude-sonnet-4-20250514", 200_000, 64000),
    ("openrouter", "anthropic/claude-3-opus", 200_000, 4096),
    ("openrouter", "openai/gpt-4o", 128_000, 16384),
])
def test_the_spec_models_know_their_limits(provider: str, model: str, window: int, output: int) -> None:
    limits = model_limits(provider, model, None, None)
    assert limits is not None
    assert (limits.context_window, limits.max_output_tokens) == (window, output)
    assert (limits.window_source, limits.output_source) == (DATASET, "table")


@pytest.mark.parametrize("provider, model", [("mock", "mock-gpt"), ("openai_compatible", "llama-3"),
                                             ("openai", "not-a-model")])
def test_a_model_nobody_knows_has_no_limits(provider: str, model: str) -> None:
    assert model_limits(provider, model, None, None) is None


@pytest.mark.parametrize("model, tokens", [
    ("gpt-4-0613", 8192), ("gpt-4-1106-preview", 4096), ("gpt-4o-2024-05-13", 4096),
    ("gpt-4o-2024-08-06", 16384), ("gpt-3.5-turbo-16k-0613", 4096), ("gpt-4.5-preview", 16384),
    ("claude-3-5-haiku-latest", 8192), ("claude-sonnet-4-0", 64000), ("anthropic/claude-3.5-sonnet", 8192),
    ("claude-opus-4-5-20251101", 64000),
])
def test_dates_and_tags_keep_a_models_output_limit(model: str, tokens: int) -> None:
    assert table_max_output(model) == tokens


@pytest.mark.parametrize("model", ["claude-opus-4-7", "gpt-4o-realtime-preview-x", "gpt-5-chat", "llama3"])
def test_an_unlisted_model_is_not_taken_for_its_family(model: str) -> None:
    assert table_max_output(model) is None


def test_fitting_needs_room_for_prompt_and_output() -> None:
    limits = ModelLimits(8192, 4096)
    assert limits.fits(4096, 4096) and not limits.fits(4097, 4096)
    assert limits.output_fits(4096) and not limits.output_fits(4097)
    unknown = ModelLimits(None, None)
    assert unknown.fits(10**9, 10**9) and unknown.output_fits(10**9)
