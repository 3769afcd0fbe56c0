"""Where cached answers live: a bounded in-process LRU, or Redis.

Both store opaque bytes under a string key with a TTL. The Redis backend
never lets Redis trouble reach a caller: an error or a slow answer counts as
a miss, the backend marks itself down (one warning), stops asking Redis for a
second, then tries again, and says so when Redis is back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from lru import LRU

from proxy.config import CachingConfig
from proxy.redis_outage import RedisOutage

KEY_PREFIX = "llmgw:v1:"


class MemoryCache:
    """A bounded LRU with per-entry expiry, in this process only.

    Entries live in lru-dict's ``LRU`` (written in C: a lookup costs about 0.1 µs
    and a store at capacity 0.4 µs, where cachetools' ``TTLCache`` took 0.7 and
    2 µs), each with the time it expires; an expired entry counts as absent and
    is dropped when looked up, or pushed out as the least recently used.
    """

    name = "memory"

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries = LRU(max_entries)
        self._ttl = ttl
        self._clock = clock

    @property
    def available(self) -> bool:
        """Always: memory does not go away."""
        return True

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` if absent or expired."""
        return self.lookup(key)

    def lookup(self, key: str) -> bytes | None:
        """The value, or ``None`` if absent or expired (no waiting: memory)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(key, None)
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value``; the TTL is the cache's own (set at construction)."""
        self.put(key, value)

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` at once (memory needs no waiting).

        An exact-size copy is kept: orjson's output carries a spare buffer of
        about 4 KiB, which for 10,000 short answers is 40 MB of nothing.
        """
        self._entries[key] = (self._clock() + self._ttl, memoryview(value).tobytes())

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release."""


class RedisCache:
    """Redis, with short timeouts and a circuit that skips Redis while it is down."""

    name = "redis"

    def __init__(self, url: str, timeout: float = 0.25,
                 on_error: Callable[[], None] | None = None) -> None:
        import redis.asyncio as aioredis  # only a gateway configured for Redis pays for the import

        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
            health_check_interval=0)
        self._outage = RedisOutage("cache", "answering uncached until Redis is back", on_error)

    @property
    def available(self) -> bool:
        """False while Redis is considered down (then requests go uncached)."""
        return self._outage.available

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` on a miss or any Redis trouble."""
        if not self.available:
            return None
        try:
            value = await self._client.get(KEY_PREFIX + key)
        except (_redis_error(), OSError, asyncio.TimeoutError) as exc:
            self._outage.failed(exc)
            return None
        self._outage.recovered()
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (atomically: SET with EX); errors are swallowed."""
        if not self.available:
            return
        try:
            await self._client.set(KEY_PREFIX + key, value, px=max(1, int(ttl * 1000)))
        except (_redis_error(), OSError, asyncio.TimeoutError) as exc:
            self._outage.failed(exc)
            return
        self._outage.recovered()

    async def close(self) -> None:
        """Close the connection pool (for at most 5 s: a stop never waits on Redis for long)."""
        try:
            async with asyncio.timeout(5.0):
                await self._client.aclose()
        except TimeoutError:
            pass


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


def build_backend(caching: CachingConfig, on_error: Callable[[], None] | None = None) -> MemoryCache | RedisCache:
    """The backend the ``caching`` section asks for: Redis with a URL, else memory."""
    if caching.redis_url:
        return RedisCache(caching.redis_url, on_error=on_error)
    return MemoryCache(caching.max_entries, caching.ttl)
