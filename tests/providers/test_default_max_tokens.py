"""``default_max_tokens``: the output limit sent for a request that gives none, as each upstream takes it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeOpenAI


@pytest.fixture
async def upstreams(aiohttp_server: Any) -> tuple[FakeOpenAI, FakeOpenAI, FakeAnthropic, dict[str, Any]]:
    openai, local, claude = FakeOpenAI(), FakeOpenAI(), FakeAnthropic()
    raw = {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 5},
        "providers": {
            "openai": {"type": "openai", "api_key": "sk-o", "base_url": str((await aiohttp_server(openai.app())).make_url("/v1")),
                       "models": {"gpt-4o": {"default_max_tokens": 300}, "plain": {"upstream_model": "gpt-4o"}}},
            "local": {"type": "openai_compatible", "base_url": str((await aiohttp_server(local.app())).make_url("/v1")),
                      "models": {"llama": {"default_max_tokens": 200}}},
            "anthropic": {"type": "anthropic", "api_key": "sk-a", "base_url": str((await aiohttp_server(claude.app())).make_url("")),
                          "models": {"haiku": {"upstream_model": "claude-3-haiku-20240307", "default_max_tokens": 700}}},
        },
        "routing": {"default_provider": "openai", "default_model": "gpt-4o", "routing_rules": [
            {"task_type": "short", "models": ["openai/gpt-4o", "anthropic/haiku"], "strategy": "cheapest",
             "default_max_tokens": 50}]},
    }
    return openai, local, claude, raw


def ask(**fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Hello"}], **fields}


async def test_each_upstream_gets_the_default_in_its_own_field(gateway, upstreams) -> None:
    openai, local, claude, raw = upstreams
    client = await gateway(raw)
    for model in ("openai/gpt-4o", "local/llama", "anthropic/haiku"):
        resp = await client.post("/v1/chat/completions", json=ask(model=model))
        assert resp.status == 200, await resp.text()
    assert openai.received[-1].body["max_completion_tokens"] == 300  # OpenAI's o-series refuse max_tokens
    assert "max_tokens" not in openai.received[-1].body
    assert local.received[-1].body["max_tokens"] == 200
    assert claude.received[-1].body["max_tokens"] == 700  # instead of the translation's 4096


async def test_a_request_that_sets_its_own_limit_keeps_it(gateway, upstreams) -> None:
    openai, _, claude, raw = upstreams
    client = await gateway(raw)
    await client.post("/v1/chat/completions", json=ask(model="openai/gpt-4o", max_tokens=12))
    await client.post("/v1/chat/completions", json=ask(model="anthropic/haiku", max_completion_tokens=13))
    await client.post("/v1/chat/completions", json=ask(model="openai/plain"))
    assert openai.received[0].body["max_tokens"] == 12 and "max_completion_tokens" not in openai.received[0].body
    assert claude.received[-1].body["max_tokens"] == 13
    assert "max_tokens" not in openai.received[1].body and "max_completion_tokens" not in openai.received[1].body


async def test_a_rules_default_wins_for_the_requests_it_routes(gateway, upstreams) -> None:
    openai, _, claude, raw = upstreams
    raw["fallback"] = {"enabled": True}
    claude.fail_status = 529  # the cheaper candidate fails: the other gets the rule's default too
    client = await gateway(raw)
    resp = await client.post("/v1/chat/completions", json=ask(task_type="short"))
    assert resp.status == 200
    assert openai.received[-1].body["max_completion_tokens"] == 50
    assert claude.received[-1].body["max_tokens"] == 50
