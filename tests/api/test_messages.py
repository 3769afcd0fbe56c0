"""``POST /v1/messages`` and ``count_tokens`` driven by the official anthropic SDK, sync and async.

The gateway runs in front of a fake Anthropic upstream (native relay) and a
fake OpenAI one (translation); every check is on what the SDK returns or
raises, and on what the upstreams received.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

from tests.fake_anthropic import text_block, thinking_block, tool_use_block
from tests.messages_env import (
    CALLER_KEY,
    CLAUDE,
    CLAUDE_PRICE,
    CLAUDE_UPSTREAM,
    GPT,
    GPT_PRICE,
    GPT_UPSTREAM,
    UPSTREAM_SECRET,
    MessagesEnv,
    messages_env,  # noqa: F401 - a fixture
)

HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def priced(usage: dict[str, int], price: dict[str, float]) -> float:
    """What ``usage`` (Anthropic's counts) costs at ``price`` (USD per million tokens)."""
    return round((usage.get("input_tokens", 0) * price["input"]
                  + usage.get("cache_creation_input_tokens", 0) * price.get("cache_write", price["input"])
                  + usage.get("cache_read_input_tokens", 0) * price.get("cached_input", price["input"])
                  + usage.get("output_tokens", 0) * price["output"]) / 1e6, 10)


# ------------------------------------------------------------------------- plain


async def test_async_create_relays_an_anthropic_answer_as_it_came(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    sdk = messages_env.sdk()
    raw = await sdk.messages.with_raw_response.create(model=CLAUDE, max_tokens=100, messages=HELLO)
    message = await raw.parse()
    fake = messages_env.anthropic
    assert message.content[0].text == fake.reply
    assert message.model == CLAUDE_UPSTREAM and message.id == fake.message_id
    assert message.usage.cache_read_input_tokens == fake.usage["cache_read_input_tokens"]
    assert float(raw.headers["X-Gateway-Cost"]) == pytest.approx(priced(fake.usage, CLAUDE_PRICE))
    sent = fake.received[0]
    assert sent.body == {"model": CLAUDE_UPSTREAM, "max_tokens": 100, "messages": HELLO}
    assert sent.headers["x-api-key"] == UPSTREAM_SECRET
    assert CALLER_KEY not in str(sent.headers)
    assert sent.headers["anthropic-version"] == raw.http_request.headers["anthropic-version"]
    assert messages_env.openai.received == []


async def test_async_create_translates_for_an_openai_model(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    raw = await messages_env.sdk().messages.with_raw_response.create(
        model=GPT, max_tokens=100, messages=HELLO, system="Be brief.", stop_sequences=["END"])
    message = await raw.parse()
    fake = messages_env.openai
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == fake.reply
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        fake.usage["prompt_tokens"], fake.usage["completion_tokens"])
    expected = priced({"input_tokens": fake.usage["prompt_tokens"],
                       "output_tokens": fake.usage["completion_tokens"]}, GPT_PRICE)
    assert float(raw.headers["X-Gateway-Cost"]) == pytest.approx(expected)
    sent = fake.received[0].body
    assert sent["model"] == GPT_UPSTREAM
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert (sent["max_completion_tokens"], sent["stop"]) == (100, ["END"])
    assert "Bearer sk-upstream-secret" == fake.received[0].headers["Authorization"]
    assert messages_env.anthropic.received == []


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_the_sync_sdk_works_against_the_gateway(messages_env: MessagesEnv, model: str) -> None:
    await messages_env.start()
    sdk = messages_env.sync_sdk()

    def call() -> Any:
        with sdk.messages.stream(model=model, max_tokens=50, messages=HELLO) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        return sdk.messages.create(model=model, max_tokens=50, messages=HELLO), text, final

    plain, streamed_text, final = await asyncio.to_thread(call)
    expected = messages_env.anthropic.reply if model == CLAUDE else messages_env.openai.reply
    assert plain.content[0].text == expected
    assert streamed_text == expected
    assert final.content[0].text == expected and final.stop_reason == "end_turn"


async def test_bearer_auth_as_claude_code_sends_it(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    sdk = messages_env.sdk(api_key=None, auth_token=CALLER_KEY)
    message = await sdk.messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    assert message.content[0].text == messages_env.anthropic.reply
    sent = messages_env.anthropic.received[0].headers
    assert "Authorization" not in sent and sent["x-api-key"] == UPSTREAM_SECRET


# ------------------------------------------------------------------------ streams


async def test_stream_of_thinking_text_and_tool_use_natively(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    fake = messages_env.anthropic
    fake.blocks = [thinking_block("Let me check the weather."), text_block("Looking it up."),
                   tool_use_block("toolu_01A", "get_weather", {"city": "Paris"})]
    fake.stop_reason = "tool_use"
    async with messages_env.sdk().messages.stream(
            model=CLAUDE, max_tokens=2000, messages=HELLO, tools=[WEATHER],
            thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.model_dump(exclude_none=True)["content"] == fake.blocks
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == fake.usage["output_tokens"]
    assert "thinking" in kinds and "input_json" in kinds
    assert fake.received[0].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert messages_env.finished().completion_tokens == fake.usage["output_tokens"]


async def test_stream_translated_from_openai_chunks(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    async with messages_env.sdk().messages.stream(model=GPT, max_tokens=100, messages=HELLO) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    fake = messages_env.openai
    assert final.content[0].text == fake.reply
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        fake.usage["prompt_tokens"], fake.usage["completion_tokens"])
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert fake.received[0].body["stream_options"] == {"include_usage": True}
    ctx = messages_env.finished()
    assert (ctx.prompt_tokens, ctx.completion_tokens) == (fake.usage["prompt_tokens"], fake.usage["completion_tokens"])
    assert ctx.cost_usd == pytest.approx(priced({"input_tokens": fake.usage["prompt_tokens"],
                                                 "output_tokens": fake.usage["completion_tokens"]}, GPT_PRICE))


# --------------------------------------------------------------------- tool use


async def test_tool_use_round_trip_natively(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    fake = messages_env.anthropic
    fake.blocks = [tool_use_block("toolu_01A", "get_weather", {"city": "Paris"})]
    fake.stop_reason = "tool_use"
    sdk = messages_env.sdk()
    first = await sdk.messages.create(model=CLAUDE, max_tokens=200, messages=HELLO, tools=[WEATHER])
    call = first.content[0]
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    fake.blocks, fake.stop_reason = None, "end_turn"
    history = [*HELLO, {"role": "assistant", "content": [block.model_dump() for block in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]}]
    second = await sdk.messages.create(model=CLAUDE, max_tokens=200, messages=history, tools=[WEATHER])
    assert second.content[0].text == fake.reply
    assert fake.received[1].body["messages"] == history


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_round_trip_translated(messages_env: MessagesEnv, stream: bool) -> None:
    await messages_env.start()
    sdk = messages_env.sdk()

    async def ask(messages: list[Any]) -> Any:
        if not stream:
            return await sdk.messages.create(model="mock-gpt", max_tokens=200, messages=messages, tools=[WEATHER])
        async with sdk.messages.stream(model="mock-gpt", max_tokens=200, messages=messages,
                                       tools=[WEATHER]) as events:
            return await events.get_final_message()

    first = await ask(HELLO)
    call = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use"
    assert call.name == "get_weather" and isinstance(call.input["city"], str)
    history = [*HELLO, {"role": "assistant", "content": [block.model_dump(exclude_none=True)
                                                         for block in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]}]
    second = await ask(history)
    assert second.stop_reason == "end_turn"
    assert "get_weather returned: 18 C" in second.content[0].text


# -------------------------------------------------------------------- count_tokens


async def test_count_tokens_natively(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    raw = await messages_env.sdk().messages.with_raw_response.count_tokens(model=CLAUDE, messages=HELLO)
    assert (await raw.parse()).input_tokens == messages_env.anthropic.input_tokens
    assert "X-Gateway-Token-Count" not in raw.headers
    sent = messages_env.anthropic.received[0]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body == {"model": CLAUDE_UPSTREAM, "messages": HELLO}


async def test_count_tokens_for_other_models_is_counted_by_the_gateway(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    sdk = messages_env.sdk()
    exact = await sdk.messages.with_raw_response.count_tokens(model=GPT, messages=HELLO)
    with_tools = await sdk.messages.with_raw_response.count_tokens(model=GPT, messages=HELLO, tools=[WEATHER])
    mock = await sdk.messages.with_raw_response.count_tokens(model="mock-gpt", messages=HELLO)
    assert exact.headers["X-Gateway-Token-Count"] == "exact"
    assert with_tools.headers["X-Gateway-Token-Count"] == "estimate"
    assert mock.headers["X-Gateway-Token-Count"] == "estimate"
    counts = [(await r.parse()).input_tokens for r in (exact, with_tools, mock)]
    assert 0 < counts[0] < counts[1]
    assert counts[2] > 0
    assert messages_env.openai.received == [] and messages_env.anthropic.received == []


# -------------------------------------------------------------------------- errors


async def test_a_wrong_or_missing_key_is_an_authentication_error(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    with pytest.raises(anthropic.AuthenticationError) as wrong:
        await messages_env.sdk(api_key="sk-not-a-key").messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert wrong.value.body["error"]["type"] == "authentication_error"
    assert wrong.value.body["type"] == "error" and wrong.value.body["request_id"]
    resp = await messages_env.client.post("/v1/messages?beta=true", json={"max_tokens": 5, "messages": HELLO})
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"
    assert messages_env.anthropic.received == []


async def test_malformed_bodies_are_bad_requests_naming_the_field(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    sdk = messages_env.sdk()
    with pytest.raises(anthropic.BadRequestError) as zero:
        await sdk.messages.create(model=CLAUDE, max_tokens=0, messages=HELLO)
    assert zero.value.body["error"]["type"] == "invalid_request_error"
    assert zero.value.body["error"]["message"].startswith("Invalid value for 'max_tokens'")
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        await sdk.messages.create(model=GPT, max_tokens=5, messages=HELLO,
                                  tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert server_tool.value.body["error"]["message"].startswith("tools[0].type: ")
    assert messages_env.openai.received == [] and messages_env.anthropic.received == []
    resp = await messages_env.client.post("/v1/messages", json={"model": GPT, "messages": HELLO},
                                          headers={"x-api-key": CALLER_KEY})
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "Invalid value for 'max_tokens': this field is required."
    resp = await messages_env.client.post("/v1/messages", data=b"{not json",
                                          headers={"x-api-key": CALLER_KEY})
    assert resp.status == 400 and (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_unknown_and_forbidden_models(messages_env: MessagesEnv) -> None:
    config = messages_env.config()
    config["auth"]["keys"][0]["limits"] = {"models": [GPT]}
    await messages_env.start(config)
    sdk = messages_env.sdk()
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await sdk.messages.create(model="claude-nonexistent", max_tokens=5, messages=HELLO)
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
        await sdk.messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert forbidden.value.body["error"]["type"] == "permission_error"


async def test_a_limit_refusal_is_a_rate_limit_error_with_its_headers(messages_env: MessagesEnv) -> None:
    config = messages_env.config()
    config["auth"]["keys"][0]["limits"] = {"rpm": 1}
    await messages_env.start(config)
    sdk = messages_env.sdk()
    first = await sdk.messages.with_raw_response.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(anthropic.RateLimitError) as refused:
        await sdk.messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert "rpm" in refused.value.body["error"]["message"]
    headers = refused.value.response.headers
    assert 1 <= int(headers["Retry-After"]) <= 61 and headers["x-ratelimit-limit-requests"] == "1"
    assert len(messages_env.anthropic.received) == 1


async def test_a_spent_budget_is_a_rate_limit_error(messages_env: MessagesEnv) -> None:
    config = messages_env.config()
    config["auth"]["keys"][0]["limits"] = {"budget": {"usd": 0.0001, "period": "day"}}
    await messages_env.start(config)
    with pytest.raises(anthropic.RateLimitError) as refused:
        await messages_env.sdk().messages.create(model=CLAUDE, max_tokens=4000, messages=HELLO)
    assert "budget" in refused.value.body["error"]["message"]
    assert messages_env.anthropic.received == []


async def test_an_overloaded_upstream_is_an_overloaded_error(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    fake = messages_env.anthropic
    fake.fail_status, fake.fail_type, fake.fail_message = 529, "overloaded_error", "Overloaded"
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await messages_env.sdk().messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert isinstance(overloaded.value, anthropic.InternalServerError)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"


async def test_an_upstream_refusal_reaches_the_caller_as_anthropic_worded_it(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    fake = messages_env.anthropic
    fake.fail_status = 400
    fake.fail_message = "messages.1.content.0: Invalid `signature` in `thinking` block"
    with pytest.raises(anthropic.BadRequestError) as refused:
        await messages_env.sdk().messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert refused.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": fake.fail_message}}


async def test_a_failure_mid_stream_is_an_error_event(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    messages_env.anthropic.error_event_after = 1
    messages_env.openai.cut_after = 1
    for model in (CLAUDE, GPT):
        with pytest.raises(anthropic.APIStatusError) as failed:
            async with messages_env.sdk().messages.stream(model=model, max_tokens=50, messages=HELLO) as stream:
                async for _ in stream:
                    pass
        expected = "overloaded_error" if model == CLAUDE else "api_error"
        assert failed.value.body["error"]["type"] == expected, model
        assert messages_env.finished().error is not None


# ------------------------------------------------------------------ model discovery


async def test_models_in_anthropic_shape_for_anthropic_clients(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    page = await messages_env.sdk().models.list()
    ids = [model.id for model in page.data]
    assert CLAUDE in ids and GPT in ids and not page.has_more
    assert all(model.type == "model" and model.display_name == model.id for model in page.data)
    # Claude Code's discovery: one credential header, limit=1000, ids and display names read
    resp = await messages_env.client.get("/v1/models?limit=1000", headers={
        "x-api-key": CALLER_KEY, "anthropic-version": "2023-06-01"})
    doc = await resp.json()
    assert [entry["id"] for entry in doc["data"]] == ids
    assert (doc["first_id"], doc["last_id"]) == (ids[0], ids[-1])
    openai_shape = await (await messages_env.client.get(
        "/v1/models", headers={"Authorization": f"Bearer {CALLER_KEY}"})).json()
    assert openai_shape["object"] == "list" and "has_more" not in openai_shape
