"""The response cache's store: the backend in use (memory or Redis), kept across reloads.

:class:`ResponseCache` lives on the application (``RESPONSE_CACHE``); a reload
that changes where or how long entries live swaps its backend, and the old one
is closed at shutdown, never under a request.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from aiohttp import web

from proxy.cache.backends import MemoryCache, RedisCache, build_backend
from proxy.config import CachingConfig


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


RESPONSE_CACHE = web.AppKey("response_cache", ResponseCache)
