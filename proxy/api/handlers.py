"""The endpoints. Each handler is tagged with the ``endpoint`` name the pipeline stages key on."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from proxy import __version__
from proxy.context import CONTEXT_KEY
from proxy.errors import ErrorCode, GatewayError
from proxy.limits.limiter import LIMITER
from proxy.limits.model import LimitsUnavailable
from proxy.limits.view import limits_view
from proxy.state import STATE
from proxy.upstream.forwarding import complete_chat, create_embeddings
from proxy.upstream.health import UPSTREAM_HEALTH
from proxy.usage.query import USAGE_READER, UsageQuery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(name: str) -> Callable[[Handler], Handler]:
    """Tag a handler with the endpoint name middlewares use to pick their work."""

    def tag(handler: Handler) -> Handler:
        handler.endpoint = name  # type: ignore[attr-defined]
        return handler

    return tag


def json_response(doc: Any, status: int = 200) -> web.Response:
    """A JSON answer serialised with orjson."""
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


@endpoint("chat")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    return await complete_chat(request, request[CONTEXT_KEY])


@endpoint("embeddings")
async def embeddings(request: web.Request) -> web.StreamResponse:
    """``POST /v1/embeddings``."""
    return await create_embeddings(request, request[CONTEXT_KEY])


@endpoint("models")
async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: every configured model, in OpenAI's list shape."""
    config = request[CONTEXT_KEY].state.config
    seen: set[str] = set()
    data = []
    for provider in config.providers.values():
        for model in provider.models.values():
            if model.name in seen:
                continue
            seen.add(model.name)
            data.append({"id": model.name, "object": "model", "created": 0, "owned_by": provider.name})
    return json_response({"object": "list", "data": data})


@endpoint("usage")
async def usage(request: web.Request) -> web.Response:
    """``GET /v1/usage``: requests, tokens and cost over a window, grouped as asked.

    ``start``/``end`` (ISO 8601, default the last 24 hours) and ``group_by``
    (see :data:`proxy.usage.query.GROUP_FIELDS`). A key marked ``admin`` sees
    every caller's usage, any other key only its own; with auth off, everyone
    sees everything.
    """
    ctx = request[CONTEXT_KEY]
    reader = request.app.get(USAGE_READER)
    if reader is None:
        raise GatewayError(404, "The usage ledger is not configured: add a 'usage' section with a "
                                "'database' to the gateway's config to record and query usage.",
                           code=ErrorCode.USAGE_NOT_CONFIGURED)
    query = UsageQuery.from_params(request.query, time.time())
    everyone = ctx.admin or not ctx.state.config.auth.enabled
    return json_response(await reader.summary(query, None if everyone else ctx.caller))


@endpoint("limits")
async def limits(request: web.Request) -> web.Response:
    """``GET /v1/limits``: the caller's own limits (its key's and its team's) and what is left of each.

    Not counted against them. With auth off there is no caller, and no limits.
    """
    ctx = request[CONTEXT_KEY]
    key = ctx.key
    if key is None:
        return json_response(limits_view(None, None, [], []))
    limiter = request.app[LIMITER]
    scopes = limiter.scopes_for(ctx.state.config, key)
    try:
        readings = await limiter.backend.read(scopes)
    except LimitsUnavailable:
        raise GatewayError(503, "Limits cannot be read right now (their store is unreachable); "
                           "retry shortly.", code=ErrorCode.LIMITS_UNAVAILABLE) from None
    return json_response(limits_view(key.name, key.team, scopes, readings))


@endpoint("health")
async def health(request: web.Request) -> web.Response:
    """``GET /health``: overall status, one state per provider, version.

    A provider is ``available``, ``degraded`` (some of its models' circuit
    breakers are open), ``unavailable`` (all open, or our key was refused) or
    ``unconfigured``. Overall: ``healthy`` when every configured provider is
    available, ``degraded`` when some are not (or the default model's provider
    cannot serve), ``unhealthy`` (HTTP 503) when none can serve.
    """
    state = request.app[STATE].current
    health = request.app[UPSTREAM_HEALTH]
    providers = {name: health.provider_status(state, name) for name in state.adapters}
    configured = [s for s in providers.values() if s != "unconfigured"]
    available = [s for s in configured if s in ("available", "degraded")]
    default_provider = state.config.routing.default_model.provider
    if not available:
        status = "unhealthy"
    elif any(s != "available" for s in configured) or providers.get(default_provider) != "available":
        status = "degraded"
    else:
        status = "healthy"
    body = {"status": status, "providers": providers, "version": __version__}
    return json_response(body, status=503 if status == "unhealthy" else 200)
