"""Rotate a provider's upstream keys; rest a key that drew a 429.

Keys are held in memory only, indexed by their position's SHA-256 so that no
structure that might be logged or exported holds a key itself.
"""

from __future__ import annotations

import functools
import hashlib
import time
from typing import Sequence


@functools.lru_cache(maxsize=1024)
def key_id(key: str) -> str:
    """A short, non-reversible name for a key (safe to log)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class KeyRing:
    """Round-robin over one provider's keys, skipping keys that are resting."""

    __slots__ = ("_next", "_resting_until")

    def __init__(self) -> None:
        self._next = 0
        self._resting_until: dict[str, float] = {}

    def pick(self, keys: Sequence[str], now: float | None = None) -> str | None:
        """The next key that is not resting, or ``None`` if all are."""
        if not keys:
            return None
        now = time.monotonic() if now is None else now
        for offset in range(len(keys)):
            key = keys[(self._next + offset) % len(keys)]
            until = self._resting_until.get(key_id(key))
            if until is None or until <= now:
                self._next = (self._next + offset + 1) % len(keys)
                return key
        return None

    def rest(self, key: str, seconds: float, now: float | None = None) -> None:
        """Keep ``key`` out of rotation for ``seconds``."""
        now = time.monotonic() if now is None else now
        self._resting_until[key_id(key)] = now + max(seconds, 0.0)

    def ready_in(self, keys: Sequence[str], now: float | None = None) -> float:
        """Seconds until some key is usable again (0 if one is now)."""
        now = time.monotonic() if now is None else now
        waits = [max(0.0, self._resting_until.get(key_id(k), now) - now) for k in keys]
        return min(waits) if waits else 0.0


class KeyRings:
    """One :class:`KeyRing` per provider name; survives reloads."""

    def __init__(self) -> None:
        self._rings: dict[str, KeyRing] = {}

    def for_provider(self, name: str) -> KeyRing:
        """The ring of provider ``name``."""
        ring = self._rings.get(name)
        if ring is None:
            ring = self._rings[name] = KeyRing()
        return ring
