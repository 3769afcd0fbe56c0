"""The Anthropic adapter: OpenAI Chat Completions in, Anthropic Messages upstream.

Three layers of checks:

* golden pairs under ``tests/data/anthropic/`` run through the pure
  translation functions, one file per mapping row;
* the gateway in-process in front of :class:`FakeAnthropic`, driven with
  aiohttp's test client and with the official ``openai`` SDK;
* stream robustness: the fake's bytes cut at arbitrary points, and one event
  larger than 128 KiB.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import socket
from pathlib import Path
from typing import Any, Iterable

import openai
import orjson
import pytest

from proxy.config import ApiConfig, ModelConfig, parse_config
from proxy.errors import GatewayError
from proxy.formats.anthropic.request import DEFAULT_MAX_TOKENS, to_anthropic_request
from proxy.formats.anthropic.response import to_openai_response
from proxy.formats.anthropic.stream import StreamTranslator
from proxy.observability.observers import OBSERVERS
from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.base import UpstreamCall
from tests.conftest import RecordingObserver, make_config
from tests.fake_anthropic import FakeAnthropic, text_block, tool_use_block

DATA = Path(__file__).resolve().parents[1] / "data" / "anthropic"
SECRET = "sk-ant-upstream-secret-0000"
CALLER_KEY = "caller-key-1234"
GOLDEN_CREATED = 1700000000
GOLDEN_MODEL = ModelConfig(name="claude", provider="anthropic", upstream_model="claude-sonnet-4-5")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}
STOP_REASONS = [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("pause_turn", "stop"),
    ("max_tokens", "length"),
    ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
]


def golden(kind: str) -> list[Any]:
    """Each JSON file under ``data/anthropic/<kind>`` as a pytest param named after it."""
    files = sorted((DATA / kind).glob("*.json"))
    assert files, f"no golden files under {DATA / kind}"
    return [pytest.param(orjson.loads(path.read_bytes()), id=path.stem) for path in files]


def refusal_cases() -> list[Any]:
    cases = orjson.loads((DATA / "refusals.json").read_bytes())
    return [pytest.param(case, id=case["name"]) for case in cases]


# ============================================================ golden pairs


@pytest.mark.parametrize("case", golden("requests"))
def test_request_mapping(case: dict[str, Any]) -> None:
    model = dataclasses.replace(GOLDEN_MODEL, **case.get("model", {}))
    body = case["openai_request"]
    before = copy.deepcopy(body)
    assert to_anthropic_request(body, model, stream=case.get("stream", False)) == case["anthropic_request"]
    assert body == before, "the caller's body must not be modified"


@pytest.mark.parametrize("case", refusal_cases())
def test_unsupported_request_refused(case: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as caught:
        to_anthropic_request(case["openai_request"], GOLDEN_MODEL)
    assert caught.value.status == 400
    assert caught.value.param == case["param"]
    assert caught.value.message


@pytest.mark.parametrize("case", golden("responses"))
def test_response_mapping(case: dict[str, Any]) -> None:
    assert to_openai_response(case["anthropic_response"], created=GOLDEN_CREATED) == case["openai_response"]


@pytest.mark.parametrize("case", golden("streams"))
def test_stream_mapping(case: dict[str, Any]) -> None:
    translator = StreamTranslator(include_usage=case["include_usage"], created=GOLDEN_CREATED)
    chunks = [chunk for event in case["anthropic_events"] for chunk in translator.translate(event)]
    assert chunks == case["openai_chunks"]
    assert translator.finished
    assert translator.openai_usage() == case["usage"]


def test_stream_not_finished_before_message_stop() -> None:
    case = orjson.loads((DATA / "streams" / "text_no_usage.json").read_bytes())
    translator = StreamTranslator(created=GOLDEN_CREATED)
    for event in case["anthropic_events"][:-1]:
        translator.translate(event)
    assert not translator.finished


# ============================================================ max_tokens


@pytest.mark.parametrize("configured,requested,sent", [
    (None, None, DEFAULT_MAX_TOKENS),
    (100_000, None, DEFAULT_MAX_TOKENS),  # a configured context size is a limit, not a default
    (2048, None, 2048),                   # a configured limit below the default lowers it
    (100_000, {"max_tokens": 20_000}, 20_000),
    (100_000, {"max_completion_tokens": 300, "max_tokens": 20_000}, 300),
    (None, {"max_tokens": 256.0}, 256),
])
def test_max_tokens_sent(configured: int | None, requested: dict[str, Any] | None, sent: int) -> None:
    model = dataclasses.replace(GOLDEN_MODEL, max_tokens=configured)
    body = {"messages": [{"role": "user", "content": "hi"}], **(requested or {})}
    assert to_anthropic_request(body, model)["max_tokens"] == sent


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [0, -5, 1.5, "100", True, [100], 2**63])
def test_max_tokens_that_is_not_a_whole_number_is_refused(field: str, value: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(GatewayError) as caught:
        to_anthropic_request(body, GOLDEN_MODEL)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "invalid_request", field)
    assert "whole number" in caught.value.message


# ============================================================ malformed fields


def chat(**fields: Any) -> dict[str, Any]:
    """A valid body with a tool round trip, ``fields`` replacing or adding top-level fields."""
    return {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        **fields,
    }


def with_message(index: int, **fields: Any) -> dict[str, Any]:
    body = chat()
    body["messages"][index] = {**body["messages"][index], **fields}
    return body


MALFORMED = [
    # body, the param named, the code
    pytest.param(with_message(0, content=[{"type": "text", "text": "a"}, {"type": "text", "text": 5}]),
                 "messages[0].content[1].text", "invalid_request", id="system-part-text-number"),
    pytest.param(with_message(2, tool_calls=[{"function": "x"}]),
                 "messages[2].tool_calls[0].function", "invalid_request", id="tool-call-function-string"),
    pytest.param(chat(tool_choice={"type": "function", "function": "f"}),
                 "tool_choice.function", "invalid_request", id="tool-choice-function-string"),
    pytest.param(chat(tool_choice={"type": "function", "function": {"name": 7}}),
                 "tool_choice.function.name", "invalid_request", id="tool-choice-name-number"),
    pytest.param(chat(messages={"role": "user"}), "messages", "invalid_request", id="messages-object"),
    pytest.param(chat(messages=["hi"]), "messages[0]", "invalid_request", id="message-string"),
    pytest.param(chat(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role",
                 "invalid_request", id="unknown-role"),
    pytest.param(with_message(0, content=7), "messages[0].content", "invalid_request",
                 id="system-content-number"),
    pytest.param(with_message(0, content=["text"]), "messages[0].content[0]", "invalid_request",
                 id="system-part-string"),
    pytest.param(with_message(1, content={"type": "text"}), "messages[1].content", "invalid_request",
                 id="user-content-object"),
    pytest.param(with_message(1, content=[{"type": "text", "text": ["a"]}]),
                 "messages[1].content[0].text", "invalid_request", id="user-part-text-list"),
    pytest.param(with_message(1, content=[{"type": "image_url", "image_url": 5}]),
                 "messages[1].content[0].image_url.url", "invalid_image_url", id="image-url-number"),
    pytest.param(with_message(2, content=5), "messages[2].content", "invalid_request",
                 id="assistant-content-number"),
    pytest.param(with_message(2, tool_calls={"id": "call_1"}), "messages[2].tool_calls",
                 "invalid_request", id="tool-calls-object"),
    pytest.param(with_message(2, tool_calls=["call_1"]), "messages[2].tool_calls[0]",
                 "invalid_request", id="tool-call-string"),
    pytest.param(with_message(2, tool_calls=[{"id": 1, "function": {"name": "f"}}]),
                 "messages[2].tool_calls[0].id", "invalid_request", id="tool-call-id-number"),
    pytest.param(with_message(2, tool_calls=[{"id": "c", "function": {"name": None}}]),
                 "messages[2].tool_calls[0].function.name", "invalid_request", id="tool-call-no-name"),
    pytest.param(with_message(2, tool_calls=[{"id": "c", "function": {"name": "f", "arguments": 3}}]),
                 "messages[2].tool_calls[0].function.arguments", "invalid_tool_arguments",
                 id="arguments-number"),
    pytest.param(with_message(3, tool_call_id=["call_1"]), "messages[3].tool_call_id",
                 "invalid_request", id="tool-call-id-list"),
    pytest.param(with_message(3, content=False), "messages[3].content", "invalid_request",
                 id="tool-content-boolean"),
    pytest.param(chat(tools={"type": "function"}), "tools", "invalid_request", id="tools-object"),
    pytest.param(chat(tools=["f"]), "tools[0]", "invalid_request", id="tool-string"),
    pytest.param(chat(tools=[{"type": "function", "function": "f"}]), "tools[0].function",
                 "invalid_request", id="tool-function-string"),
    pytest.param(chat(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
                 "tools[0].function.parameters", "invalid_request", id="tool-parameters-string"),
    pytest.param(chat(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]),
                 "tools[0].function.description", "invalid_request", id="tool-description-number"),
    pytest.param(chat(parallel_tool_calls="no"), "parallel_tool_calls", "invalid_request",
                 id="parallel-tool-calls-string"),
    pytest.param(chat(temperature="warm"), "temperature", "invalid_request", id="temperature-string"),
    pytest.param(chat(top_p=[0.5]), "top_p", "invalid_request", id="top-p-list"),
    pytest.param(chat(top_k=1.5), "top_k", "invalid_request", id="top-k-fraction"),
    pytest.param(chat(stop=5), "stop", "invalid_request", id="stop-number"),
    pytest.param(chat(stop=["END", None]), "stop[1]", "invalid_request", id="stop-item-null"),
    pytest.param(chat(user=42), "user", "invalid_request", id="user-number"),
    pytest.param(chat(n=2.0), "n", "unsupported_parameter", id="n-two-as-float"),
    pytest.param(chat(modalities="audio"), "modalities", "unsupported_parameter", id="modalities-string"),
]


@pytest.mark.parametrize("body,param,code", MALFORMED)
def test_malformed_field_is_a_400_naming_it(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(GatewayError) as caught:
        to_anthropic_request(body, GOLDEN_MODEL)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)
    assert caught.value.message


def test_the_valid_body_behind_the_malformed_ones_translates() -> None:
    out = to_anthropic_request(chat(tool_choice={"type": "function", "function": {"name": "f"}}),
                               GOLDEN_MODEL)
    assert out["system"] == "Be brief."
    assert out["tool_choice"] == {"type": "tool", "name": "f"}
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]


def test_wrong_type_message_says_what_to_send() -> None:
    with pytest.raises(GatewayError) as caught:
        to_anthropic_request(with_message(0, content=[{"type": "text", "text": 5}]), GOLDEN_MODEL)
    assert caught.value.message == "messages[0].content[0].text must be a string, not a number."


# ============================================================ odd upstream answers


def test_odd_blocks_and_counts_in_an_answer_are_skipped() -> None:
    doc = {
        "id": "msg_1", "model": ["claude"], "stop_reason": {"odd": True},
        "content": ["stray", {"type": "text", "text": 5}, {"type": "text", "text": "Hi"},
                    {"type": "tool_use", "id": 3, "name": "f", "input": [1, 2]}, None],
        "usage": {"input_tokens": "12", "output_tokens": 4, "cache_read_input_tokens": True,
                  "cache_creation_input_tokens": -3},
    }
    answer = to_openai_response(doc, created=GOLDEN_CREATED)
    assert answer["id"] == "msg_1"
    assert answer["model"] is None
    choice = answer["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hi", "tool_calls": [
        {"id": None, "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert choice["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 4,
                               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}}


@pytest.mark.parametrize("usage", [None, [], "lots", 7, {"input_tokens": 2**64 - 1}])
def test_usage_that_is_not_counts_is_zero(usage: Any) -> None:
    answer = to_openai_response({"content": [], "usage": usage}, created=GOLDEN_CREATED)
    assert answer["usage"]["total_tokens"] == 0


def test_odd_stream_events_are_skipped() -> None:
    translator = StreamTranslator(include_usage=True, created=GOLDEN_CREATED)
    events: list[Any] = [
        {"type": "message_start", "message": "msg"},
        {"type": ["content_block_start"]},
        {"type": "content_block_start", "index": [0], "content_block": "text"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": "x"}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": {"a": 1}}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": "{\"a\": 1}"}},
        {"type": "message_delta", "delta": {"stop_reason": ["tool_use"]},
         "usage": {"output_tokens": "9", "input_tokens": 3}},
        {"type": "message_delta", "delta": "end", "usage": [1]},
        {"type": "message_stop"},
    ]
    chunks = [chunk for event in events for chunk in translator.translate(event)]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                         "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\": 1}"}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 3
    assert chunks[-1]["usage"]["completion_tokens"] == 0


# ============================================================ fixtures


def anthropic_config(url: str, provider: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shared base config plus an ``anthropic`` provider at ``url``, made the default."""
    config = make_config()
    config["providers"]["anthropic"] = {
        "type": "anthropic",
        "api_key": SECRET,
        "base_url": url,
        "models": {
            "claude": {"upstream_model": "claude-sonnet-4-5", "max_tokens": 2048},
            "claude-warm": {"upstream_model": "claude-haiku-4-5", "temperature": 0.3},
            "claude-quick": {"upstream_model": "claude-haiku-4-5", "timeout": 0.5},
            "claude-big": {"upstream_model": "claude-3-opus-20240229", "max_tokens": 100_000},
        },
        **(provider or {}),
    }
    config["routing"] = {"default_provider": "anthropic", "default_model": "claude"}
    return config


@pytest.fixture
async def fake(aiohttp_server: Any) -> Any:
    """A running fake Anthropic upstream; ``fake.url`` is its base URL."""
    upstream = FakeAnthropic(model="claude-sonnet-4-5-20250929")
    server = await aiohttp_server(upstream.app())
    upstream.url = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    yield upstream
    upstream.release.set()


@pytest.fixture
async def client(gateway: Any, fake: FakeAnthropic) -> Any:
    """The gateway, its default model served by the fake Anthropic upstream."""
    return await gateway(anthropic_config(fake.url))  # type: ignore[attr-defined]


@pytest.fixture
async def sdk(client: Any) -> Any:
    """The official OpenAI SDK pointed at the gateway (no retries of its own)."""
    api = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=CALLER_KEY, max_retries=0)
    yield api
    await api.close()


@pytest.fixture
def observed(client: Any) -> RecordingObserver:
    """Records the context of each request the gateway finished (what it accounted for)."""
    recorder = RecordingObserver()
    client.app[OBSERVERS].append(recorder)
    return recorder


def expected_usage(fake: FakeAnthropic) -> dict[str, int]:
    """The OpenAI token counts for the fake's Anthropic usage."""
    usage = fake.usage
    prompt = (usage["input_tokens"] + usage.get("cache_read_input_tokens", 0)
              + usage.get("cache_creation_input_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": usage["output_tokens"],
            "total_tokens": prompt + usage["output_tokens"],
            "cached_tokens": usage.get("cache_read_input_tokens", 0),
            "cache_write_tokens": usage.get("cache_creation_input_tokens", 0)}


def hello(**extra: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": "Say hello"}], **extra}


def sse_payloads(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    assert "\nevent:" not in text and not text.startswith("event:")
    return [block[len("data: "):] for block in text.split("\n\n") if block]


async def collect(stream: Any) -> tuple[list[Any], str, dict[int, dict[str, Any]]]:
    """All chunks of an SDK stream, the text they carry and the tool calls they build."""
    chunks, text, calls = [], "", {}
    async for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = piece.id or call["id"]
                if piece.function is not None:
                    call["name"] = piece.function.name or call["name"]
                    call["arguments"] += piece.function.arguments or ""
    return chunks, text, calls


# ============================================================ plain calls


async def test_plain_answer_and_upstream_request(client: Any, fake: FakeAnthropic) -> None:
    resp = await client.post("/v1/chat/completions", json=hello(),
                             headers={"Authorization": f"Bearer {CALLER_KEY}"})
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["object"] == "chat.completion"
    assert doc["id"] == fake.message_id
    assert doc["model"] == fake.model
    assert doc["provider"] == "anthropic"
    assert isinstance(doc["created"], int)
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": fake.reply}
    assert doc["choices"][0]["finish_reason"] == "stop"
    usage = expected_usage(fake)
    assert doc["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert doc["usage"]["completion_tokens"] == usage["completion_tokens"]
    assert doc["usage"]["total_tokens"] == usage["total_tokens"]
    assert doc["usage"]["prompt_tokens_details"]["cached_tokens"] == usage["cached_tokens"]
    assert doc["usage"]["prompt_tokens_details"]["cache_write_tokens"] == usage["cache_write_tokens"]

    sent = fake.received[-1]
    assert sent.path == "/v1/messages"
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["x-api-key"] == SECRET
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers
    assert all(CALLER_KEY not in value for value in headers.values())
    assert sent.body == {"model": "claude-sonnet-4-5", "max_tokens": 2048,
                         "messages": [{"role": "user", "content": "Say hello"}]}


async def test_sdk_request_mapping(sdk: Any, fake: FakeAnthropic) -> None:
    answer = await sdk.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
            ]},
        ],
        max_completion_tokens=300,
        stop="END",
        temperature=0.5,
        top_p=0.8,
        user="end-user-7",
        seed=3,
    )
    assert answer.choices[0].message.content == fake.reply
    assert answer.usage.prompt_tokens_details.cached_tokens == fake.usage["cache_read_input_tokens"]
    assert fake.received[-1].body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": "/9j/4AAQSkZJRg=="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        ]}],
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.8,
        "metadata": {"user_id": "end-user-7"},
    }


async def test_max_tokens_defaults(client: Any, fake: FakeAnthropic) -> None:
    await client.post("/v1/chat/completions", json=hello(model="claude-warm"))
    await client.post("/v1/chat/completions", json=hello(model="claude", max_tokens=77))
    first, second = fake.received
    assert first.body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert first.body["temperature"] == 0.3, "the model's configured temperature is applied"
    assert second.body["max_tokens"] == 77


async def test_configured_max_tokens_is_a_limit_not_a_default(client: Any, fake: FakeAnthropic) -> None:
    await client.post("/v1/chat/completions", json=hello(model="claude-big"))
    await client.post("/v1/chat/completions", json=hello(model="claude-big", max_tokens=4_000))
    resp = await client.post("/v1/chat/completions", json=hello(model="claude-big", max_tokens=100_001))
    assert [sent.body["max_tokens"] for sent in fake.received] == [DEFAULT_MAX_TOKENS, 4_000]
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "max_tokens_exceeded"


@pytest.mark.parametrize("stop_reason,finish", STOP_REASONS)
async def test_stop_reasons_plain(sdk: Any, fake: FakeAnthropic, stop_reason: str, finish: str) -> None:
    fake.stop_reason = stop_reason
    answer = await sdk.chat.completions.create(**hello())
    assert answer.choices[0].finish_reason == finish


@pytest.mark.parametrize("stop_reason,finish", STOP_REASONS)
async def test_stop_reasons_stream(sdk: Any, fake: FakeAnthropic, stop_reason: str, finish: str) -> None:
    fake.stop_reason = stop_reason
    chunks, text, _ = await collect(await sdk.chat.completions.create(**hello(), stream=True))
    assert text == fake.reply
    assert chunks[-1].choices[0].finish_reason == finish


async def test_tool_call_round_trip(sdk: Any, fake: FakeAnthropic) -> None:
    fake.blocks = [text_block("Let me look that up."),
                   tool_use_block("toolu_01abc", "get_weather", {"city": "Paris", "days": [1, 2]})]
    fake.stop_reason = "tool_use"
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await sdk.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL],
                                              tool_choice="required", parallel_tool_calls=False)
    sent = fake.received[-1].body
    assert sent["tools"] == [{"name": "get_weather", "description": "Current weather in a city",
                              "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("toolu_01abc", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": [1, 2]}

    fake.blocks, fake.stop_reason = [text_block("Sunny, 21C.")], "end_turn"
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    second = await sdk.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Sunny, 21C."
    assert second.choices[0].message.tool_calls is None
    sent = fake.received[-1].body
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look that up."},
            {"type": "tool_use", "id": "toolu_01abc", "name": "get_weather",
             "input": {"city": "Paris", "days": [1, 2]}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01abc", "content": "sunny, 21C"}]},
    ]


async def test_only_tool_calls_gives_null_content(sdk: Any, fake: FakeAnthropic) -> None:
    fake.blocks = [tool_use_block("toolu_1", "get_weather", {"city": "Oslo"}),
                   tool_use_block("toolu_2", "get_weather", {"city": "Rome"})]
    fake.stop_reason = "tool_use"
    answer = await sdk.chat.completions.create(**hello(), tools=[WEATHER_TOOL])
    message = answer.choices[0].message
    assert message.content is None
    assert [json.loads(c.function.arguments)["city"] for c in message.tool_calls] == ["Oslo", "Rome"]


async def test_consecutive_tool_results_share_one_user_message(sdk: Any, fake: FakeAnthropic) -> None:
    calls = [{"id": f"toolu_{i}", "type": "function",
              "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
             for i, city in enumerate(["Oslo", "Rome"])]
    await sdk.chat.completions.create(model="claude", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Oslo and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_0", "content": "cold"},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "warm"},
    ])
    messages = fake.received[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [(b["tool_use_id"], b["content"]) for b in messages[2]["content"]] == [
        ("toolu_0", "cold"), ("toolu_1", "warm")]
    assert [b["input"] for b in messages[1]["content"]] == [{"city": "Oslo"}, {"city": "Rome"}]


# ============================================================ refusals


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("field,value", [
    ("n", 2), ("logit_bias", {"50256": -100}), ("logprobs", True), ("top_logprobs", 2),
    ("temperature", 1.2),
])
async def test_unsupported_fields_are_refused(sdk: Any, fake: FakeAnthropic, field: str, value: Any,
                                              stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(**hello(), stream=stream, **{field: value})
    assert caught.value.status_code == 400
    assert caught.value.param == field
    assert field in caught.value.message or "Anthropic" in caught.value.message
    assert fake.received == [], "nothing may reach the upstream"


async def test_bad_tool_arguments_are_refused(client: Any, fake: FakeAnthropic) -> None:
    body = {"model": "claude", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "x"},
    ]}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"
    assert error["type"] == "invalid_request_error"
    assert fake.received == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("body,param", [
    pytest.param({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": 5}]},
        {"role": "user", "content": "hi"}]}, "messages[0].content[1].text", id="system-text-number"),
    pytest.param({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"function": "x"}]}]},
        "messages[1].tool_calls[0].function", id="tool-call-function-string"),
    pytest.param({"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL],
                  "tool_choice": {"type": "function", "function": "f"}},
                 "tool_choice.function", id="tool-choice-function-string"),
])
async def test_malformed_fields_are_400_not_500(client: Any, fake: FakeAnthropic, body: dict[str, Any],
                                               param: str, stream: bool) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "claude", "stream": stream, **body})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "invalid_request",
                                                             "invalid_request_error")
    assert param in error["message"]
    assert fake.received == [], "nothing may reach the upstream"


async def test_odd_blocks_in_an_upstream_answer_are_skipped(client: Any, fake: FakeAnthropic) -> None:
    fake.raw_answer = orjson.dumps({
        "id": "msg_odd", "type": "message", "model": "claude-sonnet-4-5", "stop_reason": ["end_turn"],
        "content": [7, {"type": "text", "text": {"nested": 1}}, {"type": "text", "text": "Fine."}],
        "usage": "many",
    })
    resp = await client.post("/v1/chat/completions", json=hello())
    assert resp.status == 200
    doc = await resp.json()
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": "Fine."}
    assert doc["choices"][0]["finish_reason"] == "stop"
    assert doc["usage"]["total_tokens"] == 0


async def test_embeddings_refused_naming_the_provider(sdk: Any, fake: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.embeddings.create(model="claude", input="hello")
    assert "anthropic" in caught.value.message
    assert caught.value.param == "model"
    assert fake.received == []


# ============================================================ streams


async def test_stream_over_raw_sse(client: Any, fake: FakeAnthropic, observed: RecordingObserver) -> None:
    resp = await client.post("/v1/chat/completions", json=hello(stream=True))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    text = await resp.text()
    assert text.endswith("data: [DONE]\n\n")
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["provider"] == "anthropic" for c in chunks)
    assert all(c["id"] == fake.message_id and c["model"] == fake.model for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == fake.reply
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks), "no usage chunk unless asked"
    usage = expected_usage(fake)
    last = observed.finished[-1]
    assert (last.prompt_tokens, last.completion_tokens, last.error) == (
        usage["prompt_tokens"], usage["completion_tokens"], None)
    assert fake.received[-1].body["stream"] is True


async def test_stream_usage_chunk_when_asked(sdk: Any, fake: FakeAnthropic) -> None:
    stream = await sdk.chat.completions.create(**hello(), stream=True,
                                               stream_options={"include_usage": True})
    chunks, text, _ = await collect(stream)
    assert text == fake.reply
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    usage = expected_usage(fake)
    assert last.usage.prompt_tokens == usage["prompt_tokens"]
    assert last.usage.completion_tokens == usage["completion_tokens"], "output_tokens overwrite, not add"
    assert last.usage.total_tokens == usage["total_tokens"]
    assert last.usage.prompt_tokens_details.cached_tokens == usage["cached_tokens"]
    assert last.usage.prompt_tokens_details.cache_write_tokens == usage["cache_write_tokens"]
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_tool_calls(sdk: Any, fake: FakeAnthropic) -> None:
    fake.blocks = [text_block("Checking two cities."),
                   tool_use_block("toolu_a", "get_weather", {"city": "Paris"}),
                   tool_use_block("toolu_b", "get_weather", {"city": "Zürich", "units": "C"})]
    fake.stop_reason = "tool_use"
    chunks, text, calls = await collect(await sdk.chat.completions.create(
        **hello(), tools=[WEATHER_TOOL], stream=True))
    assert text == "Checking two cities."
    assert sorted(calls) == [0, 1], "tool call indexes count tool calls, not content blocks"
    assert [(calls[i]["id"], calls[i]["name"]) for i in (0, 1)] == [
        ("toolu_a", "get_weather"), ("toolu_b", "get_weather")]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert json.loads(calls[1]["arguments"]) == {"city": "Zürich", "units": "C"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    for chunk in chunks:
        for piece in chunk.choices[0].delta.tool_calls or []:
            assert piece.id is None or piece.function.arguments == "", "first piece: id, name, empty args"
            assert piece.id is not None or piece.function.arguments, "no empty argument pieces"


async def test_stream_error_event_mid_stream(client: Any, sdk: Any, fake: FakeAnthropic) -> None:
    fake.error_event_after = 2
    resp = await client.post("/v1/chat/completions", json=hello(stream=True))
    assert resp.status == 200
    payloads = sse_payloads(await resp.text())
    assert "[DONE]" not in payloads
    error = json.loads(payloads[-1])["error"]
    assert error["code"] == "upstream_unavailable"
    assert error["type"] == "service_unavailable"
    assert "Overloaded mid-stream" in error["message"]
    assert SECRET not in error["message"]

    with pytest.raises(openai.APIError) as caught:
        await collect(await sdk.chat.completions.create(**hello(), stream=True))
    assert "Overloaded" in caught.value.message


async def test_stream_cut_before_message_stop(client: Any, sdk: Any, fake: FakeAnthropic,
                                              observed: RecordingObserver) -> None:
    fake.cut_after = 2
    resp = await client.post("/v1/chat/completions", json=hello(stream=True))
    payloads = sse_payloads(await resp.text())
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_stream_cut"
    assert observed.finished[-1].error == "upstream_stream_cut"
    with pytest.raises(openai.APIError):
        await collect(await sdk.chat.completions.create(**hello(), stream=True))


# ============================================================ chunking


def random_pieces(seed: int, largest: int) -> Any:
    def split(data: bytes) -> Iterable[bytes]:
        rng, at = random.Random(seed), 0
        while at < len(data):
            size = rng.randint(1, largest)
            yield data[at:at + size]
            at += size
    return split


def events_cut_in_half(data: bytes) -> Iterable[bytes]:
    """Every write ends in the middle of an event and starts in the middle of the previous one."""
    ends = [i + 2 for i in range(len(data)) if data[i:i + 2] == b"\n\n"]
    cuts = sorted({(start + end) // 2 for start, end in zip([0] + ends, ends)} | {len(data)})
    return [data[a:b] for a, b in zip([0] + cuts, cuts) if b > a]


def byte_by_byte(data: bytes) -> Iterable[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


SPLITTERS = [
    pytest.param(lambda data: [data], id="whole-stream-in-one-write"),
    pytest.param(byte_by_byte, id="byte-by-byte"),
    pytest.param(events_cut_in_half, id="events-cut-across-writes"),
    *(pytest.param(random_pieces(seed, 97), id=f"random-pieces-{seed}") for seed in range(4)),
    pytest.param(random_pieces(11, 4000), id="random-large-pieces"),
]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("split", SPLITTERS)
async def test_stream_survives_any_chunking(sdk: Any, fake: FakeAnthropic, split: Any,
                                            newline: bytes) -> None:
    fake.split, fake.newline = split, newline
    fake.blocks = [text_block("Grüße aus Zürich — 日本語のテキスト ✓ " * 3),
                   tool_use_block("toolu_x", "get_weather", {"city": "Kraków", "note": "ł ś ż"})]
    fake.chunks, fake.stop_reason = 7, "tool_use"
    chunks, text, calls = await collect(await sdk.chat.completions.create(
        **hello(), tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}))
    assert text == fake.blocks[0]["text"]
    assert json.loads(calls[0]["arguments"]) == fake.blocks[1]["input"]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage.prompt_tokens == expected_usage(fake)["prompt_tokens"]


def big_text() -> str:
    """Well over 128 KiB of varied text."""
    rng = random.Random(7)
    words = ["alpha", "βeta", "gamma", "δelta", "εpsilon", "zeta", "ηta", "\"quoted\"", "back\\slash", "\n"]
    text = " ".join(rng.choice(words) for _ in range(40_000))
    assert len(text.encode()) > 160 * 1024
    return text


@pytest.mark.parametrize("split", [
    pytest.param(None, id="one-write-per-event"),
    pytest.param(random_pieces(3, 9000), id="random-pieces"),
])
async def test_event_over_128_kib_passes_intact(sdk: Any, fake: FakeAnthropic, split: Any) -> None:
    fake.reply, fake.chunks, fake.split = big_text(), 1, split
    stream = await sdk.chat.completions.create(**hello(), stream=True)
    _, text, _ = await collect(stream)
    assert text == fake.reply
    answer = await sdk.chat.completions.create(**hello())
    assert answer.choices[0].message.content == fake.reply


# ============================================================ errors


ERROR_ROWS = [
    # upstream status, Anthropic error type, status the caller sees, code the caller sees
    (400, "invalid_request_error", 400, None),
    (401, "authentication_error", 502, "upstream_auth_failed"),
    (403, "permission_error", 502, "upstream_auth_failed"),
    (404, "not_found_error", 404, None),
    (413, "request_too_large", 413, None),
    (429, "rate_limit_error", 429, "rate_limit_exceeded"),
    (500, "api_error", 502, "upstream_error"),
    (529, "overloaded_error", 503, "upstream_unavailable"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream_status,kind,status,code", ERROR_ROWS)
async def test_upstream_errors_are_mapped(client: Any, fake: FakeAnthropic, upstream_status: int,
                                          kind: str, status: int, code: str | None, stream: bool) -> None:
    fake.fail_status, fake.fail_type = upstream_status, kind
    resp = await client.post("/v1/chat/completions", json=hello(stream=stream))
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith("application/json")
    text = await resp.text()
    assert SECRET not in text
    error = json.loads(text)["error"]
    if code is not None:
        assert error["code"] == code
    if status < 500 and status != 429:
        assert error["message"] == fake.fail_message
        assert error["type"] == kind


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_rate_limit_keeps_retry_after(client: Any, fake: FakeAnthropic, stream: bool) -> None:
    fake.fail_status, fake.fail_type, fake.retry_after = 429, "rate_limit_error", "17"
    resp = await client.post("/v1/chat/completions", json=hello(stream=stream))
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "17"
    assert (await resp.json())["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_rate_limit_for_the_sdk(sdk: Any, fake: FakeAnthropic, stream: bool) -> None:
    fake.fail_status, fake.fail_type, fake.retry_after = 429, "rate_limit_error", "17"
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(**hello(), stream=stream)
    assert caught.value.response.headers["retry-after"] == "17"


async def test_overloaded_is_503_for_the_sdk(sdk: Any, fake: FakeAnthropic) -> None:
    fake.fail_status, fake.fail_type = 529, "overloaded_error"
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(**hello())
    assert caught.value.status_code == 503


async def test_unreachable_upstream(gateway: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await gateway(anthropic_config(f"http://127.0.0.1:{port}"))
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json=hello(stream=stream))
        assert resp.status == 502
        assert (await resp.json())["error"]["code"] == "upstream_unreachable"


async def test_timeout_before_the_answer(client: Any, fake: FakeAnthropic) -> None:
    fake.stall_before_headers = True
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json=hello(model="claude-quick", stream=stream))
        assert resp.status == 504
        assert (await resp.json())["error"]["code"] == "upstream_timeout"


async def test_timeout_between_stream_events(client: Any, fake: FakeAnthropic) -> None:
    fake.stall_after = 3
    resp = await client.post("/v1/chat/completions", json=hello(model="claude-quick", stream=True))
    assert resp.status == 200
    payloads = sse_payloads(await resp.text())
    assert json.loads(payloads[0])["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_timeout"


@pytest.mark.parametrize("raw,status,code", [
    (b"<html>oops</html>", 502, "upstream_bad_response"),
    (b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}', 503,
     "upstream_unavailable"),
])
async def test_bad_or_error_answer_with_200(client: Any, fake: FakeAnthropic, raw: bytes, status: int,
                                            code: str) -> None:
    fake.raw_answer = raw
    resp = await client.post("/v1/chat/completions", json=hello())
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code


# ============================================================ configuration


async def test_base_url_with_v1_and_extra_headers(gateway: Any, fake: FakeAnthropic) -> None:
    config = anthropic_config(fake.url + "/v1",  # type: ignore[attr-defined]
                              {"headers": {"anthropic-beta": "prompt-caching-2024-07-31"}})
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json=hello())
    assert resp.status == 200
    sent = fake.received[-1]
    assert sent.path == "/v1/messages"
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["x-api-key"] == SECRET


async def test_unconfigured_key_is_503(gateway: Any, fake: FakeAnthropic) -> None:
    config = anthropic_config(fake.url, {"api_key": None})  # type: ignore[attr-defined]
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json=hello())
    assert resp.status == 503
    assert fake.received == []


def test_rotated_key_is_the_one_sent() -> None:
    provider = parse_config(anthropic_config("http://127.0.0.1:9")).providers["anthropic"]
    adapter = AnthropicAdapter(provider, ApiConfig(), None)
    model = provider.models["claude"]
    rotated = UpstreamCall(model=model, body={}, request_id="r1", api_key="sk-ant-rotated-key")
    assert adapter.request_headers(rotated)["x-api-key"] == "sk-ant-rotated-key"
    plain = UpstreamCall(model=model, body={}, request_id="r2")
    assert adapter.request_headers(plain)["x-api-key"] == SECRET


@pytest.mark.parametrize("kind", [["x"], {"a": 1}, 5, None, "no_such_type"])
def test_an_error_document_of_any_shape_maps_to_an_upstream_error(kind: Any) -> None:
    from proxy.providers.anthropic import AnthropicAdapter
    config = parse_config(anthropic_config("http://127.0.0.1:9"))
    adapter = AnthropicAdapter(config.providers["anthropic"], config.api, None)
    doc = {"type": "error", "error": {"type": kind, "message": "odd"}}
    error = adapter.error_from(orjson.dumps(doc), doc)
    assert error.status in (400, 401, 403, 404, 413, 429, 500, 502, 503, 504)
