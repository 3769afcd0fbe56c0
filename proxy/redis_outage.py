"""Whether a Redis the gateway relies on is down: the one rule the cache and the limits share.

After a failure Redis is left alone for :data:`RETRY_AFTER_FAILURE` seconds, then tried
again; an outage is logged once when it begins (``<subject>_unavailable``, a warning) and
once when Redis answers again (``<subject>_recovered``), and every failure is reported to
``on_error`` (a metric).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from proxy.observability.logs import log_event

RETRY_AFTER_FAILURE = 1.0
"""Seconds Redis is left alone after a failure before it is tried again."""


class RedisOutage:
    """One Redis client's state: up, or down until a moment."""

    __slots__ = ("_subject", "_note", "_on_error", "_down", "_down_until")

    def __init__(self, subject: str, note: str, on_error: Callable[[], None] | None = None) -> None:
        self._subject = subject  # "cache" or "limits": the events' prefix
        self._note = note  # what the gateway does meanwhile, in the warning
        self._on_error = on_error
        self._down = False
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        """False while Redis is considered down."""
        return not self._down or time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        """A call failed: count it, rest Redis, and warn if this begins an outage."""
        if self._on_error is not None:
            self._on_error()
        self._down_until = time.monotonic() + RETRY_AFTER_FAILURE
        if not self._down:
            self._down = True
            log_event(f"{self._subject}_unavailable", logging.WARNING, backend="redis",
                      error=type(exc).__name__, note=self._note)

    def recovered(self) -> None:
        """A call succeeded: say so if this ends an outage."""
        if self._down:
            self._down = False
            log_event(f"{self._subject}_recovered", backend="redis")
