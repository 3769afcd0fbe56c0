"""The in-memory cache backend: bounded, least recently used out first, entries expire."""

from __future__ import annotations

from proxy.cache.backends import MemoryCache


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    cache = MemoryCache(max_entries=2, ttl=60)
    cache.put("a", b"A")
    cache.put("b", b"B")
    assert await cache.get("a") == b"A"  # "a" is now the most recently used
    cache.put("c", b"C")
    assert len(cache) == 2
    assert await cache.get("b") is None
    assert await cache.get("a") == b"A" and await cache.get("c") == b"C"


async def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = MemoryCache(max_entries=10, ttl=30, clock=clock)
    cache.put("k", b"answer")
    clock.now += 29.9
    assert await cache.get("k") == b"answer"
    clock.now += 0.1
    assert await cache.get("k") is None
    assert len(cache) == 0  # an expired entry is dropped when looked up


async def test_storing_again_replaces_the_value_and_restarts_its_ttl() -> None:
    clock = Clock()
    cache = MemoryCache(max_entries=10, ttl=30, clock=clock)
    cache.put("k", b"old")
    clock.now += 20
    cache.put("k", b"new")
    clock.now += 20
    assert await cache.get("k") == b"new"
    assert len(cache) == 1


async def test_a_stored_value_is_an_exact_size_copy() -> None:
    cache = MemoryCache(max_entries=10, ttl=30)
    value = bytearray(b"x" * 100)
    cache.put("k", bytes(value))
    stored = await cache.get("k")
    assert stored == b"x" * 100 and type(stored) is bytes
