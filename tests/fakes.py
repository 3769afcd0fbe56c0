"""Fake upstreams that speak the real wire formats, run as aiohttp test servers.

Modelled on aiohttp's own ``examples/fake_server.py``: a small ``web.Application``
per upstream whose behaviour a test scripts through attributes, and which
records every request it receives.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Received:
    """One request the fake upstream saw."""

    path: str
    headers: CIMultiDict[str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """An OpenAI-compatible upstream.

    ``script`` scripts the next requests, one entry each, before normal service
    resumes: an int answers that status with an error body, ``"hang"`` waits
    far longer than any test timeout before the headers, ``"malformed"``
    answers 200 with a body that is not JSON, ``"cut"`` cuts a stream after
    one chunk, ``"stall"`` stalls a stream after one chunk, ``"drip"`` sends
    one chunk and then one byte every ``drip_interval`` seconds without ever
    completing another event, and a list of bytes streams exactly those
    ``data:`` payloads (malformed ones included).

    ``reply`` is the assistant text; streams send it in ``chunks`` pieces
    ``chunk_delay`` seconds apart. ``fail_status`` makes every call answer that
    status with an OpenAI error body. ``cut_after`` ends a stream after that
    many content chunks without ``[DONE]``. ``single_write`` sends a stream's
    events in one write, as a fast upstream's bunched tokens arrive.
    ``response_headers`` go on every answer, errors included (rate-limit
    headers such as ``x-ratelimit-remaining-requests``).
    """

    reply: str = "Hello from the fake upstream."
    chunks: int = 4
    chunk_delay: float = 0.0
    headers_delay: float = 0.0
    fail_status: int | None = None
    fail_message: str = "upstream says no"
    retry_after: str | None = None
    cut_after: int | None = None
    error_event_after: int | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    )
    keepalive_comments: bool = False
    single_write: bool = False
    drip_interval: float = 0.2
    split_error_body: bool = False  # error bodies arrive in two writes, 50 ms apart
    answer: dict[str, Any] | None = None  # served as it is as every plain chat answer, when set
    script: list[Any] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    streams_closed: int = 0
    streams_finished: int = 0

    def app(self) -> web.Application:
        """The aiohttp application serving this fake at OpenAI's paths."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.on_response_prepare.append(self._add_headers)
        return app

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(self.response_headers)

    def azure_app(self) -> web.Application:
        """The same fake at Azure OpenAI's deployment paths."""
        app = web.Application()
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        return app

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = orjson.loads(await request.read())
        self.received.append(Received(request.path, request.headers.copy(), body))
        return body

    def _error(self, status: int | None = None) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after else None
        doc = {"error": {"message": self.fail_message, "type": "invalid_request_error",
                         "param": None, "code": "fake_failure"}}
        return web.Response(status=status or self.fail_status or 500, body=orjson.dumps(doc),
                            content_type="application/json", headers=headers)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        step = self.script.pop(0) if self.script else None
        if step == "hang":
            await asyncio.sleep(3600)
        if isinstance(step, int):
            if self.split_error_body:
                return await self._split_error(request, step)
            return self._error(step)
        if step == "malformed":
            return web.Response(body=b'{"id": "chatcmpl-broken", "choi', content_type="application/json")
        if self.headers_delay:
            await asyncio.sleep(self.headers_delay)
        if self.fail_status:
            return self._error()
        if body.get("stream"):
            if isinstance(step, list):
                return await self._raw_stream(request, step)
            if step == "drip":
                return await self._drip(request, body)
            return await self._stream(request, body, step)
        if self.answer is not None:
            return web.Response(body=orjson.dumps(self.answer), content_type="application/json")
        doc = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": self.usage,
            "system_fingerprint": "fp_fake",
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def _raw_stream(self, request: web.Request, payloads: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [b"data: " + payload + b"\n\n" for payload in payloads]
        for event in [b"".join(events)] if self.single_write else events:
            await response.write(event)
        return response

    async def _split_error(self, request: web.Request, status: int) -> web.StreamResponse:
        body = self._error(status).body
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json",
                                                              "Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[:20])
        await asyncio.sleep(0.05)
        await response.write(body[20:])
        return response

    async def _drip(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_event({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
                                     "model": body["model"], "choices": [
                                         {"index": 0, "delta": {"role": "assistant", "content": "x"},
                                          "finish_reason": None}]}))
        try:
            await response.write(b"data: ")
            while True:  # one byte at a time, never a complete event
                await asyncio.sleep(self.drip_interval)
                await response.write(b" ")
        except (asyncio.CancelledError, ConnectionResetError):
            self.streams_closed += 1
            raise

    async def _stream(self, request: web.Request, body: dict[str, Any], step: Any = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
                "model": body["model"]}
        if include_usage:
            base["usage"] = None
        size = max(1, -(-len(self.reply) // self.chunks))
        pieces = [self.reply[i:i + size] for i in range(0, len(self.reply), size)]
        pending: list[bytes] | None = [] if self.single_write else None

        async def emit(data: bytes) -> None:
            if pending is None:
                await response.write(data)
            else:
                pending.append(data)

        async def flush() -> web.StreamResponse:
            if pending:
                await response.write(b"".join(pending))
            return response

        try:
            if self.keepalive_comments:
                await emit(b": OPENROUTER PROCESSING\n\n")
            await emit(_event({**base, "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}))
            for i, piece in enumerate(pieces):
                if step in ("cut", "stall") and i >= 1:
                    if step == "stall":
                        await flush()
                        await asyncio.sleep(3600)
                    return await flush()
                if self.keepalive_comments:
                    await emit(b": OPENROUTER PROCESSING\n\n")
                if self.cut_after is not None and i >= self.cut_after:
                    return await flush()
                if self.error_event_after is not None and i >= self.error_event_after:
                    await emit(_event({"error": {"message": "model overloaded mid-stream",
                                                 "type": "server_error", "code": 502}}))
                    return await flush()
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                await emit(_event({**base, "choices": [
                    {"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
            await emit(_event({**base, "choices": [
                {"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            if include_usage:
                await emit(_event({**base, "choices": [], "usage": self.usage}))
            await emit(b"data: [DONE]\n\n")
            await flush()
            self.streams_finished += 1
        except (asyncio.CancelledError, ConnectionResetError):
            self.streams_closed += 1
            raise
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if self.fail_status:
            return self._error()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        fmt = body.get("encoding_format", "float")
        vector: Any = "AACAPwAAAEAAAEBA" if fmt == "base64" else [1.0, 2.0, 3.0]
        doc = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(len(inputs))],
            "model": body["model"],
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"
