"""What a request uses and a model lacks (``proxy/optimise/capabilities.py``)."""

from __future__ import annotations

import pytest

from proxy.optimise.capabilities import (
    ALL,
    IMAGES,
    JSON_OBJECT,
    JSON_SCHEMA,
    TOOLS,
    model_capabilities,
    request_capabilities,
)

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}


@pytest.mark.parametrize("body, used", [
    ({"messages": [{"role": "user", "content": "hi"}]}, set()),
    ({"messages": [], "tools": [TOOL]}, {TOOLS}),
    ({"messages": [], "tools": []}, set()),
    ({"messages": [], "functions": [{"name": "f"}]}, {TOOLS}),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, IMAGE]}]}, {IMAGES}),
    ({"messages": [{"role": "user", "content": "image_url"}]}, set()),
    ({"messages": [], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, {JSON_SCHEMA}),
    ({"messages": [], "response_format": {"type": "json_object"}}, {JSON_OBJECT}),
    ({"messages": [], "response_format": {"type": "text"}}, set()),
    ({"messages": "odd", "response_format": "odd", "tools": None}, set()),
])
def test_a_request_uses_what_it_asks_for(body: dict, used: set[str]) -> None:
    assert request_capabilities(body) == used


@pytest.mark.parametrize("provider, model, lacks", [
    ("openai", "gpt-4o", set()),
    ("openai", "gpt-4.1-mini", set()),
    ("openai", "gpt-4", {IMAGES, JSON_SCHEMA, JSON_OBJECT}),
    ("openai", "gpt-4-0613", {IMAGES, JSON_SCHEMA, JSON_OBJECT}),
    ("openai", "gpt-4-1106-preview", {IMAGES, JSON_SCHEMA}),
    ("openai", "gpt-4-turbo-2024-04-09", {JSON_SCHEMA}),
    ("openai", "gpt-3.5-turbo", {IMAGES, JSON_SCHEMA}),
    ("azure", "gpt-35-turbo", {IMAGES, JSON_SCHEMA}),
    ("openrouter", "openai/o1-mini", {TOOLS, IMAGES, JSON_SCHEMA, JSON_OBJECT}),
    ("openai", "o3-mini", {IMAGES}),
    ("anthropic", "claude-3-opus-20240229", {JSON_SCHEMA, JSON_OBJECT}),
    ("openrouter", "anthropic/claude-3-opus", set()),
    ("openai_compatible", "llama-3.1-70b", set()),
])
def test_a_model_lacks_only_what_is_documented(provider: str, model: str, lacks: set[str]) -> None:
    assert model_capabilities(provider, model) == ALL - lacks
