"""A cached answer served to a Messages API caller: in Messages format, plain or replayed as a stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fake_anthropic import text_block, thinking_block
from tests.messages_env import CALLER_KEY, CLAUDE, GPT, MessagesEnv, messages_env  # noqa: F401

HELLO = [{"role": "user", "content": "Say hello"}]


async def post(env: MessagesEnv, body: Any, path: str = "/v1/messages", **headers: str) -> Any:
    assert env.client is not None
    resp = await env.client.post(path, json=body, headers={"x-api-key": CALLER_KEY, **headers})
    await resp.read()
    return resp


async def test_cache_hits_answer_in_messages_format(messages_env: MessagesEnv) -> None:
    await messages_env.start(caching={"enabled": True})
    sdk = messages_env.sdk()
    for model in (CLAUDE, GPT):
        body = {"model": model, "max_tokens": 20, "messages": HELLO}
        first = await sdk.messages.with_raw_response.create(**body)
        second = await sdk.messages.with_raw_response.create(**body)
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT"), model
        assert second.http_response.content == first.http_response.content
        assert second.headers["X-Gateway-Cost"] == "0"
        async with sdk.messages.stream(**body) as events:
            final = await events.get_final_message()
        assert events.response.headers["X-Cache"] == "HIT"
        assert final.model_dump(exclude_none=True) == {
            key: value for key, value in orjson.loads(first.http_response.content).items() if value is not None}
    assert len(messages_env.anthropic.received) == 1 and len(messages_env.openai.received) == 1


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_a_streamed_answer_is_cached_whole(messages_env: MessagesEnv, model: str) -> None:
    await messages_env.start(caching={"enabled": True})
    messages_env.anthropic.blocks = [thinking_block("Hmm."), text_block("Hi there.")]
    body = {"model": model, "max_tokens": 20, "messages": HELLO}
    sdk = messages_env.sdk()
    async with sdk.messages.stream(**body) as events:
        streamed = await events.get_final_message()
    plain = await sdk.messages.with_raw_response.create(**body)
    assert plain.headers["X-Cache"] == "HIT"
    assert orjson.loads(plain.http_response.content)["content"] == streamed.model_dump(exclude_none=True)["content"]
    assert len(messages_env.anthropic.received) + len(messages_env.openai.received) == 1


async def test_cache_keys_are_the_endpoints_own_and_follow_anthropic_beta(messages_env: MessagesEnv) -> None:
    await messages_env.start(caching={"enabled": True})
    body = {"model": GPT, "max_tokens": 20, "messages": HELLO}
    chat = await post(messages_env, body, "/v1/chat/completions")
    assert chat.headers["X-Cache"] == "MISS"
    assert (await post(messages_env, body)).headers["X-Cache"] == "MISS"
    assert (await post(messages_env, body)).headers["X-Cache"] == "HIT"
    beta = await post(messages_env, body, **{"anthropic-beta": "context-1m-2025-08-07"})
    assert beta.headers["X-Cache"] == "MISS"
