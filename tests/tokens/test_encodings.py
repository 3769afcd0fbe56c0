"""Which OpenAI encoding a model uses (``proxy/tokens/encodings.py``)."""

from __future__ import annotations

import pytest

from proxy.tokens.encodings import CL100K, O200K, encoding_for


@pytest.mark.parametrize("model", [
    "gpt-4o", "gpt-4o-mini", "gpt-4o-2024-08-06", "chatgpt-4o-latest", "gpt-4.1", "gpt-4.1-nano",
    "gpt-4.5-preview", "gpt-5", "gpt-5-mini", "o1", "o1-mini", "o3-mini-2025-01-31", "o4-mini",
    "openai/gpt-4o", "GPT-4o ", "gpt-oss-120b",
])
def test_the_gpt_4o_generation_and_later_use_o200k(model: str) -> None:
    assert encoding_for(model) == O200K


@pytest.mark.parametrize("model", [
    "gpt-4", "gpt-4-0613", "gpt-4-32k", "gpt-4-turbo", "gpt-4-turbo-2024-04-09", "gpt-4-1106-preview",
    "gpt-3.5-turbo", "gpt-3.5-turbo-16k", "gpt-35-turbo", "openai/gpt-3.5-turbo", "text-embedding-3-small",
    "text-embedding-ada-002",
])
def test_gpt_4_and_gpt_3_5_use_cl100k(model: str) -> None:
    assert encoding_for(model) == CL100K


@pytest.mark.parametrize("model", [
    "claude-3-opus-20240229", "anthropic/claude-3-haiku", "llama-3.1-70b", "mistral-large",
    "my-azure-deployment", "gpt4all", "o1x", "", "mock-gpt",
])
def test_other_models_have_no_encoding(model: str) -> None:
    assert encoding_for(model) is None
