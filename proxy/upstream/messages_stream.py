"""Relay a streamed Messages answer to its caller as Anthropic's event stream.

Two sources, one contract, as for chat (:func:`proxy.upstream.forwarding.relay_stream`):
the stream is opened (its first events or chunks read) inside the retry and
fallback engine, then relayed as it arrives, the events of one network read in
one write. A failure after that ends the stream with one Anthropic ``error``
event (``{"type": "error", "error": {"type", "message"}}``) and nothing after
it, so the anthropic SDKs raise instead of returning a truncated message; the
gateway's own shutdown does the same. A stream that finished cleanly is priced
from its usage and, when the answer is to be cached, stored as the complete
``message`` it amounts to.

* :func:`relay_native_stream`: an Anthropic upstream's events, passed on as
  they came (pings included); an ``error`` event of the upstream's is passed on
  as it came too.
* :func:`relay_translated_stream`: an OpenAI-style upstream's chunks through
  :class:`~proxy.formats.anthropic.inbound_stream.MessagesStreamTranslator`.
  Such upstreams send nothing while a model thinks, and Claude Code aborts a
  stream silent for 300 s, so a :class:`Keepalive` sends a ``ping`` event
  after every :data:`PING_INTERVAL` seconds of silence, as Anthropic does.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import web

from proxy.cache.stage import store_answer
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.formats.anthropic.assembly import MessageAssembler
from proxy.formats.anthropic.errors import error_body
from proxy.formats.anthropic.inbound_stream import PING_BYTES, MessagesStreamTranslator, encode_event, encode_events
from proxy.formats.sse import STREAM_HEADERS
from proxy.lifecycle import LIFECYCLE
from proxy.providers.base import ChatStream, StreamInterrupted, UpstreamError
from proxy.upstream.forwarding import SHUTDOWN_ERROR, OpenedStream
from proxy.usage.costing import charge

PING_INTERVAL = 10.0
"""Seconds of silence on a translated stream after which a ``ping`` event is sent."""


def error_event(error: GatewayError) -> bytes:
    """The ``error`` event for a failure mid-stream: the upstream's own document when it sent one."""
    document = getattr(error, "document", None)
    if document is not None:
        return b"event: error\ndata: " + document + b"\n\n"
    return encode_event(error_body(error.status, error.message, error.code))


async def open_response(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    """The event-stream answer, its headers sent."""
    response = web.StreamResponse(status=200, headers=STREAM_HEADERS)
    await response.prepare(request)
    ctx.mark_first_byte()
    return response


async def relay_native_stream(request: web.Request, ctx: RequestContext,
                              opened: OpenedStream) -> web.StreamResponse:
    """Pass an Anthropic upstream's event stream on as it arrives (see the module docstring)."""
    stream = opened.stream
    assembler = MessageAssembler() if ctx.cache_key is not None else None
    charged = False
    try:
        response = await open_response(request, ctx)
        try:
            await _copy_native(response, opened.first, stream, assembler)
        except StreamInterrupted as exc:
            ctx.error = exc.error.code or exc.error.type
            await response.write(error_event(exc.error))
        except asyncio.CancelledError:
            await _shutdown_event(request, response)
            raise
        else:
            charged = _charge_and_store(request, ctx, stream, assembler)
        await response.write_eof()
        return response
    finally:
        await stream.aclose()
        if not charged:  # cut or cancelled: price what the upstream reported so far
            charge(ctx, stream.usage)


def _charge_and_store(request: web.Request, ctx: RequestContext, stream: ChatStream,
                      assembler: MessageAssembler | None) -> bool:
    """A stream that ended cleanly: price its usage and cache the assembled message; True (charged)."""
    charge(ctx, stream.usage)
    message = assembler.message() if assembler is not None else None
    if message is not None:
        store_answer(request, ctx, orjson.dumps(message))
    return True


async def _copy_native(response: web.StreamResponse, first: list[bytes], stream: ChatStream,
                       assembler: MessageAssembler | None) -> None:
    data = first[0] if len(first) == 1 else b"".join(first)
    await response.write(data)
    if assembler is not None:
        assembler.add_sse(data)
    async for batch in stream:
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        await response.write(data)
        if assembler is not None:
            assembler.add_sse(data)


async def _shutdown_event(request: web.Request, response: web.StreamResponse) -> None:
    """At the gateway's shutdown, tell the caller why its stream ends (a client that left gets nothing)."""
    if request.app[LIFECYCLE].shutting_down:
        with contextlib.suppress(Exception):
            await response.write(error_event(SHUTDOWN_ERROR))


class Keepalive:
    """Writes a ``ping`` event whenever the stream has been silent for ``interval`` seconds.

    Writes are whole events, so a ping never lands inside another event.
    """

    __slots__ = ("_response", "_interval", "_clock", "last", "_task")

    def __init__(self, response: web.StreamResponse, interval: float) -> None:
        loop = asyncio.get_running_loop()
        self._response = response
        self._interval = interval
        self._clock = loop.time
        self.last = loop.time()
        self._task = loop.create_task(self._run())

    def touch(self) -> None:
        """Something was just written."""
        self.last = self._clock()

    async def _run(self) -> None:
        while True:
            wait = self.last + self._interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self._response.write(PING_BYTES)
            self.last = self._clock()

    async def stop(self) -> None:
        """Stop pinging (before the stream's last write)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def relay_translated_stream(request: web.Request, ctx: RequestContext,
                                  opened: OpenedStream) -> web.StreamResponse:
    """Translate an OpenAI-style chunk stream into Anthropic's events as it arrives."""
    stream = opened.stream
    translator = MessagesStreamTranslator()
    assembler = MessageAssembler() if ctx.cache_key is not None else None
    charged = False
    keepalive: Keepalive | None = None
    try:
        response = await open_response(request, ctx)
        keepalive = Keepalive(response, PING_INTERVAL)
        try:
            clean = await _translate(response, translator, opened.first, stream, keepalive, assembler)
        except StreamInterrupted as exc:
            ctx.error = exc.error.code or exc.error.type
            await keepalive.stop()
            error = exc.error
            await response.write(encode_events(translator.fail(error.status, error.message, error.code)))
        except asyncio.CancelledError:
            await keepalive.stop()
            await _shutdown_event(request, response)
            raise
        else:
            if not clean:  # the upstream's own error chunk ended the stream with an error event
                ctx.error = ErrorCode.UPSTREAM_ERROR
            else:
                charged = _charge_and_store(request, ctx, stream, assembler)
        await response.write_eof()
        return response
    finally:
        if keepalive is not None:
            await keepalive.stop()
        await stream.aclose()
        if not charged:
            charge(ctx, stream.usage)


async def _translate(response: web.StreamResponse, translator: MessagesStreamTranslator, first: list[bytes],
                     stream: ChatStream, keepalive: Keepalive, assembler: MessageAssembler | None) -> bool:
    """Relay the whole stream translated; True when it ended cleanly (``message_stop`` sent)."""
    if not await _write_events(response, translator, first, assembler, keepalive):
        return False
    async for batch in stream:
        if not await _write_events(response, translator, batch, assembler, keepalive):
            return False
    translator.chat_usage = stream.usage or translator.chat_usage  # adapters keep the usage chunk
    events = translator.finish()
    await keepalive.stop()
    await response.write(encode_events(events))
    if assembler is not None:
        assembler.add_events(events)
    return True


async def _write_events(response: web.StreamResponse, translator: MessagesStreamTranslator,
                        batch: list[bytes], assembler: MessageAssembler | None, keepalive: Keepalive) -> bool:
    """Translate one batch of chunks and write its events in one write; False once the stream failed."""
    events: list[dict[str, Any]] = []
    for payload in batch:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise StreamInterrupted(UpstreamError(
                502, "The upstream sent a stream chunk that is not JSON.",
                code=ErrorCode.UPSTREAM_BAD_RESPONSE, retryable=False)) from None
        events += translator.feed(chunk)
        if translator.finished:
            break
    if events:
        await response.write(encode_events(events))
        keepalive.touch()
        if assembler is not None:
            assembler.add_events(events)
    return not translator.finished
