"""The endpoints. Each handler is tagged with the ``endpoint`` name the pipeline stages key on,
and, when its errors are not OpenAI-shaped, with the function that shapes them."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from proxy import __version__
from proxy.api.anthropic_errors import anthropic_error_response
from proxy.context import CONTEXT_KEY
from proxy.errors import ErrorCode, GatewayError
from proxy.limits.limiter import LIMITER
from proxy.limits.model import LimitsUnavailable
from proxy.limits.view import limits_view
from proxy.state import STATE
from proxy.upstream.count_tokens import count_message_tokens
from proxy.upstream.forwarding import complete_chat, create_embeddings
from proxy.upstream.health import UPSTREAM_HEALTH
from proxy.upstream.messages import complete_messages
from proxy.usage.query import USAGE_READER, UsageQuery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorResponse = Callable[[GatewayError, str], web.Response]
"""Shapes an error for an endpoint's callers: ``(error, request id) -> answer``."""


def endpoint(name: str, errors: ErrorResponse | None = None) -> Callable[[Handler], Handler]:
    """Tag a handler with the endpoint name middlewares use to pick their work, and its error shape.

    ``errors`` shapes every failure of a request to it, whichever stage raised
    it (:mod:`proxy.pipeline.access_log`); without it, errors are OpenAI-shaped.
    """

    def tag(handler: Handler) -> Handler:
        handler.endpoint = name  # type: ignore[attr-defined]
        if errors is not None:
            handler.error_response = errors  # type: ignore[attr-defined]
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


@endpoint("messages", errors=anthropic_error_response)
async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages`` (Anthropic's Messages API; Claude Code adds ``?beta=true``)."""
    return await complete_messages(request, request[CONTEXT_KEY])


@endpoint("count_tokens", errors=anthropic_error_response)
async def count_tokens(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages/count_tokens``."""
    return await count_message_tokens(request, request[CONTEXT_KEY])


ANTHROPIC_VERSION_HEADER = "anthropic-version"
EPOCH = "1970-01-01T00:00:00Z"


@endpoint("models")
async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: every configured model, in OpenAI's list shape, or Anthropic's.

    A caller that sends ``anthropic-version`` (the anthropic SDKs, Claude
    Code's model discovery) gets Anthropic's shape: ``data`` entries with
    ``type``, ``id``, ``display_name`` and ``created_at``, then ``has_more``,
    ``first_id`` and ``last_id`` (every model in one page, whatever ``limit``).
    """
    config = request[CONTEXT_KEY].state.config
    seen: set[str] = set()
    models: list[tuple[str, str]] = []
    for provider in config.providers.values():
        for model in provider.models.values():
            if model.name not in seen:
                seen.add(model.name)
                models.append((model.name, provider.name))
    if ANTHROPIC_VERSION_HEADER in request.headers:
        data = [{"type": "model", "id": name, "display_name": name, "created_at": EPOCH}
                for name, _ in models]
        return json_response({"data": data, "has_more": False,
                              "first_id": models[0][0] if models else None,
                              "last_id": models[-1][0] if models else None})
    return json_response({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": owner} for name, owner in models]})


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
