"""Ids the gateway makes: request ids for callers and unique ids for its own records.

Neither asks the operating system for random bytes per request (a system call each):
request ids come from a generator seeded once from ``os.urandom``, and record ids are a
per-process random prefix followed by a counter.
"""

from __future__ import annotations

import itertools
import os
import random

_RANDOM = random.Random(os.urandom(32))
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()


def new_request_id() -> str:
    """32 hex characters, random (an ``X-Request-Id`` for a caller that sent none)."""
    return "%032x" % _RANDOM.getrandbits(128)


def unique_id() -> str:
    """An id no other record of any process will have: 16 random hex characters fixed per
    process, then a counter (a collision needs two processes to draw the same 64 bits)."""
    return f"{_PREFIX}{next(_COUNTER):x}"


def reseed_after_fork() -> None:
    """Give a forked child its own prefix and generator (spawned workers get them on import)."""
    global _PREFIX, _COUNTER
    _RANDOM.seed(os.urandom(32))
    _PREFIX = os.urandom(8).hex()
    _COUNTER = itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reseed_after_fork)
