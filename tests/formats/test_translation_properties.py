"""Property-based checks: no chat body, however odd, crashes a provider's translation.

Hypothesis generates chat bodies the gateway's schema accepts (roles, content
as a string or as parts, tool calls, tools, ``tool_choice``, ``stop``,
numbers...) and near-valid ones: a valid body with one to three nested values
replaced by a JSON value of any type, or deleted. Every value is one that
``orjson`` can parse from a request (integers within 64 bits, finite floats).

* The pure Anthropic translation either returns a body ``orjson`` can send or
  refuses with a 400 whose ``param`` names the field; nothing else escapes.
* Odd Anthropic answers and stream events never make the answer translation
  raise.
* Through the real gateway, in process, for every provider type: never a 5xx,
  and every error is OpenAI-shaped ``{"error": {"message", "type", "param",
  "code"}}``.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from proxy.config import ModelConfig
from proxy.errors import GatewayError
from proxy.formats.anthropic.request import DEFAULT_MAX_TOKENS, to_anthropic_request
from proxy.formats.anthropic.response import to_openai_response, to_openai_usage
from proxy.formats.anthropic.stream import StreamTranslator
from tests.conftest import make_config, sse_data
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeOpenAI

MODEL = ModelConfig(name="claude", provider="anthropic", upstream_model="claude-sonnet-4-5",
                    max_tokens=100_000)
# No example database in the work tree: a failure prints its example instead.
PURE = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
THROUGH_GATEWAY = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # one gateway serves every example

# ================================================================ strategies

words = st.text(max_size=12)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | words)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(words, inner, max_size=3), max_leaves=6)


def arguments_json() -> st.SearchStrategy[str]:
    """A tool call's ``arguments``: a JSON object as a string."""
    return st.dictionaries(names, json_scalars, max_size=3).map(lambda d: orjson.dumps(d).decode())


text_parts = st.builds(lambda text: {"type": "text", "text": text}, words)
image_parts = st.builds(
    lambda url, detail: {"type": "image_url", "image_url": {"url": url, **detail}},
    st.sampled_from(["https://example.com/cat.png", "http://example.com/a.jpg",
                     "data:image/png;base64,iVBORw0KGgo=", "data:image/jpeg;base64,/9j/4AAQ"]),
    st.sampled_from([{}, {"detail": "low"}, {"detail": "auto"}]))
other_parts = st.sampled_from([
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "refusal", "refusal": "I cannot."},
    {"type": "file", "file": {"file_id": "file-1"}},
])
tool_calls = st.lists(st.builds(
    lambda id, name, arguments: {"id": id, "type": "function",
                                 "function": {"name": name, "arguments": arguments}},
    names.map(lambda n: "call_" + n), names, arguments_json()), min_size=1, max_size=2)


def contents(parts: st.SearchStrategy[Any], *, nullable: bool = False) -> st.SearchStrategy[Any]:
    """A message's content: a string, or a list of ``parts`` (or null when allowed)."""
    options = [words, st.lists(parts, min_size=1, max_size=3)]
    return st.one_of(*options, *([st.none()] if nullable else []))


def message(role: str, content: st.SearchStrategy[Any], **fields: st.SearchStrategy[Any]
            ) -> st.SearchStrategy[dict[str, Any]]:
    """A message of ``role``, each extra field present or absent."""
    optional = {"name": names, **fields}
    return st.fixed_dictionaries({"role": st.just(role), "content": content}, optional=optional)


def message_lists(supported: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Conversations; with ``supported``, only what the Anthropic translation honours."""
    user_parts = text_parts | image_parts if supported else text_parts | image_parts | other_parts
    kinds = [
        message("system", contents(text_parts)),
        message("developer", contents(text_parts)),
        message("user", contents(user_parts)),
        message("assistant", contents(text_parts, nullable=True), tool_calls=tool_calls),
        st.fixed_dictionaries({"role": st.just("tool"), "content": contents(text_parts),
                               "tool_call_id": names.map(lambda n: "call_" + n)}),
    ]
    if not supported:
        kinds.append(message("function", words))
    return st.lists(st.one_of(*kinds), min_size=1, max_size=5)


tools = st.lists(st.builds(
    lambda name, extra: {"type": "function", "function": {"name": name, **extra}},
    names, st.fixed_dictionaries({}, optional={
        "description": words,
        "parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}}),
        "strict": st.booleans(),
    })), min_size=1, max_size=3)
tool_choices = st.one_of(
    st.sampled_from(["none", "auto", "required"]),
    names.map(lambda n: {"type": "function", "function": {"name": n}}),
)
stops = st.one_of(st.none(), words, st.lists(words, max_size=4))
SUPPORTED_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "max_tokens": st.integers(min_value=1, max_value=1000),
    "max_completion_tokens": st.integers(min_value=1, max_value=1000),
    "temperature": st.floats(min_value=0, max_value=1),
    "top_p": st.floats(min_value=0, max_value=1),
    "n": st.just(1),
    "stop": stops,
    "presence_penalty": st.just(0),
    "seed": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "user": words,
    "tools": tools,
    "tool_choice": st.sampled_from(["none", "auto"]),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.just({"type": "text"}),
    "logprobs": st.just(False),
}
OTHER_FIELDS: dict[str, st.SearchStrategy[Any]] = {  # valid, but some beyond what Anthropic honours
    **SUPPORTED_FIELDS,
    "max_tokens": st.integers(min_value=1, max_value=5000),
    "temperature": st.floats(min_value=0, max_value=2),
    "n": st.integers(min_value=1, max_value=3),
    "presence_penalty": st.floats(min_value=-2, max_value=2),
    "frequency_penalty": st.sampled_from([0, 0.0, 0.5]),
    "tool_choice": tool_choices,
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "logprobs": st.booleans(),
}
supported_bodies = st.fixed_dictionaries({"messages": message_lists(True)},
                                         optional=SUPPORTED_FIELDS)
valid_bodies = supported_bodies | st.fixed_dictionaries({"messages": message_lists(False)},
                                                        optional=OTHER_FIELDS)


def places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value nested in ``doc`` (keys and list indexes), ``doc`` itself excluded."""
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    found = []
    for key, value in children:
        found.append(path + (key,))
        found.extend(places(value, path + (key,)))
    return found


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one to three nested values replaced by any JSON value, or deleted."""
    body = copy.deepcopy(draw(valid_bodies))  # a mutation of supported ones half the time
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(places(body)))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
        if not body.get("messages"):
            body["messages"] = [{"role": "user", "content": "hi"}]
    return body


chat_bodies = valid_bodies | near_valid_bodies()

# =========================================================== pure request side


def translate_or_refuse(body: dict[str, Any]) -> dict[str, Any] | None:
    """The translation of ``body``, or ``None`` if refused; fails on anything but a proper 400."""
    before = copy.deepcopy(body)
    try:
        out = to_anthropic_request(body, MODEL, stream=bool(body.get("stream")))
    except GatewayError as exc:
        assert exc.status == 400, exc.message
        assert exc.param, f"a refusal must name the field: {exc.message}"
        assert exc.message and exc.code, exc.param
        return None
    finally:
        assert body == before, "the caller's body must not be modified"
    orjson.dumps(out)
    return out


@PURE
@given(chat_bodies)
def test_translation_returns_a_body_or_a_400_naming_the_field(body: dict[str, Any]) -> None:
    translate_or_refuse(body)


def expected_roles(messages: list[dict[str, Any]]) -> list[str]:
    """Anthropic's roles for a conversation: system hoisted, tool results merged into user turns."""
    roles: list[str] = []
    for message in messages:
        role = message["role"]
        if role == "tool" and roles[-1:] == ["tool"]:
            continue
        if role not in ("system", "developer"):
            roles.append(role)
    return ["user" if role == "tool" else role for role in roles]


@PURE
@given(supported_bodies)
def test_supported_bodies_always_translate(body: dict[str, Any]) -> None:
    out = to_anthropic_request(body, MODEL, stream=bool(body.get("stream")))
    orjson.dumps(out)
    assert out["model"] == MODEL.upstream_model
    assert [m["role"] for m in out["messages"]] == expected_roles(body["messages"])
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    assert out["max_tokens"] == (asked or DEFAULT_MAX_TOKENS), "no request limit: the 4096 default"
    assert out.get("stream", False) is bool(body.get("stream"))
    assert set(out) <= {"model", "max_tokens", "messages", "system", "temperature", "top_p",
                        "stop_sequences", "tools", "tool_choice", "metadata", "stream"}


def odd_field(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    odd = copy.deepcopy(body)
    parent = odd
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return odd


ODD_SHAPES = st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False),
                       st.lists(st.integers(), max_size=2))  # wrong for both strings and objects


@PURE
@given(ODD_SHAPES, st.sampled_from([
    (("messages", 0, "content", 1, "text"), "messages[0].content[1].text"),
    (("messages", 2, "tool_calls", 0, "function"), "messages[2].tool_calls[0].function"),
    (("messages", 2, "tool_calls", 0, "function", "name"), "messages[2].tool_calls[0].function.name"),
    (("messages", 2, "tool_calls", 0), "messages[2].tool_calls[0]"),
    (("messages", 3, "tool_call_id"), "messages[3].tool_call_id"),
    (("messages", 1, "content", 0), "messages[1].content[0]"),
    (("tools", 0, "function"), "tools[0].function"),
    (("tools", 0, "function", "name"), "tools[0].function.name"),
    (("tool_choice", "function"), "tool_choice.function"),
    (("stop", 1), "stop[1]"),
]))
def test_a_wrong_type_is_refused_naming_that_field(value: Any, place: tuple[tuple[Any, ...], str]
                                                   ) -> None:
    path, param = place
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "stop": ["END", "STOP"],
    }
    assert to_anthropic_request(body, MODEL)["tool_choice"] == {"type": "tool", "name": "f"}
    with pytest.raises(GatewayError) as caught:
        to_anthropic_request(odd_field(body, path, value), MODEL)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert caught.value.code == "invalid_request"
    assert param in caught.value.message

# =========================================================== pure answer side


anthropic_blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": json_scalars}),
    st.fixed_dictionaries({"type": st.just("tool_use")},
                          optional={"id": json_scalars, "name": json_scalars, "input": json_values}),
    st.fixed_dictionaries({"type": json_scalars}, optional={"thinking": words}),
    json_values,
)
usages = json_values | st.dictionaries(
    st.sampled_from(["input_tokens", "output_tokens", "cache_read_input_tokens",
                     "cache_creation_input_tokens"]), json_scalars)
answers = st.fixed_dictionaries({"content": st.lists(anthropic_blocks, max_size=4)}, optional={
    "id": json_scalars, "model": json_scalars, "stop_reason": json_values, "usage": usages,
    "type": st.just("message"),
})


def assert_usage_shape(usage: dict[str, Any]) -> None:
    counts = [usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"],
              usage["prompt_tokens_details"]["cached_tokens"]]
    assert all(type(count) is int and count >= 0 for count in counts), usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@PURE
@given(answers)
def test_odd_answers_still_translate(doc: dict[str, Any]) -> None:
    answer = to_openai_response(doc, created=1)
    orjson.dumps(answer)
    message = answer["choices"][0]["message"]
    assert message["content"] is None or isinstance(message["content"], str)
    for call in message.get("tool_calls", []):
        assert isinstance(orjson.loads(call["function"]["arguments"]), dict)
    assert answer["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls", "content_filter")
    assert_usage_shape(answer["usage"])


@PURE
@given(json_values)
def test_any_usage_gives_whole_counts(usage: Any) -> None:
    assert_usage_shape(to_openai_usage(usage))


stream_events = st.one_of(
    st.fixed_dictionaries({"type": st.just("message_start"), "message": json_values | answers}),
    st.fixed_dictionaries({"type": st.just("content_block_start"), "index": json_scalars,
                           "content_block": anthropic_blocks}),
    st.fixed_dictionaries({"type": st.just("content_block_delta"), "index": json_scalars,
                           "delta": json_values | st.fixed_dictionaries({
                               "type": st.sampled_from(["text_delta", "input_json_delta"]),
                               "text": json_scalars, "partial_json": json_scalars})}),
    st.fixed_dictionaries({"type": st.just("message_delta"), "delta": json_values,
                           "usage": usages}),
    st.fixed_dictionaries({"type": json_values}),
    json_values,
)


@PURE
@given(st.lists(stream_events, max_size=8), st.booleans())
def test_odd_stream_events_still_translate(events: list[Any], include_usage: bool) -> None:
    translator = StreamTranslator(include_usage=include_usage, created=1)
    chunks = [chunk for event in events + [{"type": "message_stop"}]
              for chunk in translator.translate(event)]
    orjson.dumps(chunks)
    assert translator.finished
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert all(isinstance(d.get("content", ""), str) for d in deltas)
    for delta in deltas:
        for piece in delta.get("tool_calls", []):
            assert type(piece["index"]) is int and isinstance(piece["function"]["arguments"], str)
    assert_usage_shape(translator.openai_usage())

# ================================================================ the gateway


PROVIDER_MODELS = {  # provider type -> the model name that routes to it
    "anthropic": "claude-prop",
    "openai": "gpt-prop",
    "openrouter": "router-prop",
    "azure": "azure-prop",
    "openai_compatible": "local-prop",
    "mock": "mock-gpt",
}


@pytest.fixture
async def every_provider(gateway: Any, aiohttp_server: Any) -> Any:
    """The gateway with one model on each provider type, fakes behind the HTTP ones."""
    anthropic = await aiohttp_server(FakeAnthropic().app())
    openai_like = await aiohttp_server(FakeOpenAI().app())
    azure = await aiohttp_server(FakeOpenAI().azure_app())
    v1 = str(openai_like.make_url("/v1"))
    config = make_config()
    config["providers"].update({
        "anthropic": {"type": "anthropic", "api_key": "sk-ant", "base_url": str(
            anthropic.make_url("")).rstrip("/"), "models": {"claude-prop": {"max_tokens": 100_000}}},
        "openai": {"type": "openai", "api_key": "sk-openai", "base_url": v1,
                   "models": {"gpt-prop": {"max_tokens": 100_000}}},
        "openrouter": {"type": "openrouter", "api_key": "sk-or", "base_url": v1,
                       "models": {"router-prop": {}}},
        "azure": {"type": "azure", "api_key": "az", "api_version": "2024-10-21",
                  "base_url": str(azure.make_url("")).rstrip("/"), "models": {"azure-prop": {}}},
        "openai_compatible": {"type": "openai_compatible", "base_url": v1,
                              "models": {"local-prop": {}}},
    })
    return await gateway(config)


def assert_openai_error(doc: Any) -> None:
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    error = doc["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)


async def post_and_check(client: Any, body: dict[str, Any]) -> None:
    resp = await client.post("/v1/chat/completions", data=orjson.dumps(body),
                             headers={"Content-Type": "application/json"})
    text = await resp.text()
    event(f"HTTP {resp.status}")
    assert resp.status < 500, f"{resp.status} for {body!r}: {text}"
    if resp.status >= 400:
        assert_openai_error(orjson.loads(text))
    elif resp.headers["Content-Type"].startswith("text/event-stream"):
        payloads = sse_data(text)
        assert payloads[-1] == "[DONE]", f"stream did not finish for {body!r}: {text[-500:]}"
        for payload in payloads[:-1]:
            assert "error" not in orjson.loads(payload), f"mid-stream error for {body!r}: {payload}"
    else:
        assert orjson.loads(text)["object"] == "chat.completion"


def for_provider(provider: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda body: {**body, "model": PROVIDER_MODELS[provider]}


@pytest.mark.parametrize("provider", list(PROVIDER_MODELS))
@THROUGH_GATEWAY
@given(data=st.data())
async def test_gateway_never_answers_5xx(every_provider: Any, provider: str, data: Any) -> None:
    body = data.draw(chat_bodies.map(for_provider(provider)), label="body")
    await post_and_check(every_provider, body)
