"""The request observer that turns every finished model request into one ledger record.

It runs on the request path, so it only builds the record and hands it to the
ledger's in-memory queue (:meth:`Ledger.record` never waits and never
raises); the ledger writes in batches off the request path.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from proxy.context import RequestContext
from proxy.ids import unique_id
from proxy.optimise.request_savings import ledger_columns
from proxy.usage.record import UsageRecord

if TYPE_CHECKING:
    from proxy.config import GatewayConfig

RECORDED_ENDPOINTS = frozenset({"chat", "embeddings", "messages"})
"""The endpoints whose requests reach a model, and so get a ledger record (failures included);
``count_tokens`` uses no tokens and costs nothing, so it gets none."""


class RecordSink(Protocol):
    """Where records go (the ledger)."""

    def record(self, record: UsageRecord) -> None: ...


def usage_record(ctx: RequestContext, wall_now: float, perf_now: float) -> UsageRecord:
    """The ledger record of a finished request, from its context."""
    deployment = ctx.deployment
    return UsageRecord(
        record_id=unique_id(),
        request_id=ctx.request_id,
        time=wall_now - (perf_now - ctx.started),
        endpoint=ctx.endpoint or "none",
        status=ctx.status,
        caller=ctx.caller,
        team=ctx.team,
        user=ctx.user,
        agent=ctx.agent,
        task_type=ctx.task_type,
        provider=ctx.provider,
        model=ctx.model,
        upstream_model=deployment.upstream_model if deployment is not None else None,
        prompt_tokens=ctx.prompt_tokens or 0,
        completion_tokens=ctx.completion_tokens or 0,
        cached_tokens=ctx.cached_tokens,
        cache_write_tokens=ctx.cache_write_tokens,
        cost_usd=ctx.cost_usd,
        saved_usd=ctx.saved_usd,
        latency_ms=round((perf_now - ctx.started) * 1000, 3),
        ttft_ms=round((ctx.first_byte_at - ctx.started) * 1000, 3) if ctx.first_byte_at else None,
        error=ctx.error,
        cache=ctx.cache,
        fallback_from=ctx.fallback_from,
        stream=ctx.stream,
        **ledger_columns(ctx),
    )


class LedgerRecorder:
    """A :class:`~proxy.observability.observers.RequestObserver` feeding the usage ledger."""

    __slots__ = ("sink",)

    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink

    def request_started(self, ctx: RequestContext) -> None:
        """Nothing to record yet."""

    def request_finished(self, ctx: RequestContext) -> None:
        """Queue the request's record (model endpoints only)."""
        if ctx.endpoint in RECORDED_ENDPOINTS:
            self.sink.record(usage_record(ctx, time.time(), time.perf_counter()))

    def config_reloaded(self, config: "GatewayConfig | None", ok: bool) -> None:
        """The ledger's settings need a restart; nothing to do."""
