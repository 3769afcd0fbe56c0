"""Send a routed request to its provider and hand the answer to the caller.

Each endpoint's upstream call is an *attempt* (:class:`ChatAttempt`,
:class:`StreamAttempt`, :class:`EmbeddingsAttempt`): one call for one
deployment with one upstream key. :func:`proxy.upstream.fallback.run_plan`
runs it over the request's plan with retries and fallback, which cover
everything up to the first byte a caller receives: for a stream, opening it
and reading its first chunk.
Streams are then relayed as they arrive, the chunks of one network read in
one write. After that, the mid-stream contract holds: an upstream failure ends
the stream with one ``data: {"error": {...}}`` event and no ``[DONE]``, so
OpenAI's SDKs raise instead of returning a silently truncated answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from proxy.cache.stage import store_answer
from proxy.config import ModelConfig
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.formats.sse import DONE_EVENT, STREAM_HEADERS, data_event
from proxy.formats.stream_assembly import CompletionAssembler, include_usage_requested
from proxy.lifecycle import LIFECYCLE
from proxy.providers.base import (
    ChatStream,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
)
from proxy.upstream.fallback import run_plan
from proxy.upstream.health import UPSTREAM_HEALTH
from proxy.usage.costing import COST_HEADER, charge, cost_header

SHUTDOWN_ERROR = GatewayError(503, "The gateway is shutting down and cut this stream before it "
                              "finished; retry the request.", code=ErrorCode.GATEWAY_SHUTDOWN)


TOKEN_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")
"""The request fields that bound the output; a model's ``max_tokens`` applies to each."""


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    """The largest output the request asks for in any of :data:`TOKEN_LIMIT_FIELDS`."""
    asked = [v for v in (body.get(f) for f in TOKEN_LIMIT_FIELDS) if isinstance(v, int)]
    return max(asked) if asked else None


def check_max_tokens(body: dict[str, Any], model: ModelConfig) -> None:
    """Refuse a request that asks for more tokens than the model's configured ``max_tokens``."""
    if model.max_tokens is None:
        return
    for field in TOKEN_LIMIT_FIELDS:
        requested = body.get(field)
        if isinstance(requested, int) and requested > model.max_tokens:
            raise GatewayError(
                400,
                f"{field} is {requested}, above the limit of {model.max_tokens} for model "
                f"'{model.name}'; ask for {model.max_tokens} or fewer.",
                code=ErrorCode.MAX_TOKENS_EXCEEDED,
                param=field,
            )


def upstream_chat_body(body: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
    """A copy of the caller's body with the model's configured defaults applied."""
    upstream = dict(body)
    if model.temperature is not None and upstream.get("temperature") is None:
        upstream["temperature"] = model.temperature
    return upstream


def provider_tag(provider: str) -> bytes:
    """The start of a framed chunk that adds the ``provider`` field: ``data: {"provider":"x",``."""
    return b'data: {"provider":' + orjson.dumps(provider) + b","


def framed_with_provider(chunk: bytes, tag: bytes, provider: str) -> bytes:
    """``chunk`` as one SSE event with ``provider`` set, spliced in one copy when possible.

    A chunk that cannot be a JSON object ends the stream (:class:`StreamInterrupted`).
    """
    if chunk[:1] == b"{" and chunk[1:2] != b"}" and b'"provider"' not in chunk:
        return b"".join((tag, memoryview(chunk)[1:], b"\n\n"))
    try:
        doc = orjson.loads(chunk)
    except orjson.JSONDecodeError:
        raise StreamInterrupted(UpstreamError(
            502, f"Upstream '{provider}' sent a stream chunk that is not JSON.",
            code=ErrorCode.UPSTREAM_BAD_RESPONSE, retryable=False)) from None
    if isinstance(doc, dict):
        doc["provider"] = provider
    return data_event(orjson.dumps(doc))


async def write_batch(response: web.StreamResponse, batch: list[bytes], tag: bytes, provider: str) -> None:
    """Send the chunks of one batch as consecutive SSE events, in one write.

    If a chunk cannot be framed, the chunks before it are still sent before
    :class:`StreamInterrupted` propagates.
    """
    if len(batch) == 1:
        await response.write(framed_with_provider(batch[0], tag, provider))
        return
    framed: list[bytes] = []
    for chunk in batch:
        try:
            framed.append(framed_with_provider(chunk, tag, provider))
        except StreamInterrupted:
            if framed:
                await response.write(b"".join(framed))
            raise
    await response.write(b"".join(framed))


def within_limits(plan: tuple[ModelConfig, ...], body: dict[str, Any]) -> tuple[ModelConfig, ...]:
    """The plan without fallbacks whose ``max_tokens`` is below what the request asks for.

    The routed model itself is checked by :func:`check_max_tokens`, which
    refuses the request with a 400 naming the limit.
    """
    requested = requested_max_tokens(body)
    if requested is None:
        return plan
    return plan[:1] + tuple(m for m in plan[1:] if m.max_tokens is None or m.max_tokens >= requested)


async def first_batch(stream: ChatStream, provider: str) -> list[bytes]:
    """The stream's first batch of chunks; a failure here is still retryable (nothing was sent)."""
    try:
        return await stream.__aiter__().__anext__()
    except StopAsyncIteration:
        raise UpstreamError(502, f"Upstream '{provider}' sent an empty stream.",
                            code=ErrorCode.UPSTREAM_BAD_RESPONSE, retryable=True) from None
    except StreamInterrupted as exc:
        error = exc.error
        if isinstance(error, UpstreamError):
            raise error from None
        raise UpstreamError(error.status, error.message, code=error.code, retryable=True) from None


@dataclass(slots=True)
class ChatAttempt:
    """A plain chat completion from one deployment: the answer, in OpenAI's shape.

    Its upstream call never asks the adapter for a stream's usage chunk: the
    gateway keeps the usage and writes the caller's usage chunk itself, with cost.
    """

    ctx: RequestContext
    body: dict[str, Any] | None = None
    """The Chat Completions body to send when it is not the caller's own (a translated Messages request)."""

    def call(self, deployment: ModelConfig, api_key: str | None) -> UpstreamCall:
        """The upstream call for ``deployment``: the caller's body with the model's defaults."""
        body = self.body if self.body is not None else self.ctx.body
        assert body is not None
        trace = self.ctx.trace
        return UpstreamCall(model=deployment, body=upstream_chat_body(body, deployment),
                            request_id=self.ctx.request_id, api_key=api_key,
                            trace_headers=None if trace is None else trace.attempt_started(deployment))

    async def __call__(self, deployment: ModelConfig, api_key: str | None) -> dict[str, Any]:
        return await self.ctx.state.adapters[deployment.provider].chat(self.call(deployment, api_key))


@dataclass(slots=True)
class OpenedStream:
    """A stream that has sent its first batch of chunks (so nothing can be retried after it)."""

    stream: ChatStream
    first: list[bytes]


@dataclass(slots=True)
class StreamAttempt(ChatAttempt):
    """A streamed chat completion from one deployment, opened and read up to its first chunks."""

    async def __call__(self, deployment: ModelConfig, api_key: str | None) -> OpenedStream:  # type: ignore[override]
        adapter = self.ctx.state.adapters[deployment.provider]
        stream = await adapter.chat_stream(self.call(deployment, api_key))
        try:
            return OpenedStream(stream, await first_batch(stream, deployment.provider))
        except BaseException:
            await stream.aclose()
            raise


@dataclass(slots=True)
class EmbeddingsAttempt:
    """An embeddings answer from one deployment; ``encoding_format`` goes upstream as sent."""

    ctx: RequestContext

    async def __call__(self, deployment: ModelConfig, api_key: str | None) -> dict[str, Any]:
        assert self.ctx.body is not None
        trace = self.ctx.trace
        call = UpstreamCall(model=deployment, body=dict(self.ctx.body), request_id=self.ctx.request_id,
                            api_key=api_key,
                            trace_headers=None if trace is None else trace.attempt_started(deployment))
        return await self.ctx.state.adapters[deployment.provider].embeddings(call)


async def complete_chat(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    """Answer a chat completion, plain or streamed, with retries and fallback."""
    assert ctx.route is not None and ctx.body is not None
    check_max_tokens(ctx.body, ctx.route.model)  # the routed model's limit, checked once
    plan = within_limits(ctx.route.candidates, ctx.body)
    health = request.app[UPSTREAM_HEALTH]
    if ctx.stream:
        opened = await run_plan(ctx, health, plan, StreamAttempt(ctx))
        return await relay_stream(request, ctx, opened.value.stream, opened.value.first,
                                  opened.deployment.provider, include_usage_requested(ctx.body))
    answered = await run_plan(ctx, health, plan, ChatAttempt(ctx))
    return answer_response(request, ctx, answered.value, answered.deployment.provider)


def answer_response(request: web.Request, ctx: RequestContext, answer: dict[str, Any],
                    provider: str) -> web.Response:
    """The JSON answer with its ``provider`` and ``usage.cost``; stored in the cache when asked."""
    answer["provider"] = provider
    usage = answer.get("usage")
    cost = charge(ctx, usage)
    if isinstance(usage, dict):
        usage["cost"] = cost
    body = orjson.dumps(answer)
    store_answer(request, ctx, body)
    headers = {COST_HEADER: cost_header(cost)} if cost is not None else None
    return web.Response(body=body, content_type="application/json", headers=headers)


def usage_chunk(first: bytes, usage: dict[str, Any], cost: float | None, provider: str) -> bytes:
    """The stream's final usage chunk, as OpenAI frames it, with ``usage.cost`` and ``provider``."""
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError:
        head = {}
    chunk = {key: head[key] for key in ("id", "object", "created", "model", "system_fingerprint")
             if isinstance(head, dict) and key in head}
    chunk.update(choices=[], usage={**usage, "cost": cost}, provider=provider)
    return data_event(orjson.dumps(chunk))


async def relay_stream(
    request: web.Request, ctx: RequestContext, stream: ChatStream, first: list[bytes], provider: str,
    include_usage: bool = False,
) -> web.StreamResponse:
    """Copy ``stream`` to the caller as SSE, keeping the mid-stream failure contract.

    When the stream finished cleanly its usage is priced, and a caller that
    asked for the usage chunk gets it (with ``cost``) before ``[DONE]``. When
    the answer is to be cached, its chunks are assembled on the way and the
    whole answer is stored only if the stream finished cleanly.
    """
    tag = provider_tag(provider)
    assembler = CompletionAssembler() if ctx.cache_key is not None else None
    charged = False
    try:
        response = web.StreamResponse(status=200, headers=STREAM_HEADERS)
        await response.prepare(request)
        ctx.mark_first_byte()
        try:
            await write_batch(response, first, tag, provider)
            if assembler is not None:
                assembler.add_batch(first)
            async for batch in stream:
                await write_batch(response, batch, tag, provider)
                if assembler is not None:
                    assembler.add_batch(batch)
        except StreamInterrupted as exc:
            ctx.error = exc.error.code or exc.error.type
            await response.write(data_event(orjson.dumps(exc.error.payload())))
        except asyncio.CancelledError:
            if request.app[LIFECYCLE].shutting_down:
                with contextlib.suppress(Exception):
                    await response.write(data_event(orjson.dumps(SHUTDOWN_ERROR.payload())))
            raise
        else:
            cost, charged = charge(ctx, stream.usage), True
            if include_usage and stream.usage is not None:
                await response.write(usage_chunk(first[0], stream.usage, cost, provider))
            await response.write(DONE_EVENT)
            if assembler is not None and assembler.complete:
                assembler.usage = stream.usage  # adapters keep the usage chunk to themselves
                store_answer(request, ctx, orjson.dumps({**assembler.completion(), "provider": provider}))
        await response.write_eof()
        return response
    finally:
        await stream.aclose()
        if not charged:  # a stream cut or cancelled: price what the upstream reported so far
            charge(ctx, stream.usage)


async def create_embeddings(request: web.Request, ctx: RequestContext) -> web.Response:
    """Answer an embeddings request, with retries and fallback."""
    assert ctx.route is not None
    answered = await run_plan(ctx, request.app[UPSTREAM_HEALTH], ctx.route.candidates, EmbeddingsAttempt(ctx))
    return answer_response(request, ctx, answered.value, answered.deployment.provider)
