"""``reasoning_effort`` fitted to each translated deployment's model."""

from __future__ import annotations

import pytest

from proxy.upstream.reasoning import fit_reasoning
from tests.conftest import make_config

BODY = {"model": "m", "messages": [], "reasoning_effort": "max"}


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "chatgpt-4o-latest", "my-deployment"])
def test_openai_models_that_do_not_reason_get_none(model: str) -> None:
    for provider in ("openai", "azure"):
        fitted = fit_reasoning(BODY, provider, model)
        assert "reasoning_effort" not in fitted and fitted["messages"] is BODY["messages"]


@pytest.mark.parametrize("effort,sent", [("low", "low"), ("medium", "medium"), ("high", "high"),
                                         ("xhigh", "high"), ("max", "high")])
def test_reasoning_models_get_an_effort_openai_takes(effort: str, sent: str) -> None:
    body = {**BODY, "reasoning_effort": effort}
    for model in ("o3", "o4-mini", "o1-2024-12-17", "gpt-5", "gpt-5.1-codex", "GPT-5-mini"):
        assert fit_reasoning(body, "openai", model)["reasoning_effort"] == sent
    assert fit_reasoning({**BODY, "reasoning_effort": "high"}, "openai", "o3") == {**BODY, "reasoning_effort": "high"}


def test_other_provider_types_and_bodies_without_it_are_left_alone() -> None:
    for provider in ("openrouter", "openai_compatible", "mock"):
        assert fit_reasoning(BODY, provider, "gpt-4o") is BODY
    plain = {"model": "m", "messages": []}
    assert fit_reasoning(plain, "openai", "gpt-4o") is plain


async def test_claude_codes_effort_does_not_reach_a_model_that_refuses_it(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    body = {"model": "fast", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}
    resp = await client.post("/v1/messages", json=body)
    assert resp.status == 200
    assert "reasoning_effort" not in fake.received[0].body
