"""A cached answer served to a Messages API caller, in Anthropic's format.

``POST /v1/messages`` stores the ``message`` its caller got (relayed from an
Anthropic upstream, or translated from an OpenAI-style one, plain or
assembled from a stream: :mod:`proxy.cache.stage` says when), under keys of
its own endpoint. A hit is answered with that message as JSON, or replayed as
Anthropic's event stream (:func:`proxy.formats.anthropic.assembly.message_events`)
to a streaming caller. As for chat, it costs 0 and what it saved is kept.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from proxy.context import RequestContext
from proxy.formats.anthropic.assembly import message_events
from proxy.formats.anthropic.inbound_stream import encode_events
from proxy.formats.anthropic.response import to_openai_usage
from proxy.formats.sse import STREAM_HEADERS
from proxy.optimise.request_savings import record_saving
from proxy.optimise.savings import SavingReason
from proxy.usage.costing import COST_HEADER, price_of_cached


async def serve_messages_hit(request: web.Request, ctx: RequestContext, stored: bytes) -> web.StreamResponse:
    """Answer from a stored ``message``: as it was stored, or replayed as a stream."""
    assert ctx.route is not None
    ctx.use_model(ctx.route.model)
    message: dict[str, Any] = orjson.loads(stored)
    ctx.cost_usd = 0.0
    record_saving(ctx, SavingReason.CACHE, price_of_cached(ctx, to_openai_usage(message.get("usage"))))
    if not ctx.stream:
        return web.Response(body=stored, content_type="application/json", headers={COST_HEADER: "0"})
    response = web.StreamResponse(headers=STREAM_HEADERS)
    await response.prepare(request)
    ctx.mark_first_byte()
    await response.write(encode_events(message_events(message)))
    await response.write_eof()
    return response
