"""Send a routed request to its provider and hand the answer to the caller.

Streams are relayed chunk by chunk as they arrive. Until the first byte goes
to the caller, a failure is still an ordinary error response. After that, the
mid-stream contract holds: an upstream failure ends the stream with one
``data: {"error": {...}}`` event and no ``[DONE]``, so OpenAI's SDKs raise
instead of returning a silently truncated answer.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from proxy.config import ModelConfig
from proxy.context import RequestContext
from proxy.errors import GatewayError
from proxy.providers.base import ChatStream, ProviderAdapter, StreamInterrupted, UpstreamCall
from proxy.sse import DONE_EVENT, data_event

STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def adapter_for(ctx: RequestContext, model: ModelConfig) -> ProviderAdapter:
    """The adapter of ``model``'s provider, or 503 if that provider cannot be called."""
    adapter = ctx.state.adapters[model.provider]
    if not adapter.config.configured:
        raise GatewayError(
            503,
            f"Provider '{model.provider}' has no API key configured, so '{model.name}' "
            "cannot be served right now.",
            code="provider_unconfigured",
        )
    return adapter


def upstream_chat_body(body: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
    """A copy of the caller's body with the model's configured defaults and limits applied."""
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if model.max_tokens is not None and isinstance(requested, int) and requested > model.max_tokens:
        field = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
        raise GatewayError(
            400,
            f"{field} is {requested}, above the limit of {model.max_tokens} for model "
            f"'{model.name}'; ask for {model.max_tokens} or fewer.",
            code="max_tokens_exceeded",
            param=field,
        )
    upstream = dict(body)
    if model.temperature is not None and upstream.get("temperature") is None:
        upstream["temperature"] = model.temperature
    return upstream


def include_usage_requested(body: dict[str, Any]) -> bool:
    """Whether the caller asked for the final usage chunk of a stream."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def provider_tag(provider: str) -> bytes:
    """The bytes spliced into each stream chunk to add the ``provider`` field."""
    return b'{"provider":' + orjson.dumps(provider) + b","


def with_provider(chunk: bytes, tag: bytes, provider: str) -> bytes:
    """``chunk`` with ``provider`` set, spliced without a parse when possible."""
    if b'"provider"' in chunk:
        doc = orjson.loads(chunk)
        doc["provider"] = provider
        return orjson.dumps(doc)
    if chunk[:1] == b"{" and chunk[1:2] != b"}":
        return tag + chunk[1:]
    return chunk


async def complete_chat(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    """Answer a chat completion, plain or streamed."""
    assert ctx.route is not None and ctx.body is not None
    model = ctx.route.model
    adapter = adapter_for(ctx, model)
    call = UpstreamCall(
        model=model,
        body=upstream_chat_body(ctx.body, model),
        request_id=ctx.request_id,
        include_usage=include_usage_requested(ctx.body),
    )
    if ctx.stream:
        stream = await adapter.chat_stream(call)
        return await relay_stream(request, ctx, stream, model.provider)
    answer = await adapter.chat(call)
    answer["provider"] = model.provider
    ctx.record_usage(answer.get("usage"))
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def relay_stream(
    request: web.Request, ctx: RequestContext, stream: ChatStream, provider: str
) -> web.StreamResponse:
    """Copy ``stream`` to the caller as SSE, keeping the mid-stream failure contract."""
    tag = provider_tag(provider)
    chunks = stream.__aiter__()
    try:
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise GatewayError(502, f"Upstream '{provider}' sent an empty stream.",
                               code="upstream_bad_response") from None
        except StreamInterrupted as exc:
            raise exc.error from None
        response = web.StreamResponse(status=200, headers=STREAM_HEADERS)
        await response.prepare(request)
        ctx.mark_first_byte()
        await response.write(data_event(with_provider(first, tag, provider)))
        try:
            async for chunk in chunks:
                await response.write(data_event(with_provider(chunk, tag, provider)))
        except StreamInterrupted as exc:
            ctx.error = exc.error.code or exc.error.type
            await response.write(data_event(orjson.dumps(exc.error.payload())))
        else:
            await response.write(DONE_EVENT)
        await response.write_eof()
        return response
    finally:
        await stream.aclose()
        ctx.record_usage(stream.usage)


async def create_embeddings(request: web.Request, ctx: RequestContext) -> web.Response:
    """Answer an embeddings request; ``encoding_format`` goes upstream as sent."""
    assert ctx.route is not None and ctx.body is not None
    model = ctx.route.model
    adapter = adapter_for(ctx, model)
    call = UpstreamCall(model=model, body=dict(ctx.body), request_id=ctx.request_id)
    answer = await adapter.embeddings(call)
    answer["provider"] = model.provider
    ctx.record_usage(answer.get("usage"))
    return web.Response(body=orjson.dumps(answer), content_type="application/json")
