"""A fake Anthropic Messages upstream, run as an aiohttp test server.

Same pattern as :class:`tests.fakes.FakeOpenAI`: a small ``web.Application``
whose behaviour a test scripts through attributes, recording every request.
It speaks Anthropic's wire format: ``POST /v1/messages``, JSON answers with
content blocks (text, tool use, thinking), streams of named events
(``message_start``, ``ping``, ``content_block_*``, ``message_delta``,
``message_stop``), ``POST /v1/messages/count_tokens`` and
``{"type": "error", "error": {...}}`` error bodies. Besides each request's
headers and parsed body, it keeps the body's exact bytes (``raw_bodies``) and
the query string (``queries``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson
from aiohttp import web

from tests.fakes import Received

Splitter = Callable[[bytes], Iterable[bytes]]


def text_block(text: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": text}


def tool_use_block(id: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    """A tool_use content block."""
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def thinking_block(thinking: str, signature: str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxsig") -> dict[str, Any]:
    """A thinking content block, signed."""
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def sse_event(name: str, doc: dict[str, Any], newline: bytes = b"\n") -> bytes:
    """One named event as Anthropic frames it."""
    return b"event: " + name.encode() + newline + b"data: " + orjson.dumps(doc) + newline + newline


def pieces_of(text: str, count: int) -> list[str]:
    """``text`` cut into about ``count`` consecutive pieces."""
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class FakeAnthropic:
    """An Anthropic Messages upstream.

    ``blocks`` is the answer's content (default: one text block of ``reply``);
    streams send text and tool input in ``chunks`` pieces. ``model`` is the
    model reported back (default: the requested one). ``fail_status`` answers
    every call with that status and an Anthropic error body. In streams,
    ``error_event_after`` sends an ``error`` event after that many deltas and
    ``cut_after`` ends the stream there; ``split`` cuts the stream's bytes
    into the writes it makes (default: one write per event). ``stall_after``
    stops sending after that many events (``None``: never) and
    ``stall_before_headers`` before answering at all, until ``release`` is set.
    ``response_headers`` go on every answer, errors included (rate-limit
    headers such as ``anthropic-ratelimit-tokens-remaining``).
    """

    reply: str = "Hello from the fake Anthropic upstream."
    blocks: list[dict[str, Any]] | None = None
    chunks: int = 4
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    model: str | None = None
    message_id: str = "msg_01FakeAnthropic"
    usage: dict[str, int] = field(default_factory=lambda: {
        "input_tokens": 21, "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100, "output_tokens": 9,
    })
    fail_status: int | None = None
    fail_type: str = "invalid_request_error"
    fail_message: str = "fake anthropic says no"
    retry_after: str | None = None
    raw_answer: bytes | None = None
    error_event_after: int | None = None
    error_type: str = "overloaded_error"
    cut_after: int | None = None
    split: Splitter | None = None
    newline: bytes = b"\n"
    stall_after: int | None = None
    stall_before_headers: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    response_headers: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 42
    received: list[Received] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    streams_finished: int = 0

    def app(self) -> web.Application:
        """The aiohttp application serving this fake."""
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.on_response_prepare.append(self._add_headers)
        return app

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(self.response_headers)

    # ------------------------------------------------------------ scripting

    def content(self) -> list[dict[str, Any]]:
        """The content blocks of the answer."""
        return self.blocks if self.blocks is not None else [text_block(self.reply)]

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        """The complete (non-streamed) answer."""
        return {
            "id": self.message_id, "type": "message", "role": "assistant",
            "content": self.content(), "model": self.model or body["model"],
            "stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence,
            "usage": self.usage,
        }

    def stream_events(self, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The full event sequence of a streamed answer, before cuts and errors."""
        start_usage = {k: v for k, v in self.usage.items() if k != "output_tokens"}
        start = {**self.message(body), "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**start_usage, "output_tokens": 1}}
        events = [("message_start", {"type": "message_start", "message": start}),
                  ("ping", {"type": "ping"})]
        for index, block in enumerate(self.content()):
            events.extend(self._block_events(index, block))
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": {"output_tokens": self.usage.get("output_tokens", 0)},
        }))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _block_events(self, index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if block["type"] == "text":
            start = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces_of(block["text"], self.chunks)]
        elif block["type"] == "thinking":
            start = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces_of(block["thinking"], self.chunks)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] != "tool_use":  # redacted thinking and the like: whole in their start
            start, deltas = block, []
        else:
            start = {**block, "input": {}}
            arguments = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": p} for p in pieces_of(arguments, self.chunks)
            ]
        events = [("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": start})]
        for i, delta in enumerate(deltas):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": delta}))
            if i == 0:
                events.append(("ping", {"type": "ping"}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events

    def _interrupted(self, events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        limit = self.error_event_after if self.error_event_after is not None else self.cut_after
        if limit is None:
            return events
        deltas = [i for i, (name, _) in enumerate(events) if name == "content_block_delta"]
        end = deltas[limit] if limit < len(deltas) else len(events) - 1
        kept = events[:end]
        if self.error_event_after is not None:
            kept.append(("error", {"type": "error", "error": {
                "type": self.error_type, "message": "Overloaded mid-stream"}}))
        return kept

    # ------------------------------------------------------------ serving

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = orjson.loads(raw)
        self.received.append(Received(request.path, request.headers.copy(), body))
        self.raw_bodies.append(raw)
        self.queries.append(request.query_string)
        return body

    async def count_tokens(self, request: web.Request) -> web.Response:
        """``POST /v1/messages/count_tokens``."""
        await self._record(request)
        if self.fail_status:
            return self._error()
        return web.Response(body=orjson.dumps({"input_tokens": self.input_tokens}),
                            content_type="application/json")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/messages``."""
        body = await self._record(request)
        if self.stall_before_headers:
            await self.release.wait()
        if self.fail_status:
            return self._error()
        if self.raw_answer is not None:
            return web.Response(body=self.raw_answer, content_type="application/json")
        if body.get("stream"):
            return await self._stream(request, body)
        return web.Response(body=orjson.dumps(self.message(body)), content_type="application/json")

    def _error(self) -> web.Response:
        headers = {"retry-after": self.retry_after} if self.retry_after else None
        doc = {"type": "error", "error": {"type": self.fail_type, "message": self.fail_message}}
        return web.Response(status=self.fail_status or 500, body=orjson.dumps(doc),
                            content_type="application/json", headers=headers)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        events = self._interrupted(self.stream_events(body))
        encoded = [sse_event(name, doc, self.newline) for name, doc in events]
        if self.stall_after is not None:
            for data in encoded[:self.stall_after]:
                await response.write(data)
            await self.release.wait()
            return response
        writes = self.split(b"".join(encoded)) if self.split is not None else encoded
        for piece in writes:
            await response.write(piece)
            await asyncio.sleep(0)
        if events[-1][0] == "message_stop":
            self.streams_finished += 1
        return response
