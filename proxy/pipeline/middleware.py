"""The request pipeline: the gateway's stages, in order, around the endpoint handler.

Each stage lives in its own module and is a plain function of the request and
its context; this module only runs them in order, so a request pays for one
middleware instead of one per stage.

1. admission (``proxy/pipeline/admission.py``): refuse at once past ``api.max_in_flight``
2. auth (``proxy/pipeline/auth.py``): who is calling
3. validation (``proxy/pipeline/validation.py``): read, parse and check the body, once; for
   the Messages API, its gateway fields taken out (``proxy/pipeline/messages_fields.py``)
4. routing (``proxy/pipeline/routing.py``): pick the model and its fallback plan
5. cache lookup (``proxy/cache/stage.py``; none for ``count_tokens``)
6. limits (``proxy/limits/stage.py``): refuse, or reserve what the request may use (a cache
   hit, and a ``count_tokens`` request, reserve a request, no tokens and no budget)
7. the cached answer, or the handler, which forwards (``proxy/upstream/forwarding.py``,
   ``proxy/upstream/messages.py``)

The request id, the error shape, the log line and the metrics hook are the
outer middleware's work (``proxy/pipeline/access_log.py``).
"""

from __future__ import annotations

from aiohttp import web

from proxy.cache.messages_hit import serve_messages_hit
from proxy.cache.stage import lookup_cache, serve_hit
from proxy.context import CONTEXT_KEY
from proxy.lifecycle import LIFECYCLE
from proxy.limits.stage import enforce_limits
from proxy.pipeline.admission import Admission
from proxy.pipeline.auth import authenticate
from proxy.pipeline.messages_fields import take_gateway_fields
from proxy.pipeline.routing import choose_route
from proxy.pipeline.validation import read_valid_body

MODEL_ENDPOINTS = frozenset({"chat", "embeddings", "messages", "count_tokens"})
MESSAGES_ENDPOINTS = frozenset({"messages", "count_tokens"})
"""The Messages API's endpoints: their gateway fields live in ``metadata``."""
UNCACHED_ENDPOINTS = frozenset({"count_tokens"})
"""Endpoints that use no tokens: no cache, and limits count them as a request only."""


@web.middleware
async def pipeline_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Run the stages for known endpoints, then the handler."""
    ctx = request[CONTEXT_KEY]
    if ctx.endpoint not in MODEL_ENDPOINTS:
        if ctx.endpoint is not None:
            authenticate(request, ctx)
        return await handler(request)
    with Admission(request.app[LIFECYCLE], ctx.state.config.api.max_in_flight):
        authenticate(request, ctx)
        await read_valid_body(request, ctx)
        if ctx.endpoint in MESSAGES_ENDPOINTS:
            take_gateway_fields(ctx)
        choose_route(request, ctx)
        if ctx.endpoint in UNCACHED_ENDPOINTS:
            await enforce_limits(request, ctx, hit=True)
            return await handler(request)
        stored = await lookup_cache(request, ctx)
        await enforce_limits(request, ctx, hit=stored is not None)
        if stored is not None:
            if ctx.endpoint == "messages":
                return await serve_messages_hit(request, ctx, stored)
            return await serve_hit(request, ctx, stored)
        return await handler(request)
