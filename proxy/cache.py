"""The response cache stage: look answers up after routing, store complete ones.

The key is a SHA-256 over the canonical request: the tenant scope, the
endpoint, the resolved provider and upstream model, and the body with every
field that can change the answer (everything but ``stream`` and
``stream_options``). The scope (``caching.scope``) is the caller's key name
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

import asyncio
import hashlib
from typing import Any, Callable

import orjson
from aiohttp import web

from proxy.cache_backends import MemoryCache, RedisCache, build_backend
from proxy.completions import include_usage_requested, replay_chunks
from proxy.config import CachingConfig
from proxy.context import RequestContext
from proxy.keys import RESPONSE_CACHE
from proxy.sse import DONE_EVENT, STREAM_HEADERS, data_event

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
CACHE_HEADER = "X-Cache"
_NOT_IN_KEY = frozenset({"stream", "stream_options"})


class ResponseCache:
    """The cache backend in use, rebuilt when a reload changes its settings."""

    def __init__(self) -> None:
        self.settings: CachingConfig | None = None
        self.backend: MemoryCache | RedisCache | None = None
        self.errors = 0
        self.on_error: Callable[[], None] | None = None
        self._retired: list[MemoryCache | RedisCache] = []
        self._writes: set[asyncio.Task[None]] = set()

    def configure(self, caching: CachingConfig) -> None:
        """Use ``caching``; a new backend only if where or how long entries live changed."""
        old = self.settings
        self.settings = caching
        if not caching.enabled:
            return
        unchanged = old is not None and old.enabled and (old.redis_url, old.ttl, old.max_entries) == (
            caching.redis_url, caching.ttl, caching.max_entries)
        if self.backend is not None and unchanged:
            return
        if self.backend is not None:
            self._retired.append(self.backend)  # closed at shutdown, never under a request
        self.backend = build_backend(caching, on_error=self._count_error)

    def _count_error(self) -> None:
        self.errors += 1
        if self.on_error is not None:
            self.on_error()

    def usable(self) -> bool:
        """Whether lookups and stores should be attempted now."""
        return bool(self.settings and self.settings.enabled and self.backend is not None
                    and self.backend.available)

    async def get(self, key: str) -> bytes | None:
        """The stored answer for ``key``, if any."""
        backend = self.backend
        assert backend is not None
        if isinstance(backend, MemoryCache):
            return backend.lookup(key)
        return await backend.get(key)

    def store(self, key: str, value: bytes) -> None:
        """Store without making the caller wait: in memory at once, in Redis in the background."""
        if not self.usable() or len(value) > self.settings.max_entry_bytes:  # type: ignore[union-attr]
            return
        backend = self.backend
        if isinstance(backend, MemoryCache):
            backend.put(key, value)
            return
        task = asyncio.get_running_loop().create_task(
            backend.set(key, value, self.settings.ttl))  # type: ignore[union-attr]
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """Finish pending stores, then close every backend."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        for backend in [*self._retired, *([self.backend] if self.backend is not None else [])]:
            await backend.close()


def scope_of(ctx: RequestContext, scope: str) -> str:
    """The tenant a cache entry belongs to."""
    if scope == "global":
        return "global"
    if scope == "team" and ctx.team:
        return "team:" + ctx.team
    return "key:" + (ctx.caller or "anonymous")


def cache_key(ctx: RequestContext, scope: str) -> str:
    """SHA-256 of the canonical request; see the module docstring for what goes in."""
    assert ctx.route is not None and ctx.body is not None
    model = ctx.route.model
    material = {
        "scope": scope_of(ctx, scope),
        "endpoint": ctx.endpoint,
        "provider": model.provider,
        "model": model.upstream_model,
        "body": {k: v for k, v in ctx.body.items() if k not in _NOT_IN_KEY},
    }
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cache_directives(request: web.Request) -> frozenset[str]:
    """The request's ``Cache-Control`` directives, lower-cased."""
    header = request.headers.get("Cache-Control")
    if not header:
        return frozenset()
    return frozenset(part.strip().lower() for part in header.split(","))


async def answer_from_cache(request: web.Request, ctx: RequestContext) -> web.StreamResponse | None:
    """The cached answer, if there is one; otherwise mark the request so forwarding stores its answer."""
    cache = request.app[RESPONSE_CACHE]
    if not cache.usable():
        ctx.cache = BYPASS
        return None
    directives = cache_directives(request)
    key = cache_key(ctx, cache.settings.scope)  # type: ignore[union-attr]
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
    return await serve_hit(request, ctx, stored)


async def serve_hit(request: web.Request, ctx: RequestContext, stored: bytes) -> web.StreamResponse:
    """Answer from ``stored``: as it is, or replayed as a stream."""
    assert ctx.route is not None
    ctx.provider, ctx.model = ctx.route.model.provider, ctx.route.model.name
    if not ctx.stream or ctx.endpoint != "chat":
        return web.Response(body=stored, content_type="application/json")
    answer: dict[str, Any] = orjson.loads(stored)
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
