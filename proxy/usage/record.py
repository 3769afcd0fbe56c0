"""One usage record: what one model request used and cost, as the ledger stores it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class UsageRecord:
    """One model request (cache hits and failures included), written to the ledger exactly once.

    ``record_id`` is the gateway's own, unique per request and fixed when the
    record is made: the ledger is idempotent on it (a retried or replayed batch
    never doubles a row). ``request_id`` is the id the caller saw
    (``X-Request-Id``), which a caller may reuse, so it is not the key.

    ``time`` is Unix seconds (UTC). Token counts are the upstream's exact
    usage (0 when none was reported); ``cached_tokens`` are prompt tokens read
    from the provider's prompt cache and ``cache_write_tokens`` prompt tokens
    written to it (both are part of ``prompt_tokens``). ``cost_usd`` is
    ``None`` when the model has no price; ``saved_usd`` is what the gateway
    saved in all, and ``saved_<reason>_usd`` the same by reason (``cache``: a
    cache hit, what the upstream would have charged; ``routing``, ``prompt_cache``
    and ``trim``: see :mod:`proxy.optimise.savings`). A record spooled by an
    older gateway, without the per-reason fields, reads with them at 0.
    """

    record_id: str
    request_id: str
    time: float
    endpoint: str
    status: int
    caller: str | None = None
    team: str | None = None
    user: str | None = None
    agent: str | None = None
    task_type: str | None = None
    provider: str | None = None
    model: str | None = None
    upstream_model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None
    saved_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    error: str | None = None
    cache: str | None = None
    fallback_from: str | None = None
    stream: bool = False
    saved_cache_usd: float = 0.0
    saved_routing_usd: float = 0.0
    saved_prompt_cache_usd: float = 0.0
    saved_trim_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict (the spool file's line, a row's values)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "UsageRecord":
        """A record from :meth:`as_dict`'s output; unknown keys are ignored."""
        return cls(**{name: doc[name] for name in cls.__dataclass_fields__ if name in doc})


FIELDS: tuple[str, ...] = tuple(UsageRecord.__dataclass_fields__)
"""The record's fields, in order: the ledger table's columns have these names."""
