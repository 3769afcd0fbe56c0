"""Messages API requests through the gateway: native relay, translation, fallback across types, cache, routing.

What each upstream receives is checked exactly: a Claude Code turn reaches an
Anthropic upstream byte for byte but for the model, and an OpenAI one as the
golden vectors' Chat side says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from proxy.upstream.messages import forwarded_headers
from tests.fake_anthropic import sse_event, text_block, thinking_block, tool_use_block
from tests.formats.anthropic.golden import GOLDEN, documents
from tests.messages_env import (
    CALLER_KEY,
    CLAUDE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_UPSTREAM,
    REASONER,
    REASONER_UPSTREAM,
    UPSTREAM_SECRET,
    MessagesEnv,
    messages_env,  # noqa: F401 - a fixture
)
from tests.usage.test_ledger import until

HELLO = [{"role": "user", "content": "Say hello"}]
SESSION = "b4e5aaaa-9a3e-47c4-84ad-3a70f38c676e"
CLAUDE_CODE_HEADERS = {
    "x-api-key": CALLER_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.69 (external, cli)",
    "x-claude-code-session-id": SESSION,
    "content-type": "application/json",
}


def claude_code_turn(model: str) -> dict[str, Any]:
    """The golden Claude Code request (system blocks with cache_control, 12 tools, thinking, streaming)."""
    vector = orjson.loads((GOLDEN / "requests" / "claude_code.json").read_bytes())
    return {**vector["messages"], "model": model}


def fallback(primary: str, backup: str) -> dict[str, Any]:
    return {"enabled": True, "max_retries": 0, "fallback_map": {primary: [backup]}}


async def post(env: MessagesEnv, body: Any, path: str = "/v1/messages", **headers: str) -> Any:
    assert env.client is not None
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await env.client.post(path, data=data, headers={"x-api-key": CALLER_KEY,
                                                           "content-type": "application/json", **headers})
    await resp.read()
    return resp


# ------------------------------------------------------------------- Claude Code


async def test_a_claude_code_turn_reaches_anthropic_byte_for_byte_but_the_model(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    fake = messages_env.anthropic
    fake.blocks = [thinking_block("The test imports create_app."), text_block("I'll read the module."),
                   tool_use_block("toolu_01Read", "Read", {"file_path": "app/__init__.py"})]
    fake.stop_reason = "tool_use"
    turn = claude_code_turn(CLAUDE)
    sent = orjson.dumps(turn)
    resp = await post(messages_env, sent, "/v1/messages?beta=true", **CLAUDE_CODE_HEADERS)
    assert resp.status == 200
    assert fake.raw_bodies == [orjson.dumps({**turn, "model": CLAUDE_UPSTREAM})]
    assert fake.queries == ["beta=true"]
    upstream = fake.received[0].headers
    for name in ("anthropic-version", "anthropic-beta", "anthropic-dangerous-direct-browser-access"):
        assert upstream[name] == CLAUDE_CODE_HEADERS[name], name
    assert upstream["x-api-key"] == UPSTREAM_SECRET
    for name in ("x-claude-code-session-id", "x-app", "authorization"):
        assert name not in upstream, name
    assert upstream.get("user-agent") != CLAUDE_CODE_HEADERS["user-agent"]
    events = fake.stream_events(fake.received[0].body)
    assert await resp.read() == b"".join(sse_event(name, doc) for name, doc in events)
    ctx = messages_env.finished()
    assert (ctx.endpoint, ctx.agent, ctx.user) == ("messages", f"claude-code/{SESSION}", turn["metadata"]["user_id"])
    assert ctx.stream and ctx.cost_usd and ctx.cached_tokens == fake.usage["cache_read_input_tokens"]


async def test_a_claude_code_turn_is_translated_for_an_openai_model(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    vector = orjson.loads((GOLDEN / "requests" / "claude_code.json").read_bytes())
    resp = await post(messages_env, claude_code_turn(REASONER), "/v1/messages?beta=true", **CLAUDE_CODE_HEADERS)
    assert resp.status == 200
    assert messages_env.openai.received[0].body == {**vector["chat"], "model": REASONER_UPSTREAM}
    upstream = messages_env.openai.received[0].headers
    assert "anthropic-beta" not in upstream and "x-claude-code-session-id" not in upstream
    text = (await resp.read()).decode()
    assert text.startswith("event: message_start\n") and text.endswith("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


async def test_a_subagents_requests_are_its_own_agent(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    await post(messages_env, {"model": CLAUDE, "max_tokens": 5, "messages": HELLO},
               **{"x-claude-code-session-id": SESSION, "x-claude-code-agent-id": "agent-7"})
    assert messages_env.finished().agent == f"claude-code/{SESSION}/agent-7"
    await post(messages_env, {"model": CLAUDE, "max_tokens": 5, "messages": HELLO},
               **{"x-claude-code-session-id": SESSION, "X-Agent": "nightly-review"})
    assert messages_env.finished().agent == "nightly-review"


def test_only_anthropic_headers_are_forwarded_repeated_ones_joined() -> None:
    headers = CIMultiDict([("Anthropic-Beta", "a"), ("anthropic-beta", "b"), ("anthropic-version", "2023-06-01"),
                           ("x-api-key", CALLER_KEY), ("authorization", "Bearer x"), ("x-claude-code-session-id", "s"),
                           ("anthropic-odd", "caf\u00e9")])
    assert forwarded_headers(headers) == {"anthropic-beta": "a,b", "anthropic-version": "2023-06-01"}


# ----------------------------------------------------------------- golden vectors


@pytest.mark.parametrize("vector", documents("requests", "inbound"))
async def test_golden_requests_reach_an_openai_upstream_as_their_chat_side(messages_env: MessagesEnv,
                                                                          vector: dict[str, Any]) -> None:
    await messages_env.start()
    resp = await post(messages_env, {**vector["messages"], "model": REASONER})
    assert resp.status == 200, await resp.text()
    expected = {key: value for key, value in vector["chat"].items() if key != "task_type"}
    if expected.get("reasoning_effort") in ("xhigh", "max"):
        expected["reasoning_effort"] = "high"  # the most OpenAI's API takes
    assert messages_env.openai.received[0].body == {**expected, "model": REASONER_UPSTREAM}


@pytest.mark.parametrize("vector", documents("answers", "inbound"))
async def test_golden_answers_reach_the_caller_as_their_messages_side(messages_env: MessagesEnv,
                                                                     vector: dict[str, Any]) -> None:
    await messages_env.start()
    messages_env.openai.answer = vector["chat"]
    resp = await post(messages_env, {"model": GPT, "max_tokens": 50, "messages": HELLO})
    assert orjson.loads(await resp.read()) == vector["messages"]


# ----------------------------------------------------------------------- fallback


@pytest.mark.parametrize("stream", [False, True])
async def test_an_anthropic_primary_falls_back_to_openai_in_messages_format(messages_env: MessagesEnv,
                                                                           stream: bool) -> None:
    await messages_env.start(fallback=fallback(f"anthropic/{CLAUDE}", f"openai/{GPT}"))
    messages_env.anthropic.fail_status = 529
    sdk = messages_env.sdk()
    if stream:
        async with sdk.messages.stream(model=CLAUDE, max_tokens=50, messages=HELLO) as events:
            message = await events.get_final_message()
    else:
        raw = await sdk.messages.with_raw_response.create(model=CLAUDE, max_tokens=50, messages=HELLO)
        assert raw.headers["X-Gateway-Fallback"] == f"anthropic/{CLAUDE}"
        assert raw.headers["X-Gateway-Model"] == GPT
        message = await raw.parse()
    assert message.content[0].text == messages_env.openai.reply
    assert len(messages_env.anthropic.received) == 1 and len(messages_env.openai.received) == 1
    ctx = messages_env.finished()
    assert ctx.fallback_from == f"anthropic/{CLAUDE}" and ctx.provider == "openai"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_openai_primary_falls_back_to_anthropic_natively(messages_env: MessagesEnv, stream: bool) -> None:
    await messages_env.start(fallback=fallback(f"openai/{GPT}", f"anthropic/{CLAUDE}"))
    messages_env.openai.fail_status = 500
    body = {"model": GPT, "max_tokens": 50, "messages": HELLO, "metadata": {"user_id": "u-1"}, "stream": stream}
    resp = await post(messages_env, body)
    assert resp.status == 200
    assert messages_env.anthropic.received[0].body == {**body, "model": CLAUDE_UPSTREAM}
    text = (await resp.read()).decode()
    assert messages_env.anthropic.reply.split()[0] in text


async def test_a_fallback_that_cannot_take_the_body_is_skipped(messages_env: MessagesEnv) -> None:
    await messages_env.start(fallback=fallback(f"anthropic/{CLAUDE}", f"openai/{GPT}"))
    messages_env.anthropic.fail_status = 529
    body = {"model": CLAUDE, "max_tokens": 50, "messages": HELLO,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    resp = await post(messages_env, body)
    error = (await resp.json())["error"]
    assert resp.status == 529 and error["type"] == "overloaded_error"
    assert messages_env.openai.received == []
    outcomes = [attempt["outcome"] for attempt in messages_env.finished().attempts]
    assert outcomes == ["upstream_unavailable", "unsupported_parameter"]


# ------------------------------------------------------------------------ routing


async def test_metadata_task_type_routes_and_never_goes_upstream(messages_env: MessagesEnv) -> None:
    config = messages_env.config()
    config["routing"]["routing_rules"] = [{"task_type": "review", "provider": "anthropic", "model": CLAUDE}]
    await messages_env.start(config)
    body = {"max_tokens": 5, "messages": HELLO, "metadata": {"user_id": "u-1", "task_type": "review"}}
    assert (await post(messages_env, body)).status == 200
    assert messages_env.anthropic.received[0].body["metadata"] == {"user_id": "u-1"}
    assert messages_env.finished().task_type == "review"
    only_task = {"max_tokens": 5, "messages": HELLO, "metadata": {"task_type": "review"}}
    assert (await post(messages_env, only_task)).status == 200
    assert "metadata" not in messages_env.anthropic.received[1].body
    header = {"max_tokens": 5, "messages": HELLO}
    assert (await post(messages_env, header, **{"X-Task-Type": "review"})).status == 200
    assert len(messages_env.anthropic.received) == 3


# ------------------------------------------------------------ cost, ledger, limits


async def test_the_ledger_records_messages_requests_by_agent(messages_env: MessagesEnv, tmp_path: Path) -> None:
    await messages_env.start(usage={"database": f"sqlite:///{tmp_path / 'usage.db'}"})
    for model in (CLAUDE, GPT):
        await post(messages_env, {"model": model, "max_tokens": 5, "messages": HELLO},
                   **{"x-claude-code-session-id": SESSION})
    await post(messages_env, {"model": GPT, "messages": HELLO}, "/v1/messages/count_tokens")
    rows: list[Any] = []

    async def recorded() -> bool:
        nonlocal rows
        assert messages_env.client is not None
        resp = await messages_env.client.get("/v1/usage", params={"group_by": "agent,model"},
                                             headers={"x-api-key": CALLER_KEY})
        rows = (await resp.json())["data"]
        return sum(row["requests"] for row in rows) == 2

    await until(recorded)
    by_model = {row["model"]: row for row in rows}
    assert set(by_model) == {CLAUDE, GPT}
    assert all(row["agent"] == f"claude-code/{SESSION}" for row in rows)
    fake_usage = messages_env.anthropic.usage
    assert by_model[CLAUDE]["prompt_tokens"] == (fake_usage["input_tokens"] + fake_usage["cache_read_input_tokens"]
                                                 + fake_usage["cache_creation_input_tokens"])
    assert by_model[GPT]["completion_tokens"] == messages_env.openai.usage["completion_tokens"]
    assert all(row["cost_usd"] > 0 for row in rows)


async def test_tpm_is_reserved_from_the_messages_max_tokens(messages_env: MessagesEnv) -> None:
    config = messages_env.config()
    config["auth"]["keys"][0]["limits"] = {"tpm": 1000}
    await messages_env.start(config)
    small = await post(messages_env, {"model": CLAUDE, "max_tokens": 100, "messages": HELLO})
    assert small.status == 200 and small.headers["x-ratelimit-limit-tokens"] == "1000"
    big = await post(messages_env, {"model": CLAUDE, "max_tokens": 5000, "messages": HELLO})
    assert big.status == 429
    assert "max_tokens" in (await big.json())["error"]["message"]
    assert len(messages_env.anthropic.received) == 1


async def test_a_models_max_tokens_limit_applies(messages_env: MessagesEnv) -> None:
    config = messages_env.config()
    config["providers"]["anthropic"]["models"][CLAUDE]["max_tokens"] = 1000
    await messages_env.start(config)
    resp = await post(messages_env, {"model": CLAUDE, "max_tokens": 2000, "messages": HELLO})
    assert resp.status == 400
    assert "max_tokens" in (await resp.json())["error"]["message"]
    assert messages_env.anthropic.received == []
