"""End to end: the real gateway process, the official ``openai`` SDK, fake upstreams.

Every test starts ``python -m proxy`` (through :class:`tests.process.GatewayProcess`)
on a config that points at fake upstreams served by ``aiohttp_server`` in the
test's own event loop, then talks to the gateway only as a user would: with
``openai.AsyncOpenAI`` over 127.0.0.1. Assertions are about what the caller
gets back, what each upstream receives in its own wire format, and what the
gateway writes in its request log line.

Upstreams:

* Anthropic (``type: anthropic``): :class:`tests.fake_anthropic.FakeAnthropic`.
* OpenRouter (``type: openrouter``): :class:`tests.fakes.FakeOpenAI` with
  OpenRouter's ``: OPENROUTER PROCESSING`` keep-alive comments.
* A keyless OpenAI-compatible server (``type: openai_compatible``):
  :class:`tests.fakes.FakeOpenAI`.

``FakeOpenAI`` cannot answer with tool calls, so the tool-call round trips on
the OpenAI-style upstreams use :class:`ToolCallingOpenAI`, defined here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from tests.fake_anthropic import FakeAnthropic, tool_use_block
from tests.fakes import FakeOpenAI, Received
from tests.process import GatewayProcess, event_is

CALLER_KEY = "sk-caller-e2e-6f1d2b9a4c7e"
ANTHROPIC_KEY = "sk-ant-e2e-upstream-83c1"
OPENROUTER_KEY = "sk-or-e2e-upstream-52aa"
SECRETS = (CALLER_KEY, ANTHROPIC_KEY, OPENROUTER_KEY)
AUTH = {"keys": [{"name": "e2e", "key": CALLER_KEY}]}
SDK_TIMEOUT = 15.0

KINDS = ("anthropic", "openrouter", "openai_compatible")
PROMPT = "What is the weather in Paris, and what time is it there?"


# ---------------------------------------------------------------------- fixtures


def gateway_config(providers: dict[str, Any], default: str, **sections: Any) -> dict[str, Any]:
    """A complete config: these providers, ``default`` (``provider/model``) as the default model."""
    provider, _, model = default.partition("/")
    return {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 10, "shutdown_timeout": 2},
        "providers": providers,
        "routing": {"default_provider": provider, "default_model": model},
        "auth": AUTH,
        **sections,
    }


async def start_gateway(gateway_process: Any, config: dict[str, Any]) -> tuple[GatewayProcess, openai.AsyncOpenAI]:
    gw = gateway_process(config)
    port = await gw.await_started()
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=CALLER_KEY,
                                max_retries=0, timeout=SDK_TIMEOUT)
    return gw, client


def server_url(server: Any, path: str = "/") -> str:
    return str(server.make_url(path)).rstrip("/")


def assert_clean_output(gw: GatewayProcess) -> None:
    """Every stdout line is JSON, no key appears anywhere, no traceback."""
    assert gw.bad_lines == [], f"stdout lines that are not JSON objects: {gw.bad_lines}"
    everything = gw.stdout + "\n" + gw.stderr
    for secret in SECRETS:
        assert secret not in everything, f"a key appears in the gateway's output:\n{gw.output()}"
    assert "Traceback" not in gw.stderr, gw.output()


def lower_headers(received: Received) -> dict[str, str]:
    return {k.lower(): v for k, v in received.headers.items()}


# ---------------------------------------------------------------------- a tool-calling OpenAI-style fake


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[i:i + size] for i in range(0, len(text), size)]


@dataclass
class ToolCallingOpenAI:
    """An OpenAI-compatible upstream that answers with tool calls, then with text.

    A conversation whose last message is a ``tool`` result gets ``final_reply``;
    any other gets the assistant message calling ``calls`` (``(id, name,
    arguments)``, arguments an object, sent as a JSON string). Streams follow
    OpenAI's format: the first piece of each call carries ``index``, ``id``,
    ``type`` and ``function.name``, later pieces append to
    ``function.arguments``; a usage chunk comes before ``[DONE]`` when asked.
    ``keepalive_comments`` adds OpenRouter's ``: OPENROUTER PROCESSING`` lines.
    """

    calls: list[tuple[str, str, dict[str, Any]]]
    final_reply: str
    keepalive_comments: bool = False
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52})
    received: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def tool_calls(self) -> list[dict[str, Any]]:
        return [{"id": id_, "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for id_, name, args in self.calls]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.received.append(Received(request.path, request.headers.copy(), body))
        answering = body["messages"][-1]["role"] == "tool"
        if body.get("stream"):
            return await self._stream(request, body, answering)
        if answering:
            message: dict[str, Any] = {"role": "assistant", "content": self.final_reply}
        else:
            message = {"role": "assistant", "content": None, "tool_calls": self.tool_calls()}
        doc = {
            "id": "chatcmpl-tools", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "stop" if answering else "tool_calls"}],
            "usage": self.usage,
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def _stream(self, request: web.Request, body: dict[str, Any], answering: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        base: dict[str, Any] = {"id": "chatcmpl-tools", "object": "chat.completion.chunk",
                                "created": 1, "model": body["model"]}
        if include_usage:
            base["usage"] = None

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            if self.keepalive_comments:
                await response.write(b": OPENROUTER PROCESSING\n\n")
            await response.write(_event({**base, "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish}]}))
            await asyncio.sleep(0)

        if answering:
            await send({"role": "assistant", "content": ""})
            for piece in _pieces(self.final_reply, 3):
                await send({"content": piece})
            await send({}, "stop")
        else:
            await send({"role": "assistant", "content": None})
            for index, (id_, name, args) in enumerate(self.calls):
                await send({"tool_calls": [{"index": index, "id": id_, "type": "function",
                                            "function": {"name": name, "arguments": ""}}]})
                for piece in _pieces(json.dumps(args), 3):
                    await send({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            await send({}, "tool_calls")
        if include_usage:
            await response.write(_event({**base, "choices": [], "usage": self.usage}))
        await response.write(b"data: [DONE]\n\n")
        return response


# ---------------------------------------------------------------------- the three upstreams


ANTHROPIC_USAGE = {"input_tokens": 21, "cache_creation_input_tokens": 5,
                   "cache_read_input_tokens": 100, "output_tokens": 9}
# What the caller must see for ANTHROPIC_USAGE: cache reads and writes count as prompt tokens.
ANTHROPIC_USAGE_AS_OPENAI = {"prompt_tokens": 126, "completion_tokens": 9, "total_tokens": 135,
                             "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5}}
OPENAI_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


@dataclass
class Upstream:
    """One fake upstream as the gateway is configured for it."""

    kind: str
    provider: str  # the provider's configured name
    model: str  # the name callers use
    upstream_model: str  # the id the upstream receives
    fake: Any
    config: dict[str, Any]
    usage: dict[str, Any]  # what the caller should see, in OpenAI's shape

    @property
    def received(self) -> list[Received]:
        return self.fake.received

    def gateway_config(self) -> dict[str, Any]:
        return gateway_config({self.provider: self.config}, f"{self.provider}/{self.model}")

    def check_request_headers(self, received: Received) -> None:
        """The upstream got our key in its own scheme, never the caller's."""
        headers = lower_headers(received)
        assert CALLER_KEY not in repr(headers) and CALLER_KEY not in json.dumps(received.body)
        if self.kind == "anthropic":
            assert received.path == "/v1/messages"
            assert headers.get("x-api-key") == ANTHROPIC_KEY
            assert headers.get("anthropic-version") == "2023-06-01"
            assert "authorization" not in headers
        else:
            assert received.path == "/v1/chat/completions"
            assert "x-api-key" not in headers
            if self.kind == "openrouter":
                assert headers.get("authorization") == f"Bearer {OPENROUTER_KEY}"
                assert headers.get("http-referer") == "https://e2e.example"
                assert headers.get("x-title") == "llm-gateway e2e"
            else:
                assert "authorization" not in headers, "a keyless upstream got an Authorization header"
        assert received.body["model"] == self.upstream_model


async def start_upstream(kind: str, aiohttp_server: Any, fake: Any = None,
                         reply: str = "") -> Upstream:
    """Serve ``fake`` (or the default fake for ``kind``) and describe it for the gateway."""
    if kind == "anthropic":
        fake = fake or FakeAnthropic(reply=reply, usage=dict(ANTHROPIC_USAGE), chunks=4)
        server = await aiohttp_server(fake.app())
        config = {"type": "anthropic", "api_key": ANTHROPIC_KEY, "base_url": server_url(server),
                  "models": {"claude-e2e": {"upstream_model": "claude-sonnet-4-5-20250929",
                                            "max_tokens": 1024}}}
        return Upstream(kind, "claude", "claude-e2e", "claude-sonnet-4-5-20250929", fake, config,
                        ANTHROPIC_USAGE_AS_OPENAI)
    if kind == "openrouter":
        fake = fake or FakeOpenAI(reply=reply, chunks=4, keepalive_comments=True)
        server = await aiohttp_server(fake.app())
        config = {"type": "openrouter", "api_key": OPENROUTER_KEY,
                  "base_url": server_url(server, "/v1"),
                  "http_referer": "https://e2e.example", "x_title": "llm-gateway e2e",
                  "models": {"anthropic/claude-3.5-sonnet": {}}}
        return Upstream(kind, "openrouter", "anthropic/claude-3.5-sonnet", "anthropic/claude-3.5-sonnet",
                        fake, config, OPENAI_USAGE)
    assert kind == "openai_compatible"
    fake = fake or FakeOpenAI(reply=reply, chunks=4)
    server = await aiohttp_server(fake.app())
    config = {"type": "openai_compatible", "base_url": server_url(server, "/v1"),
              "models": {"llama-e2e": {"upstream_model": "meta-llama/Llama-3.1-8B-Instruct"}}}
    return Upstream(kind, "local", "llama-e2e", "meta-llama/Llama-3.1-8B-Instruct", fake, config,
                    OPENAI_USAGE)


def usage_dict(usage: Any) -> dict[str, Any]:
    """The usage the upstream reported, without the gateway's own ``cost`` (checked to be there)."""
    doc = usage.model_dump(exclude_none=True)
    assert "cost" in doc or (usage.model_extra or {}).get("cost", 0) is None
    doc.pop("cost", None)
    return doc


# ---------------------------------------------------------------------- 1a. plain and streamed chat


@pytest.mark.parametrize("kind", KINDS)
async def test_plain_chat(kind: str, gateway_process: Any, aiohttp_server: Any) -> None:
    reply = f"Plain answer from the {kind} upstream."
    up = await start_upstream(kind, aiohttp_server, reply=reply)
    gw, client = await start_gateway(gateway_process, up.gateway_config())
    async with client:
        answer = await client.chat.completions.create(
            model=up.model, messages=[{"role": "user", "content": "Say hello"}],
            extra_headers={"X-Request-Id": f"plain-{kind}"})
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == reply
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"
    assert usage_dict(answer.usage) == up.usage
    assert answer.model == up.upstream_model  # the model the upstream reports
    assert (answer.model_extra or {}).get("provider") == up.provider

    assert len(up.received) == 1
    up.check_request_headers(up.received[0])
    sent = up.received[0].body
    assert not sent.get("stream")
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    if kind == "anthropic":
        assert sent["max_tokens"] == 1024  # the model's configured limit: Anthropic requires one

    line = await gw.await_for(event_is("request", request_id=f"plain-{kind}"))
    assert line["status"] == 200 and line["provider"] == up.provider and line["model"] == up.model
    assert (line["prompt_tokens"], line["completion_tokens"]) == (
        up.usage["prompt_tokens"], up.usage["completion_tokens"])
    assert_clean_output(gw)


@pytest.mark.parametrize("kind", KINDS)
async def test_streaming_chat(kind: str, gateway_process: Any, aiohttp_server: Any) -> None:
    reply = f"A streamed answer from the {kind} upstream, in several pieces."
    up = await start_upstream(kind, aiohttp_server, reply=reply)
    gw, client = await start_gateway(gateway_process, up.gateway_config())
    messages = [{"role": "user", "content": "Tell me something"}]
    async with client:
        # with the final usage chunk
        stream = await client.chat.completions.create(
            model=up.model, messages=messages, stream=True, stream_options={"include_usage": True},
            extra_headers={"X-Request-Id": f"stream-{kind}"})
        chunks = [chunk async for chunk in stream]
        # without it
        stream = await client.chat.completions.create(model=up.model, messages=messages, stream=True)
        bare = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "not streamed"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all((c.model_extra or {}).get("provider") == up.provider for c in chunks)
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None, final
    assert usage_dict(final.usage) == up.usage
    assert all(c.usage is None for c in chunks[:-1])

    assert "".join(c.choices[0].delta.content or "" for c in bare if c.choices) == reply
    assert all(c.usage is None and c.choices for c in bare), "a usage chunk nobody asked for"

    assert len(up.received) == 2
    for received in up.received:
        up.check_request_headers(received)
        assert received.body["stream"] is True

    line = await gw.await_for(event_is("request", request_id=f"stream-{kind}"))
    assert line["status"] == 200 and line["stream"] is True and "error" not in line
    assert (line["prompt_tokens"], line["completion_tokens"]) == (
        up.usage["prompt_tokens"], up.usage["completion_tokens"])
    assert_clean_output(gw)


# ---------------------------------------------------------------------- 1b. tool-call round trips


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a time zone.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                       "required": ["tz"]}}},
]
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
TIME_ARGS = {"tz": "Europe/Paris"}
TOOL_RESULTS = {"get_weather": "18 degrees, light rain", "get_time": "14:05"}
FINAL_REPLY = "It is 18 degrees with light rain in Paris, and the local time is 14:05."


def tool_fake(kind: str) -> Any:
    """An upstream that first calls both tools, then answers FINAL_REPLY."""
    if kind == "anthropic":
        return FakeAnthropic(
            blocks=[{"type": "text", "text": "Let me look that up."},
                    tool_use_block("toolu_01Weather", "get_weather", WEATHER_ARGS),
                    tool_use_block("toolu_02Time", "get_time", TIME_ARGS)],
            stop_reason="tool_use", usage=dict(ANTHROPIC_USAGE), chunks=3)
    return ToolCallingOpenAI(calls=[("call_weather_1", "get_weather", WEATHER_ARGS),
                                    ("call_time_2", "get_time", TIME_ARGS)],
                             final_reply=FINAL_REPLY, keepalive_comments=kind == "openrouter")


@pytest.mark.parametrize("mode", ["plain", "stream"])
@pytest.mark.parametrize("kind", KINDS)
async def test_tool_call_round_trip(kind: str, mode: str, gateway_process: Any, aiohttp_server: Any) -> None:
    up = await start_upstream(kind, aiohttp_server, fake=tool_fake(kind))
    gw, client = await start_gateway(gateway_process, up.gateway_config())
    expected_ids = (["toolu_01Weather", "toolu_02Time"] if kind == "anthropic"
                    else ["call_weather_1", "call_time_2"])
    messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]

    async with client:
        # turn 1: the model asks for both tools
        if mode == "plain":
            answer = await client.chat.completions.create(model=up.model, messages=messages, tools=TOOLS)
            argument_pieces = None
        else:
            argument_pieces = 0
            async with client.chat.completions.stream(model=up.model, messages=messages,
                                                      tools=TOOLS) as stream:
                async for event in stream:
                    if event.type == "tool_calls.function.arguments.delta":
                        argument_pieces += 1
                answer = await stream.get_final_completion()
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert [c.id for c in calls] == expected_ids
        assert [c.type for c in calls] == ["function", "function"]
        assert [c.function.name for c in calls] == ["get_weather", "get_time"]
        assert [json.loads(c.function.arguments) for c in calls] == [WEATHER_ARGS, TIME_ARGS]
        if argument_pieces is not None:
            assert argument_pieces > 2, "tool arguments were not streamed in pieces"
        if kind == "anthropic":
            assert choice.message.content == "Let me look that up."

        # turn 2: the caller runs the tools and sends the results back
        messages.append({
            "role": "assistant", "content": choice.message.content,
            "tool_calls": [{"id": c.id, "type": "function",
                            "function": {"name": c.function.name, "arguments": c.function.arguments}}
                           for c in calls],
        })
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": TOOL_RESULTS[call.function.name]})
        if kind == "anthropic":
            up.fake.blocks, up.fake.stop_reason, up.fake.reply = None, "end_turn", FINAL_REPLY
        if mode == "plain":
            final = await client.chat.completions.create(model=up.model, messages=messages, tools=TOOLS)
            final_text = final.choices[0].message.content
            finish = final.choices[0].finish_reason
        else:
            stream = await client.chat.completions.create(model=up.model, messages=messages,
                                                          tools=TOOLS, stream=True)
            chunks = [chunk async for chunk in stream]
            final_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = next(c.choices[0].finish_reason for c in chunks
                          if c.choices and c.choices[0].finish_reason)
        assert final_text == FINAL_REPLY
        assert finish == "stop"

    # what the upstream received, in its own format
    assert len(up.received) == 2
    for received in up.received:
        up.check_request_headers(received)
        assert bool(received.body.get("stream")) == (mode == "stream")
    first, second = up.received[0].body, up.received[1].body
    if kind == "anthropic":
        assert first["tools"] == [
            {"name": t["function"]["name"], "description": t["function"]["description"],
             "input_schema": t["function"]["parameters"]} for t in TOOLS]
        assert second["messages"] == [
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look that up."},
                {"type": "tool_use", "id": "toolu_01Weather", "name": "get_weather", "input": WEATHER_ARGS},
                {"type": "tool_use", "id": "toolu_02Time", "name": "get_time", "input": TIME_ARGS},
            ]},
            {"role": "user", "content": [  # consecutive results share one user message
                {"type": "tool_result", "tool_use_id": "toolu_01Weather",
                 "content": TOOL_RESULTS["get_weather"]},
                {"type": "tool_result", "tool_use_id": "toolu_02Time",
                 "content": TOOL_RESULTS["get_time"]},
            ]},
        ]
    else:
        assert first["tools"] == TOOLS  # unchanged on an OpenAI-style upstream
        assert second["tools"] == TOOLS
        sent = second["messages"]
        assert sent[0] == {"role": "user", "content": PROMPT}
        assert sent[1]["role"] == "assistant"
        assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in sent[1]["tool_calls"]] == [("call_weather_1", "get_weather", WEATHER_ARGS),
                                                    ("call_time_2", "get_time", TIME_ARGS)]
        assert sent[2:] == [
            {"role": "tool", "tool_call_id": "call_weather_1", "content": TOOL_RESULTS["get_weather"]},
            {"role": "tool", "tool_call_id": "call_time_2", "content": TOOL_RESULTS["get_time"]},
        ]

    await gw.await_for("request", count=2)
    assert [line["status"] for line in gw.requests()] == [200, 200]
    assert all("error" not in line for line in gw.requests()), gw.requests()
    assert_clean_output(gw)


# ---------------------------------------------------------------------- 2. caller gone


CLOSE_BOUND = 0.1  # seconds from the caller's close to the upstream seeing its request closed
CLOSE_SLACK = 0.05  # CI noise: two processes and three event loops on a shared machine
QUIET_WINDOW = 1.0  # seconds after the close during which no retry or fallback may start


@dataclass
class SlowStream:
    """A slow OpenAI-style stream that notes when its request is closed under it.

    The test server runs with ``handler_cancellation``, so the gateway closing
    the connection cancels this handler at once; ``closed_at`` gets the
    ``time.monotonic()`` of that moment. ``headers_delay`` holds the answer
    back before the first byte.
    """

    chunk_delay: float = 0.2
    chunks: int = 50
    headers_delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    closed_at: list[float] = field(default_factory=list)
    finished: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.received.append(Received(request.path, request.headers.copy(), body))
        base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1,
                "model": body["model"]}
        try:
            if self.headers_delay:
                await asyncio.sleep(self.headers_delay)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for i in range(self.chunks):
                await response.write(_event({**base, "choices": [
                    {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}))
                await asyncio.sleep(self.chunk_delay)
            await response.write(_event({**base, "choices": [
                {"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            await response.write(b"data: [DONE]\n\n")
            self.finished += 1
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            self.closed_at.append(time.monotonic())
            raise


async def eventually(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("when", ["mid_stream", "before_first_byte"])
async def test_caller_gone_closes_upstream_and_never_retries(
        when: str, gateway_process: Any, aiohttp_server: Any) -> None:
    slow = SlowStream(headers_delay=5.0 if when == "before_first_byte" else 0.0)
    backup = FakeOpenAI(reply="the fallback must not be asked")
    slow_server = await aiohttp_server(slow.app())
    backup_server = await aiohttp_server(backup.app())
    config = gateway_config(
        {"primary": {"type": "openai_compatible", "base_url": server_url(slow_server, "/v1"),
                     "models": {"slow-model": {}}},
         "backup": {"type": "openai_compatible", "base_url": server_url(backup_server, "/v1"),
                    "models": {"backup-model": {}}}},
        "primary/slow-model",
        fallback={"enabled": True, "max_retries": 2, "retry_delay": 0.05,
                  "fallback_map": {"primary/slow-model": ["backup/backup-model"]}},
    )
    gw, client = await start_gateway(gateway_process, config)
    request_id = f"caller-gone-{when}"
    async with client:
        if when == "mid_stream":
            stream = await client.chat.completions.create(
                model="slow-model", messages=[{"role": "user", "content": "Write a long essay"}],
                stream=True, extra_headers={"X-Request-Id": request_id})
            first = await stream.__anext__()
            assert first.choices[0].delta.content == "tok0 "
            closed = time.monotonic()
            await stream.close()  # the caller hangs up mid-stream
        else:
            task = asyncio.create_task(client.chat.completions.create(
                model="slow-model", messages=[{"role": "user", "content": "Write a long essay"}],
                stream=True, extra_headers={"X-Request-Id": request_id}))
            await eventually(lambda: len(slow.received) == 1, 5.0, "the upstream got the request")
            closed = time.monotonic()
            task.cancel()  # the caller gives up while the gateway waits for the upstream
            with contextlib.suppress(asyncio.CancelledError):
                await task

        await eventually(lambda: slow.closed_at, 2.0, "the upstream saw its request closed")
        delay = slow.closed_at[0] - closed
        assert delay <= CLOSE_BOUND + CLOSE_SLACK, (
            f"the upstream request was closed {delay * 1000:.0f} ms after the caller left")

        # No retry and no fallback may start after the caller has gone.
        line = await gw.await_for(event_is("request", request_id=request_id), timeout=2)
        await asyncio.sleep(max(0.0, closed + QUIET_WINDOW - time.monotonic()))
    assert len(slow.received) == 1, f"the primary was asked again: {len(slow.received)} requests"
    assert backup.received == [], "the fallback was asked after the caller had gone"
    assert slow.finished == 0

    assert line["status"] == 499, line
    assert line.get("error") == "client_disconnected", line
    # The one upstream request the caller caused must be in the log line. Before the first
    # byte that attempt is still in flight when the caller leaves; it must be listed too
    # (with an outcome such as "cancelled"), not dropped.
    attempts = line.get("attempts") or []
    assert len(attempts) == 1, (
        f"expected exactly one attempt in the log line (the upstream did get one request), "
        f"got {attempts}: {line}")
    assert attempts[0]["provider"] == "primary" and attempts[0]["model"] == "slow-model"
    assert len(gw.requests()) == 1
    assert_clean_output(gw)


# ---------------------------------------------------------------------- 3. fallback seen from the SDK


@pytest.mark.parametrize("mode", ["plain", "stream"])
async def test_fallback_headers_seen_from_the_sdk(mode: str, gateway_process: Any, aiohttp_server: Any) -> None:
    primary = FakeOpenAI(fail_status=503, fail_message="primary is overloaded")
    backup = FakeOpenAI(reply="Answered by the fallback.", chunks=3)
    primary_server = await aiohttp_server(primary.app())
    backup_server = await aiohttp_server(backup.app())
    config = gateway_config(
        {"primary": {"type": "openai_compatible", "base_url": server_url(primary_server, "/v1"),
                     "models": {"main-model": {"upstream_model": "main-upstream-id"}}},
         "backup": {"type": "openai_compatible", "base_url": server_url(backup_server, "/v1"),
                    "models": {"backup-model": {"upstream_model": "backup-upstream-id"}}}},
        "primary/main-model",
        fallback={"enabled": True, "max_retries": 1, "retry_delay": 0.05,
                  "fallback_map": {"primary/main-model": ["backup/backup-model"]}},
    )
    gw, client = await start_gateway(gateway_process, config)
    request_id = f"fallback-{mode}"
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="main-model", messages=[{"role": "user", "content": "Hello"}],
            stream=mode == "stream", extra_headers={"X-Request-Id": request_id})
        assert raw.status_code == 200
        headers = raw.headers
        if mode == "plain":
            completion = raw.parse()
            text = completion.choices[0].message.content
            provider_field = (completion.model_extra or {}).get("provider")
        else:
            chunks = [chunk async for chunk in raw.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            provider_field = (chunks[0].model_extra or {}).get("provider")
    assert text == "Answered by the fallback."
    assert provider_field == "backup"

    assert headers.get("x-gateway-provider") == "backup"
    assert headers.get("x-gateway-model") == "backup-model"
    assert headers.get("x-gateway-attempts") == "3"  # primary, its one retry, then the fallback
    assert headers.get("x-gateway-fallback") == "primary/main-model"
    assert headers.get("x-request-id") == request_id

    assert len(primary.received) == 2 and len(backup.received) == 1
    assert backup.received[0].body["model"] == "backup-upstream-id"
    assert primary.received[0].body["model"] == "main-upstream-id"

    line = await gw.await_for(event_is("request", request_id=request_id))
    assert line["status"] == 200 and "error" not in line, line
    assert (line["provider"], line["model"]) == ("backup", "backup-model")
    assert line["fallback_from"] == "primary/main-model"
    assert [(a["provider"], a["status"]) for a in line["attempts"]] == [
        ("primary", 503), ("primary", 503), ("backup", 200)]
    assert_clean_output(gw)
