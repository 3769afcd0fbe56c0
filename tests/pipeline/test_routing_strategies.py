"""Rules with several candidates, end to end: what each strategy chooses, what is skipped and why, context
windows, trimming, over HTTP against fake upstreams that send their own rate-limit headers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.upstream.health import UPSTREAM_HEALTH
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeOpenAI


@dataclass
class Upstreams:
    cheap: FakeOpenAI
    dear: FakeOpenAI
    claude: FakeAnthropic
    urls: dict[str, str]


@pytest.fixture
async def upstreams(aiohttp_server: Any) -> Upstreams:
    cheap, dear, claude = FakeOpenAI(reply="cheap"), FakeOpenAI(reply="dear"), FakeAnthropic(reply="claude")
    urls = {"cheap": str((await aiohttp_server(cheap.app())).make_url("/v1")),
            "dear": str((await aiohttp_server(dear.app())).make_url("/v1")),
            "claude": str((await aiohttp_server(claude.app())).make_url(""))}
    return Upstreams(cheap, dear, claude, urls)


def gateway_config(urls: dict[str, str], rules: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    """``cheapco/small`` (GPT-3.5 Turbo, a 2,000-token window), ``dearco/big`` (GPT-4o), ``anthropic/haiku``."""
    return {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 5},
        "providers": {
            "cheapco": {"type": "openai", "api_key": "sk-cheap", "base_url": urls["cheap"], "models": {
                "small": {"upstream_model": "gpt-3.5-turbo", "context_window": 2000,
                          "pricing": {"input": 0.5, "output": 1.5}}}},
            "dearco": {"type": "openai", "api_key": "sk-dear", "base_url": urls["dear"], "models": {
                "big": {"upstream_model": "gpt-4o", "pricing": {"input": 5, "output": 15}}}},
            "anthropic": {"type": "anthropic", "api_key": "sk-ant", "base_url": urls["claude"], "models": {
                "haiku": {"upstream_model": "claude-3-haiku-20240307", "pricing": {"input": 0.25, "output": 1.25}}}},
        },
        "routing": {"default_provider": "dearco", "default_model": "big", "routing_rules": rules},
        "fallback": {"enabled": True, "max_retries": 0, "retry_delay": 0,
                     "circuit_breaker": {"failure_threshold": 1, "cooldown": 300}},
        **sections,
    }


CHEAPEST = {"task_type": "summarization", "models": ["cheapco/small", "dearco/big"], "strategy": "cheapest"}


def chat(text: str = "Summarise: the cat sat on the mat.", task: str | None = "summarization",
         **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], **fields}
    if task:
        body["task_type"] = task
    return body


async def send(client: TestClient, body: dict[str, Any], status: int = 200) -> Any:
    resp = await client.post("/v1/chat/completions", json=body)
    doc = await resp.json()
    assert resp.status == status, doc
    return resp, doc


async def test_cheapest_routes_to_the_cheaper_candidate_and_says_so(gateway, upstreams, log_lines) -> None:
    client = await gateway(gateway_config(upstreams.urls, [CHEAPEST]))
    resp, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "cheap"
    assert resp.headers["X-Gateway-Strategy"] == "cheapest"
    assert resp.headers["X-Gateway-Provider"] == "cheapco" and "X-Gateway-Skipped" not in resp.headers
    assert upstreams.dear.received == []
    line = (await log_lines.wait_for("request"))[-1]
    assert line["strategy"] == "cheapest" and "skipped" not in line


async def test_an_open_breaker_skips_its_candidate(gateway, upstreams, log_lines) -> None:
    upstreams.cheap.script = [500]  # one failure opens its breaker (failure_threshold 1)
    client = await gateway(gateway_config(upstreams.urls, [CHEAPEST]))
    resp, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "dear"
    assert resp.headers["X-Gateway-Fallback"] == "cheapco/small"
    resp, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "dear"
    assert resp.headers["X-Gateway-Skipped"] == "cheapco/small=breaker_open"
    assert len(upstreams.cheap.received) == 1  # no second call to it
    line = (await log_lines.wait_for("request"))[-1]
    assert line["skipped"] == "cheapco/small=breaker_open"


async def test_a_prompt_too_long_for_a_window_skips_its_candidate(gateway, upstreams) -> None:
    client = await gateway(gateway_config(upstreams.urls, [CHEAPEST]))
    resp, doc = await send(client, chat("word " * 3000))  # about 3,000 tokens
    assert doc["choices"][0]["message"]["content"] == "dear"
    assert resp.headers["X-Gateway-Skipped"] == "cheapco/small=context_window"
    assert upstreams.cheap.received == []


async def test_a_missing_capability_skips_its_candidate(gateway, upstreams) -> None:
    client = await gateway(gateway_config(upstreams.urls, [CHEAPEST]))
    image = {"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                         {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}
    resp, _ = await send(client, {"messages": [image], "task_type": "summarization"})
    assert resp.headers["X-Gateway-Skipped"] == "cheapco/small=capability"  # GPT-3.5 Turbo takes no images
    assert upstreams.cheap.received == [] and len(upstreams.dear.received) == 1


async def test_an_upstream_that_says_it_has_no_requests_left_is_skipped_until_its_reset(gateway, upstreams) -> None:
    upstreams.cheap.response_headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m",
                                        "x-ratelimit-remaining-tokens": "90000", "x-ratelimit-reset-tokens": "1s"}
    client = await gateway(gateway_config(upstreams.urls, [CHEAPEST]))
    resp, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "cheap"  # nothing known yet: its last request
    resp, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "dear"
    assert resp.headers["X-Gateway-Skipped"] == "cheapco/small=rate_limited"
    assert len(upstreams.cheap.received) == 1


async def test_a_429s_own_headers_count_too(gateway, upstreams) -> None:
    upstreams.cheap.script = [429]
    upstreams.cheap.response_headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "30s"}
    client = await gateway(gateway_config(upstreams.urls, [CHEAPEST], fallback={"enabled": True}))
    await send(client, chat())  # cheap answers 429, dear answers
    resp, _ = await send(client, chat())
    assert resp.headers["X-Gateway-Skipped"] == "cheapco/small=rate_limited"
    assert len(upstreams.cheap.received) == 1


async def test_anthropics_token_headroom_is_read_too(gateway, upstreams) -> None:
    upstreams.claude.response_headers = {"anthropic-ratelimit-tokens-remaining": "20",
                                         "anthropic-ratelimit-tokens-reset": "2100-01-01T00:00:00Z"}
    rule = {"task_type": "summarization", "models": ["anthropic/haiku", "dearco/big"], "strategy": "cheapest"}
    client = await gateway(gateway_config(upstreams.urls, [rule]))
    await send(client, chat())
    assert len(upstreams.claude.received) == 1
    resp, _ = await send(client, chat("a much longer question " * 20))  # more than 20 tokens
    assert resp.headers["X-Gateway-Skipped"] == "anthropic/haiku=rate_limited"
    resp, _ = await send(client, chat("hi"))  # a few tokens still fit in what is left
    assert "X-Gateway-Skipped" not in resp.headers and len(upstreams.claude.received) == 2


async def test_least_busy_counts_a_stream_still_open_to_a_model_named_explicitly(gateway, upstreams) -> None:
    upstreams.cheap.script = ["stall"]  # the stream sends a chunk, then nothing
    rule = {"task_type": "summarization", "models": ["cheapco/small", "dearco/big"], "strategy": "least_busy"}
    client = await gateway(gateway_config(upstreams.urls, [rule]))
    stats = client.app[UPSTREAM_HEALTH].stats
    held = await client.post("/v1/chat/completions", json=chat(task=None, model="cheapco/small", stream=True))
    assert held.status == 200 and (await held.content.readline()).startswith(b"data: ")
    assert stats.state("cheapco/small").in_flight == 1
    resp, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "dear" and resp.headers["X-Gateway-Strategy"] == "least_busy"
    held.close()
    for _ in range(200):  # the gateway notices the caller left
        if stats.state("cheapco/small").in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert stats.state("cheapco/small").in_flight == 0
    _, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "cheap"  # a tie again: the rule's order


async def test_every_answer_feeds_the_moving_averages_however_it_was_routed(gateway, upstreams) -> None:
    rule = {"task_type": "summarization", "models": ["cheapco/small", "dearco/big"], "strategy": "fastest"}
    client = await gateway(gateway_config(upstreams.urls, [rule]))
    stats = client.app[UPSTREAM_HEALTH].stats
    _, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "cheap"  # neither measured: the rule's order
    _, doc = await send(client, chat())
    assert doc["choices"][0]["message"]["content"] == "dear"  # the one not measured yet
    assert stats.state("cheapco/small").latency is not None and stats.state("dearco/big").latency is not None
    resp = await client.post("/v1/chat/completions", json=chat(task=None, model="anthropic/haiku", stream=True))
    await resp.read()
    haiku = stats.state("anthropic/haiku")
    assert haiku.ttft is not None and haiku.latency is not None and haiku.in_flight == 0


# ------------------------------------------------------------------ context windows


async def test_a_request_no_candidate_can_hold_is_refused_before_any_upstream_call(gateway, upstreams) -> None:
    raw = gateway_config(upstreams.urls, [CHEAPEST])
    raw["providers"]["dearco"]["models"]["big"]["context_window"] = 2500
    client = await gateway(raw)
    resp, doc = await send(client, chat("word " * 3000), status=400)
    assert doc["error"]["code"] == "context_length_exceeded" and doc["error"]["param"] == "messages"
    assert doc["error"]["type"] == "invalid_request_error"
    assert "cheapco/small holds 2,000 tokens" in doc["error"]["message"]
    assert resp.headers["X-Gateway-Skipped"] == "cheapco/small=context_window, dearco/big=context_window"
    assert upstreams.cheap.received == [] and upstreams.dear.received == []


async def test_a_model_named_explicitly_is_refused_when_its_known_window_cannot_hold_the_request(
        gateway, upstreams) -> None:
    raw = gateway_config(upstreams.urls, [], fallback={"enabled": True,
                                                       "fallback_map": {"cheapco/small": ["dearco/big"]}})
    client = await gateway(raw)
    _, doc = await send(client, chat("word " * 3000, task=None, model="cheapco/small"), status=400)
    assert doc["error"]["code"] == "context_length_exceeded"
    assert "counted" in doc["error"]["message"]  # GPT-3.5 Turbo's own tokenizer
    assert upstreams.cheap.received == [] and upstreams.dear.received == []  # no silent switch either
    _, doc = await send(client, chat("hi", task=None, model="cheapco/small", max_tokens=1999), status=400)
    assert "1,999 output" in doc["error"]["message"]
    await send(client, chat("hi", task=None, model="cheapco/small", max_tokens=1900))


async def test_more_output_than_a_model_writes_is_refused_before_the_upstream(gateway, upstreams) -> None:
    client = await gateway(gateway_config(upstreams.urls, []))
    _, doc = await send(client, chat("hi", task=None, model="dearco/big", max_tokens=20_000), status=400)
    assert doc["error"]["code"] == "context_length_exceeded"
    assert "dearco/big writes at most 16,384 output tokens" in doc["error"]["message"]
    assert upstreams.dear.received == []


# ------------------------------------------------------------------ trimming


def long_conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You answer in one line."}]
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"question {i}: " + "tell me more " * 20},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": f"result {i}: " + "found it " * 20},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    return messages + [{"role": "user", "content": "so what now?"}]


async def test_trimming_drops_the_oldest_turns_and_never_splits_a_tool_call_from_its_result(
        gateway, upstreams, log_lines) -> None:
    raw = gateway_config(upstreams.urls, [])
    raw["providers"]["cheapco"]["models"]["small"]["trim"] = {"strategy": "oldest", "keep_system": True}
    client = await gateway(raw)
    messages = long_conversation(30)
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    resp, _ = await send(client, {"model": "cheapco/small", "messages": messages, "tools": tools, "max_tokens": 50})
    dropped = int(resp.headers["X-Gateway-Trimmed"])
    sent = upstreams.cheap.received[-1].body["messages"]
    assert dropped > 0 and len(sent) == len(messages) - dropped
    assert sent[0] == messages[0] and sent[1]["role"] == "user" and sent[-1] == messages[-1]
    assert sent[1:] == messages[-(len(sent) - 1):]  # the newest, as one unbroken run
    calls = {call["id"] for m in sent if m.get("tool_calls") for call in m["tool_calls"]}
    assert calls == {m["tool_call_id"] for m in sent if m["role"] == "tool"}
    line = (await log_lines.wait_for("request"))[-1]
    assert line["trimmed"] == dropped


async def test_without_trim_the_same_conversation_is_refused(gateway, upstreams) -> None:
    client = await gateway(gateway_config(upstreams.urls, []))
    _, doc = await send(client, {"model": "cheapco/small", "messages": long_conversation(30)}, status=400)
    assert doc["error"]["code"] == "context_length_exceeded" and upstreams.cheap.received == []
