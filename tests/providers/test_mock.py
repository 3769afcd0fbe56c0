"""The built-in mock provider: deterministic, configurable, speaks through real clients."""

from __future__ import annotations

import asyncio
import base64
import struct

import openai
import orjson

from tests.conftest import make_config

CHAT = {"messages": [{"role": "user", "content": "tell me a story"}]}


def _sdk(client) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)


async def test_same_request_same_answer(gateway) -> None:
    client = await gateway(make_config())
    first = await (await client.post("/v1/chat/completions", json=CHAT)).json()
    second = await (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert first["choices"] == second["choices"]
    assert first["id"] == second["id"]
    assert "tell me a story" in first["choices"][0]["message"]["content"]


async def test_stream_has_chunk_count_pieces_and_exact_usage(gateway) -> None:
    config = make_config()
    config["providers"]["mock"]["mock"] = {"chunk_count": 5}
    client = await gateway(config)
    sdk = _sdk(client)
    stream = await sdk.chat.completions.create(model="mock-gpt", messages=CHAT["messages"], stream=True,
                                               stream_options={"include_usage": True})
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(pieces) == 5
    plain = await sdk.chat.completions.create(model="mock-gpt", messages=CHAT["messages"])
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish == "stop"
    assert usage.completion_tokens == 5
    assert usage.prompt_tokens == plain.usage.prompt_tokens


async def test_max_tokens_truncates_with_length(gateway) -> None:
    client = await gateway(make_config())
    doc = await (await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})).json()
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"]["completion_tokens"] == 2


async def test_embeddings_float_and_base64_agree(gateway) -> None:
    config = make_config()
    config["providers"]["mock"]["mock"] = {"embedding_dimensions": 12}
    client = await gateway(config)
    body = {"model": "mock-embed", "input": ["alpha", "beta"]}
    floats = await (await client.post("/v1/embeddings", json=body)).json()
    b64 = await (await client.post("/v1/embeddings", json={**body, "encoding_format": "base64"})).json()
    for f, b in zip(floats["data"], b64["data"]):
        assert len(f["embedding"]) == 12
        decoded = struct.unpack("<12f", base64.b64decode(b["embedding"]))
        assert all(abs(x - y) < 1e-6 for x, y in zip(f["embedding"], decoded))
    assert floats["data"][0]["embedding"] != floats["data"][1]["embedding"]


async def test_embeddings_through_the_sdk_default_base64(gateway) -> None:
    client = await gateway(make_config())
    result = await _sdk(client).embeddings.create(model="mock-embed", input="alpha", dimensions=8)
    assert len(result.data[0].embedding) == 8
    norm = sum(x * x for x in result.data[0].embedding)
    assert abs(norm - 1.0) < 1e-4


async def test_latency_delays_the_first_byte(gateway) -> None:
    import time

    config = make_config()
    config["providers"]["mock"]["mock"] = {"latency": 0.2}
    client = await gateway(config)
    started = time.perf_counter()
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert time.perf_counter() - started >= 0.2
    assert orjson.loads(await resp.read())["provider"] == "mock"


# ------------------------------------------------------------- tools, response_format, n

import json  # noqa: E402

import jsonschema  # noqa: E402
import pytest  # noqa: E402
from openai.lib.streaming.chat import ChatCompletionStreamState  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from proxy.cache.store import RESPONSE_CACHE  # noqa: E402
from tests.conftest import sse_data  # noqa: E402

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
        "when": {"type": "string", "format": "date"},
        "stations": {"type": "array", "minItems": 2,
                     "items": {"type": "object", "required": ["id"], "additionalProperties": False,
                               "properties": {"id": {"type": "string", "format": "uuid"},
                                              "weight": {"type": "number", "minimum": 0, "maximum": 1}}}},
    },
    "required": ["city", "unit", "stations"],
    "additionalProperties": False,
}
CLOCK = {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": CLOCK}},
]
ASK = [{"role": "user", "content": "What is the weather in Paris, and the time there?"}]


def _valid(schema, value) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
                                    ).validate(value)


class Step(BaseModel):
    explanation: str
    output: str


class Plan(BaseModel):
    goal: str = Field(max_length=60)
    steps: list[Step] = Field(min_length=2)
    confidence: float = Field(ge=0, le=1)
    owner: Step | None = None


async def test_tools_get_one_call_whose_arguments_fit_the_schema(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    answer = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"  # the first tool when tool_choice is absent
    _valid(WEATHER, json.loads(call.function.arguments))
    again = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=TOOLS)
    assert again.choices[0].message.tool_calls == choice.message.tool_calls
    assert answer.usage.completion_tokens == -(-len("get_weather") // 4) + -(-len(call.function.arguments) // 4)
    plain = await sdk.chat.completions.create(model="mock-gpt", messages=ASK)
    assert answer.usage.prompt_tokens > plain.usage.prompt_tokens  # the tools count as prompt


async def test_tool_choice_picks_names_or_turns_calls_off(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    named = await sdk.chat.completions.create(
        model="mock-gpt", messages=ASK, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    [call] = named.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    _valid(CLOCK, json.loads(call.function.arguments))
    required = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=TOOLS,
                                                 tool_choice="required")
    assert required.choices[0].message.tool_calls[0].function.name == "get_weather"
    off = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=TOOLS, tool_choice="none")
    assert off.choices[0].finish_reason == "stop" and off.choices[0].message.tool_calls is None
    assert "weather in Paris" in off.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=TOOLS,
                                          tool_choice={"type": "function", "function": {"name": "nope"}})
    assert refused.value.body["param"] == "tool_choice" and "nope" in refused.value.body["message"]


async def test_a_tool_result_gets_a_text_answer(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    first = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    history = [*ASK, first.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "18 degrees, light rain"}]
    second = await sdk.chat.completions.create(model="mock-gpt", messages=history, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    text = second.choices[0].message.content
    assert "weather in Paris" in text and "get_weather" in text and "18 degrees, light rain" in text


async def test_a_streamed_tool_call_is_sent_as_openai_sends_it(gateway) -> None:
    config = make_config()
    config["providers"]["mock"]["mock"] = {"chunk_count": 5}
    client = await gateway(config)
    plain = await (await client.post("/v1/chat/completions", json={"messages": ASK, "tools": TOOLS})).json()
    resp = await client.post("/v1/chat/completions", json={
        "messages": ASK, "tools": TOOLS, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_data(await resp.text())
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    expected = plain["choices"][0]["message"]["tool_calls"][0]
    assert deltas[0] == {"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": expected["id"], "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]}
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert len(pieces) == 5 and all(set(d["tool_calls"][0]) == {"index", "function"} for d in deltas[1:-1])
    assert "".join(pieces) == expected["function"]["arguments"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"] == plain["usage"]


async def test_the_sdk_stream_helper_accumulates_the_tool_call(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    tool = openai.pydantic_function_tool(Plan, name="make_plan")
    async with sdk.chat.completions.stream(model="mock-gpt", messages=ASK, tools=[tool]) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert isinstance(call.function.parsed_arguments, Plan)  # strict tool: the SDK parsed the JSON
    plain = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, tools=[tool])
    assert plain.choices[0].message.tool_calls[0].function.arguments == call.function.arguments


async def test_parse_with_a_pydantic_model(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    answer = await sdk.chat.completions.parse(model="mock-gpt", messages=ASK, response_format=Plan)
    plan = answer.choices[0].message.parsed
    assert isinstance(plan, Plan) and len(plan.steps) >= 2 and 0 <= plan.confidence <= 1
    async with sdk.chat.completions.stream(model="mock-gpt", messages=ASK, response_format=Plan) as stream:
        async for _ in stream:
            pass
        streamed = await stream.get_final_completion()
    assert streamed.choices[0].message.parsed == plan


async def test_json_object_and_json_schema_content(gateway) -> None:
    client = await gateway(make_config())
    doc = await (await client.post("/v1/chat/completions", json={
        "messages": ASK, "response_format": {"type": "json_object"}})).json()
    content = json.loads(doc["choices"][0]["message"]["content"])
    assert isinstance(content, dict) and "weather in Paris" in content["reply"]
    schema = {"type": "array", "minItems": 3, "items": {"type": "string", "format": "email"}}
    doc = await (await client.post("/v1/chat/completions", json={
        "messages": ASK, "response_format": {"type": "json_schema", "json_schema": {
            "name": "emails", "schema": schema, "strict": True}}})).json()
    _valid(schema, json.loads(doc["choices"][0]["message"]["content"]))
    assert doc["choices"][0]["finish_reason"] == "stop"


async def test_after_a_tool_result_the_response_format_applies(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "14:00"}]
    answer = await sdk.chat.completions.parse(model="mock-gpt", messages=history, response_format=Plan,
                                              tools=[openai.pydantic_function_tool(Step)])
    assert answer.choices[0].message.tool_calls in (None, [])
    assert isinstance(answer.choices[0].message.parsed, Plan)


async def test_n_gives_n_distinct_deterministic_choices(gateway) -> None:
    sdk = _sdk(await gateway(make_config()))
    one = await sdk.chat.completions.create(model="mock-gpt", messages=ASK)
    three = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    texts = [c.message.content for c in three.choices]
    assert len(set(texts)) == 3 and all("weather in Paris" in t for t in texts)
    assert texts[0] == one.choices[0].message.content
    again = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, n=3)
    assert again.choices == three.choices
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    calls = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, n=3, tools=TOOLS)
    arguments = [c.message.tool_calls[0].function.arguments for c in calls.choices]
    assert len({c.message.tool_calls[0].id for c in calls.choices}) == 3 and len(set(arguments)) == 3
    for a in arguments:
        _valid(WEATHER, json.loads(a))
    parsed = await sdk.chat.completions.parse(model="mock-gpt", messages=ASK, n=2, response_format=Plan)
    assert [isinstance(c.message.parsed, Plan) for c in parsed.choices] == [True, True]
    assert parsed.choices[0].message.parsed != parsed.choices[1].message.parsed


async def test_n_streams_interleave_choices_and_add_up_to_the_plain_answer(gateway) -> None:
    client = await gateway(make_config())
    sdk = _sdk(client)
    for extra in ({}, {"tools": TOOLS}, {"response_format": Plan}):
        create = sdk.chat.completions.parse if "response_format" in extra else sdk.chat.completions.create
        plain = await create(model="mock-gpt", messages=ASK, n=3, **extra)
        async with sdk.chat.completions.stream(model="mock-gpt", messages=ASK, n=3, **extra,
                                               stream_options={"include_usage": True}) as stream:
            order = [e.chunk.choices[0].index async for e in stream if e.type == "chunk" and e.chunk.choices]
            final = await stream.get_final_completion()
        assert order[:6] == [0, 1, 2, 0, 1, 2]  # one chunk per choice at each step
        assert [c.index for c in final.choices] == [0, 1, 2]
        for got, want in zip(final.choices, plain.choices):
            assert got.finish_reason == want.finish_reason
            assert got.message.content == want.message.content
            assert (got.message.tool_calls or []) == (want.message.tool_calls or []) or [
                (t.id, t.function.name, t.function.arguments) for t in got.message.tool_calls] == [
                (t.id, t.function.name, t.function.arguments) for t in want.message.tool_calls]
        assert final.usage.completion_tokens == plain.usage.completion_tokens


async def test_max_tokens_still_truncates_text_and_cuts_long_json(gateway) -> None:
    client = await gateway(make_config())
    doc = await (await client.post("/v1/chat/completions", json={"messages": ASK, "n": 2, "max_tokens": 2})).json()
    assert [c["finish_reason"] for c in doc["choices"]] == ["length", "length"]
    assert doc["usage"]["completion_tokens"] == 4
    doc = await (await client.post("/v1/chat/completions", json={
        "messages": ASK, "tools": TOOLS, "max_tokens": 5})).json()
    assert doc["choices"][0]["finish_reason"] == "length"
    assert len(doc["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == 20
    assert doc["usage"]["completion_tokens"] == 5


async def _settle(client) -> None:
    cache = client.app[RESPONSE_CACHE]
    while cache._writes:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("stored_as", ["plain", "stream"])
async def test_cached_tool_calls_and_choices_come_back_the_same_either_way(gateway, stored_as) -> None:
    client = await gateway(make_config(caching={"enabled": True, "ttl": 60}))
    sdk = _sdk(client)

    async def ask(stream: bool, **extra):
        if not stream:
            raw = await sdk.chat.completions.with_raw_response.create(model="mock-gpt", messages=ASK, **extra)
            return raw.headers["X-Cache"], raw.parse()
        stream = await sdk.chat.completions.create(model="mock-gpt", messages=ASK, stream=True, **extra)
        state = ChatCompletionStreamState()
        async for chunk in stream:
            state.handle_chunk(chunk)
        return stream.response.headers["X-Cache"], state.get_final_completion()

    def shape(answer):
        return [(c.index, c.finish_reason, c.message.content,
                 [(t.id, t.function.name, t.function.arguments) for t in c.message.tool_calls or ()])
                for c in answer.choices]

    for extra in ({"tools": TOOLS}, {"n": 3}, {"n": 2, "tools": TOOLS}):
        first_cache, first = await ask(stored_as == "stream", **extra)
        await _settle(client)
        second_cache, second = await ask(stored_as == "plain", **extra)
        assert (first_cache, second_cache) == ("MISS", "HIT"), extra
        assert shape(second) == shape(first), extra
        assert bool(shape(second)[0][3]) == ("tools" in extra), extra  # the tool call came back


async def test_text_parts_that_are_not_strings_are_read_as_no_text(gateway) -> None:
    client = await gateway(make_config())
    body = {"model": "mock-gpt", "messages": [
        {"role": "system", "content": [{"type": "text", "text": ""}, {"type": "text", "text": None}]},
        {"role": "user", "content": [{"type": "text", "text": None}, {"type": "text", "text": "hi"}]}]}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"].endswith(": hi")
