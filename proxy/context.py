"""The per-request record that each pipeline stage reads and fills in."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from proxy.config import AuthKey, ModelConfig
    from proxy.limits.model import Reservation
    from proxy.pipeline.routing import Route
    from proxy.state import GatewayState

@dataclass(slots=True)
class RequestContext:
    """What the gateway knows about one request, from arrival to the log line."""

    request_id: str
    state: "GatewayState"
    started: float = field(default_factory=time.perf_counter)
    endpoint: str | None = None
    caller: str | None = None
    team: str | None = None
    admin: bool = False  # the caller's key is marked ``admin`` in ``auth.keys``
    key: "AuthKey | None" = None  # the caller's configured key (None with auth off)
    body: dict[str, Any] | None = None
    body_bytes: int = 0  # the request body's size
    task_type: str | None = None
    user: str | None = None
    agent: str | None = None
    route: "Route | None" = None
    provider: str | None = None
    model: str | None = None
    stream: bool = False
    status: int = 0
    error: str | None = None
    cache: str | None = None
    cache_key: str | None = None
    deployment: "ModelConfig | None" = None  # the model the request is for, then the one that answered
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0  # prompt tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to it
    cost_usd: float | None = None  # None: not priced (no upstream usage yet, or a model with no price)
    saved_usd: float = 0.0  # what the gateway saved this request, all reasons together
    saved: dict[str, float] | None = None  # the same by reason (proxy/optimise/savings.py), nonzero ones only
    strategy: str | None = None  # the routing strategy that chose among several candidates
    skipped: str | None = None  # the candidates passed over: "provider/model=reason, ..."
    trimmed: int | None = None  # messages dropped to fit the chosen model's window
    trimmed_tokens: int = 0  # their estimated (or counted) prompt tokens
    open_attempt: tuple[str, float] | None = None  # a stream still in flight: (provider/model, started)
    first_byte_at: float | None = None
    fallback_from: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    reservation: "Reservation | None" = None  # what the request holds against its limits
    limit_headers: dict[str, str] | None = None  # x-ratelimit-* for the answer
    limited_by: tuple[str, str, str] | None = None  # (scope, name, limit) that refused it
    notes: list[str] = field(default_factory=list)
    trace: Any = None  # the request's trace context when tracing is on (proxy/observability/tracing.py)

    def use_model(self, model: "ModelConfig") -> None:
        """The model the request is (now) for: the routed one, then the one that answered."""
        self.provider, self.model, self.deployment = model.provider, model.name, model

    def mark_first_byte(self) -> None:
        """Record when the first byte of the answer went to the caller."""
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()



CONTEXT_KEY = web.RequestKey("gateway_context", RequestContext)
