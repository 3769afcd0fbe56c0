"""``prompt_caching: "auto"``: cache breakpoints as Anthropic received them, and never over the caller's own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fake_anthropic import FakeAnthropic

MARK = {"type": "ephemeral"}


@pytest.fixture
async def fake(aiohttp_server: Any) -> FakeAnthropic:
    upstream = FakeAnthropic()
    upstream.url = str((await aiohttp_server(upstream.app())).make_url(""))  # type: ignore[attr-defined]
    return upstream


def config(url: str, caching: bool = True, rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    sonnet: dict[str, Any] = {"upstream_model": "claude-3-5-sonnet-20241022"}  # caches from 1,024 tokens
    if caching:
        sonnet["prompt_caching"] = "auto"
    return {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 5},
        "providers": {"anthropic": {"type": "anthropic", "api_key": "sk-ant", "base_url": url, "models": {
            "sonnet": sonnet, "plain": {"upstream_model": "claude-3-5-sonnet-20241022"}}}},
        "routing": {"default_provider": "anthropic", "default_model": "sonnet", "routing_rules": rules or []},
    }


TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "Looks things up. " * 80,
                                           "parameters": {"type": "object", "properties": {}}}}
         for i in range(3)]  # about 1,500 tokens of tool definitions


def conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a careful analyst. " * 200},
        {"role": "user", "content": "First question, with context: " + "figures " * 300},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question."},
        {"role": "assistant", "content": "Second answer."},
        {"role": "user", "content": "Third question."},
    ]


def marks(body: dict[str, Any]) -> list[str]:
    """Where the body Anthropic received carries cache_control, as readable places."""
    found = [f"tools[{i}]" for i, tool in enumerate(body.get("tools", [])) if "cache_control" in tool]
    system = body.get("system")
    if isinstance(system, list):
        found += [f"system[{i}]" for i, block in enumerate(system) if "cache_control" in block]
    for i, message in enumerate(body["messages"]):
        if isinstance(message["content"], list):
            found += [f"messages[{i}][{j}]" for j, block in enumerate(message["content"]) if "cache_control" in block]
    return found


@pytest.mark.parametrize("stream", [False, True])
async def test_breakpoints_go_on_tools_system_and_the_two_latest_histories(gateway, fake, stream: bool) -> None:
    client = await gateway(config(fake.url))  # type: ignore[attr-defined]
    resp = await client.post("/v1/chat/completions",
                             json={"model": "sonnet", "messages": conversation(), "tools": TOOLS, "stream": stream})
    assert resp.status == 200, await resp.text()
    await resp.read()
    body = fake.received[-1].body
    # 1: the last tool, 2: the end of the system prompt, 3: the last block before the final question,
    # 4: the last block before the question before it (where the previous request put its third)
    assert marks(body) == ["tools[2]", "system[0]", "messages[1][0]", "messages[3][0]"]
    assert all(block.get("cache_control", MARK) == MARK for block in body["system"])
    assert body["messages"][3]["content"][0] == {"type": "text", "text": "Second answer.", "cache_control": MARK}
    assert "cache_control" not in str(body["messages"][-1])  # the newest question changes every time


async def test_a_prefix_shorter_than_the_models_minimum_gets_no_mark(gateway, fake) -> None:
    client = await gateway(config(fake.url))  # type: ignore[attr-defined]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "How are you?"}]
    resp = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": messages})
    assert resp.status == 200
    assert marks(fake.received[-1].body) == []


async def test_the_callers_own_markers_reach_anthropic_exactly_and_none_are_added(gateway, fake) -> None:
    client = await gateway(config(fake.url))  # type: ignore[attr-defined]
    messages = conversation()
    messages[1] = {"role": "user", "content": [
        {"type": "text", "text": messages[1]["content"], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    resp = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": messages, "tools": TOOLS})
    assert resp.status == 200
    body = fake.received[-1].body
    assert marks(body) == ["messages[0][0]"]
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


async def test_without_prompt_caching_nothing_is_marked(gateway, fake) -> None:
    client = await gateway(config(fake.url, caching=False))  # type: ignore[attr-defined]
    resp = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": conversation(),
                                                            "tools": TOOLS})
    assert resp.status == 200
    assert marks(fake.received[-1].body) == []


async def test_a_rules_prompt_caching_reaches_the_requests_it_routes(gateway, fake) -> None:
    rule = {"task_type": "analysis", "model": "plain", "prompt_caching": "auto"}
    client = await gateway(config(fake.url, caching=False, rules=[rule]))  # type: ignore[attr-defined]
    for body in ({"task_type": "analysis", "messages": conversation()}, {"model": "plain", "messages": conversation()}):
        resp = await client.post("/v1/chat/completions", json=body)
        assert resp.status == 200
    routed, named = (received.body for received in fake.received)
    assert marks(routed) == ["system[0]", "messages[1][0]", "messages[3][0]"]
    assert marks(named) == []
