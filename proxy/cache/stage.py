"""The response cache stage: look answers up after routing, store complete ones.

The key is a SHA-256 over the canonical request: the tenant scope, the
endpoint, the resolved provider and upstream model, the body with every
field that can change the answer (everything but ``stream`` and
``stream_options``) and, for the Messages API, the ``anthropic-version`` and
``anthropic-beta`` headers (:data:`VARY_HEADERS`), which an Anthropic upstream
reads as part of the request. The scope (``caching.scope``) is the caller's key name
(``key``, the default), its team (``team``) or nothing (``global``), so one
tenant never reads another's answer unless the operator says so.

Only complete, successful answers from the routed model itself are stored:
never an error, a stream that broke, or a fallback's answer. Streamed answers
are assembled as they pass and stored once the stream finished cleanly; a
cached answer is replayed as a stream to a streaming caller.

``Cache-Control: no-cache`` skips the lookup, ``no-store`` skips the store.
Every chat and embeddings answer says ``x-cache: HIT``, ``MISS`` or ``BYPASS``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from proxy.cache.store import RESPONSE_CACHE
from proxy.context import RequestContext
from proxy.formats.sse import DONE_EVENT, STREAM_HEADERS, data_event
from proxy.formats.stream_assembly import include_usage_requested, replay_chunks
from proxy.optimise.request_savings import record_saving
from proxy.optimise.savings import SavingReason
from proxy.usage.costing import COST_HEADER, price_of_cached

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
CACHE_HEADER = "X-Cache"
_NOT_IN_KEY = frozenset({"stream", "stream_options"})
VARY_HEADERS = {"messages": ("anthropic-version", "anthropic-beta")}
"""Per endpoint, the request headers that are part of its cache key."""


def scope_of(ctx: RequestContext, scope: str) -> str:
    """The tenant a cache entry belongs to."""
    if scope == "global":
        return "global"
    if scope == "team" and ctx.team:
        return "team:" + ctx.team
    return "key:" + (ctx.caller or "anonymous")


def cache_key(ctx: RequestContext, scope: str, headers: dict[str, str | None] | None = None) -> str:
    """SHA-256 of the canonical request; see the module docstring for what goes in."""
    assert ctx.route is not None and ctx.body is not None
    model = ctx.route.model
    material: dict[str, Any] = {
        "scope": scope_of(ctx, scope),
        "endpoint": ctx.endpoint,
        "provider": model.provider,
        "model": model.upstream_model,
        "body": {k: v for k, v in ctx.body.items() if k not in _NOT_IN_KEY},
    }
    if headers:
        material["headers"] = headers
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cache_directives(request: web.Request) -> frozenset[str]:
    """The request's ``Cache-Control`` directives, lower-cased."""
    header = request.headers.get("Cache-Control")
    if not header:
        return frozenset()
    return frozenset(part.strip().lower() for part in header.split(","))


async def answer_from_cache(request: web.Request, ctx: RequestContext) -> web.StreamResponse | None:
    """The cached answer, if there is one; otherwise mark the request so forwarding stores its answer."""
    stored = await lookup_cache(request, ctx)
    return None if stored is None else await serve_hit(request, ctx, stored)


async def lookup_cache(request: web.Request, ctx: RequestContext) -> bytes | None:
    """The stored answer for this request (``ctx.cache`` says ``HIT``), or ``None`` (``MISS``/``BYPASS``),
    in which case the request is marked so forwarding stores its answer."""
    cache = request.app[RESPONSE_CACHE]
    if not cache.usable():
        ctx.cache = BYPASS
        return None
    directives = cache_directives(request)
    vary = VARY_HEADERS.get(ctx.endpoint or "")
    headers = {name: request.headers.get(name) for name in vary} if vary else None
    key = cache_key(ctx, cache.settings.scope, headers)  # type: ignore[union-attr]
    if "no-store" not in directives:
        ctx.cache_key = key
    if "no-cache" in directives:
        ctx.cache = BYPASS
        return None
    stored = await cache.get(key)
    if stored is None:
        ctx.cache = MISS if cache.usable() else BYPASS
        return None
    ctx.cache = HIT
    ctx.cache_key = None
    return stored


async def serve_hit(request: web.Request, ctx: RequestContext, stored: bytes) -> web.StreamResponse:
    """Answer from ``stored``, as JSON or replayed as a stream; it costs 0, and what it saved is kept.

    The saving is what the upstream would charge today for the stored answer's usage.
    """
    assert ctx.route is not None
    ctx.use_model(ctx.route.model)
    answer: dict[str, Any] = orjson.loads(stored)
    usage = answer.get("usage")
    ctx.cost_usd = 0.0
    record_saving(ctx, SavingReason.CACHE, price_of_cached(ctx, usage))
    if isinstance(usage, dict):
        usage["cost"] = 0.0
    if not ctx.stream or ctx.endpoint != "chat":
        return web.Response(body=orjson.dumps(answer), content_type="application/json",
                            headers={COST_HEADER: "0"})
    include_usage = include_usage_requested(ctx.body or {})
    response = web.StreamResponse(headers=STREAM_HEADERS)
    await response.prepare(request)
    ctx.mark_first_byte()
    for chunk in replay_chunks(answer, include_usage):
        await response.write(data_event(chunk))
    await response.write(DONE_EVENT)
    await response.write_eof()
    return response


def store_answer(request: web.Request, ctx: RequestContext, body: bytes) -> None:
    """Store a complete answer if this request is meant to be stored and the routed model gave it."""
    if ctx.cache_key is not None and ctx.fallback_from is None:
        request.app[RESPONSE_CACHE].store(ctx.cache_key, body)
