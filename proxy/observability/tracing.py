"""OpenTelemetry traces: one span per request, one per upstream attempt, exported in batches over OTLP/HTTP.

Off unless ``monitoring.tracing.otlp_endpoint`` is set. :mod:`proxy.app`
imports this module only then, so with tracing off no OpenTelemetry code is
loaded and a request pays nothing but one ``ctx.trace is None`` test per
upstream attempt.

How a request to a model endpoint (chat completions, embeddings) is traced:

- :func:`tracing_middleware_for`'s middleware, just inside the access-log
  stage, gives the request its trace context (a :class:`RequestTrace`): the
  caller's trace when its ``traceparent`` is valid (``tracestate`` carried
  along; the request span is its child), else a new trace. Ids come from the
  SDK's ``RandomIdGenerator``; nothing else happens yet.
- Each upstream attempt takes a span id when it begins
  (:meth:`RequestTrace.attempt_started`, called where
  proxy/upstream/forwarding.py builds the attempt's call) and the upstream
  receives it in ``traceparent`` (and ``tracestate``); its end is noted when
  the attempt is recorded (:meth:`RequestTrace.attempt_ended`, from
  proxy/upstream/fallback.py).
- When the request ends (:meth:`GatewayTracer.request_finished`, a request
  observer) its spans are made at once, finished, from what the request's
  context holds, with the ids and times noted on the way: the request's
  ``SERVER`` span and one ``CLIENT`` span per attempt (the stream that
  answered lasts until the stream ended). They go to the SDK's
  ``BatchSpanProcessor`` (a deque append), whose thread exports them with the
  official OTLP/HTTP exporter; a slow or absent collector never delays a
  request.

Spans are made finished (the SDK's ``ReadableSpan``), not opened and closed
through a ``Tracer``: their ids and times are known already, and a live SDK
span costs about ten times as much on the event loop (attribute checks and
locks on every update).

Sampling: a caller's ``traceparent`` decides by its sampled flag; a new trace
is kept with probability ``sample_ratio`` (the SDK's ``TraceIdRatioBased``).
A trace that is not sampled still passes its ``traceparent`` (flag ``00``)
upstream, and exports nothing.

Attributes follow OpenTelemetry's GenAI and HTTP semantic conventions
(:data:`PROVIDER_NAMES` maps provider types to ``gen_ai.provider.name``),
with the gateway's own under ``llm_gateway.*``. Never in a span: an API key
(the caller appears by its key's configured name), a prompt, an answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable
from urllib.parse import urlsplit

from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy import __version__
from proxy.context import CONTEXT_KEY, RequestContext
from proxy.observability.logs import error_summary, log_event
from proxy.observability.observers import OBSERVERS
from proxy.pipeline.access_log import access_log_middleware

if TYPE_CHECKING:
    from proxy.config import GatewayConfig, ModelConfig
    from proxy.config.model import TracingConfig

TRACING = web.AppKey("tracing", "GatewayTracer")
INSTRUMENTATION_NAME = "llm_gateway"
OPERATIONS = {"chat": "chat", "embeddings": "embeddings"}
"""The traced endpoints and their ``gen_ai.operation.name``; other paths (health, models, usage) get no span."""

PROVIDER_NAMES = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic"}
"""``gen_ai.provider.name`` of the provider types the conventions name; any other type is its own name."""

OTHER_ERROR = "_OTHER"
"""``error.type`` when nothing more precise is known (the conventions' fallback value)."""

EXPORT_TIMEOUT = 5.0
"""Seconds one export may take, retries included (so also the longest a shutdown waits for a collector)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.UNSET)
_MAX_MODEL_CHARS = 256

Attributes = dict[str, Any]


class RequestTrace:
    """A traced request's ids and times, noted on the way; its spans are made when it ends."""

    __slots__ = ("tracer", "operation", "method", "route", "trace_id", "span_id", "parent", "sampled", "state",
                 "started", "attempts", "_ends")

    def __init__(self, tracer: "GatewayTracer", operation: str, method: str, route: str, started: int,
                 parent: SpanContext | None, sampled: bool) -> None:
        self.tracer = tracer
        self.operation = operation
        self.method = method
        self.route = route
        self.started = started
        self.parent = parent
        self.sampled = sampled
        self.trace_id = parent.trace_id if parent is not None else _IDS.generate_trace_id()
        self.span_id = _IDS.generate_span_id()
        self.state: TraceState = parent.trace_state if parent is not None else TraceState()
        self.attempts: list[tuple["ModelConfig", int, int]] = []  # (deployment, span id, start ns)
        self._ends: list[int] = []

    def attempt_started(self, deployment: "ModelConfig") -> dict[str, str]:
        """Note an attempt on ``deployment`` beginning now; the headers that carry its span upstream."""
        span_id = _IDS.generate_span_id()
        self.attempts.append((deployment, span_id, time.time_ns()))
        headers = {"traceparent": f"00-{self.trace_id:032x}-{span_id:016x}-{'01' if self.sampled else '00'}"}
        if self.state:
            headers["tracestate"] = self.state.to_header()
        return headers

    def attempt_ended(self) -> None:
        """The attempt started last has its record (proxy/upstream/fallback.py): it ended now."""
        if len(self._ends) < len(self.attempts):
            self._ends.append(time.time_ns())

    def spans(self, ctx: RequestContext) -> list[ReadableSpan]:
        """The request's spans, finished: the request's own last (see the module docstring)."""
        end = time.time_ns()
        tracer = self.tracer
        records, ends = ctx.attempts, self._ends
        parent = self._context(self.span_id)
        spans = []
        for index, (deployment, span_id, started) in enumerate(self.attempts):
            record = records[index] if index < len(records) else None
            answered = record is not None and record["outcome"] == "ok"
            error = attempt_error(ctx, record, answered)
            ended = ends[index] if index < len(ends) and not (answered and ctx.stream) else end
            spans.append(ReadableSpan(
                f"{self.operation} {deployment.upstream_model}", context=self._context(span_id), parent=parent,
                resource=tracer.resource, attributes=attempt_attributes(ctx, deployment, record, index + 1, answered),
                kind=SpanKind.CLIENT, status=_OK if error is None else Status(StatusCode.ERROR, error),
                start_time=started, end_time=max(started, ended), instrumentation_scope=tracer.scope))
        attributes = {"http.request.method": self.method, "http.route": self.route, "url.path": self.route,
                      **request_attributes(ctx, self.operation)}
        error = request_error(ctx)
        status = _OK
        if error is not None:
            attributes["error.type"] = error
            if ctx.status >= 500 or ctx.status < 400:  # a 4xx is the caller's: no error status
                status = Status(StatusCode.ERROR, error)
        spans.append(ReadableSpan(
            f"{self.method} {self.route}", context=parent, parent=self.parent, resource=tracer.resource, attributes=attributes,
            kind=SpanKind.SERVER, status=status, start_time=self.started, end_time=end,
            instrumentation_scope=tracer.scope))
        return spans

    def _context(self, span_id: int) -> SpanContext:
        return SpanContext(self.trace_id, span_id, is_remote=False, trace_flags=_SAMPLED, trace_state=self.state)


def incoming_parent(request: web.Request) -> SpanContext | None:
    """The caller's span from a valid ``traceparent`` (with its ``tracestate``), else ``None``."""
    if "traceparent" not in request.headers:
        return None
    parent = get_current_span(_PROPAGATOR.extract(request.headers)).get_span_context()
    return parent if parent.is_valid else None


# ------------------------------------------------------------------ attributes


def provider_name(config: "GatewayConfig", provider: str) -> str:
    """``gen_ai.provider.name`` for the configured provider called ``provider``."""
    found = config.providers.get(provider)
    kind = found.type if found is not None else provider
    return PROVIDER_NAMES.get(kind, kind)


@functools.lru_cache(maxsize=256)
def server_attributes(base_url: str) -> Attributes:
    """``server.address`` and ``server.port`` of an upstream's base URL (never its user info)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    return {"server.address": parts.hostname, "server.port": port} if parts.hostname else {}


def request_parameters(body: dict[str, Any] | None) -> Attributes:
    """The request's sampling settings, as the GenAI conventions name them (never its messages)."""
    if not body:
        return {}
    attributes: Attributes = {}
    for name, key in (("max_tokens", "max_completion_tokens"), ("max_tokens", "max_tokens"),
                      ("temperature", "temperature"), ("top_p", "top_p")):
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes.setdefault(f"gen_ai.request.{name}", value)
    return attributes


def usage_attributes(ctx: RequestContext) -> Attributes:
    """``gen_ai.usage.*`` from the usage the upstream (or the cache) reported."""
    attributes: Attributes = {}
    if isinstance(ctx.prompt_tokens, int):
        attributes["gen_ai.usage.input_tokens"] = ctx.prompt_tokens
    if isinstance(ctx.completion_tokens, int):
        attributes["gen_ai.usage.output_tokens"] = ctx.completion_tokens
    return attributes


def answered(ctx: RequestContext) -> bool:
    """Whether a model answered: from the cache, or an upstream attempt that succeeded."""
    return ctx.cache == "HIT" or bool(ctx.attempts and ctx.attempts[-1]["outcome"] == "ok")


def requested_model(ctx: RequestContext) -> str | None:
    """The model the caller asked for (``model`` in the body), else the one routing chose."""
    model = ctx.body.get("model") if ctx.body else None
    if isinstance(model, str) and model:
        return model[:_MAX_MODEL_CHARS]
    return ctx.route.model.name if ctx.route is not None else None


def request_attributes(ctx: RequestContext, operation: str) -> Attributes:
    """The request span's attributes."""
    config = ctx.state.config
    attributes: Attributes = {
        "gen_ai.operation.name": operation,
        "http.response.status_code": ctx.status,
        "llm_gateway.request_id": ctx.request_id,
    }
    model = requested_model(ctx)
    if model is not None:
        attributes["gen_ai.request.model"] = model
    if ctx.provider is not None:
        attributes["gen_ai.provider.name"] = provider_name(config, ctx.provider)
        attributes["llm_gateway.provider"] = ctx.provider
    if ctx.model is not None:
        attributes["llm_gateway.model"] = ctx.model
    if ctx.deployment is not None and answered(ctx):
        attributes["gen_ai.response.model"] = ctx.deployment.upstream_model
    attributes.update(request_parameters(ctx.body))
    attributes.update(usage_attributes(ctx))
    optional = (("llm_gateway.cost_usd", ctx.cost_usd), ("llm_gateway.cache", ctx.cache),
                ("llm_gateway.fallback_from", ctx.fallback_from), ("llm_gateway.task_type", ctx.task_type),
                ("llm_gateway.caller", ctx.caller), ("llm_gateway.team", ctx.team))
    attributes.update((name, value) for name, value in optional if value is not None)
    if ctx.saved_usd:
        attributes["llm_gateway.cache_saved_usd"] = ctx.saved_usd
    if ctx.attempts:
        attributes["llm_gateway.attempts"] = len(ctx.attempts)
    if ctx.stream:
        attributes["llm_gateway.stream"] = True
        if ctx.first_byte_at is not None:
            attributes["llm_gateway.time_to_first_token_ms"] = round((ctx.first_byte_at - ctx.started) * 1000, 3)
    return attributes


def attempt_attributes(ctx: RequestContext, deployment: "ModelConfig", record: dict[str, Any] | None,
                       number: int, answered: bool) -> Attributes:
    """An attempt span's attributes; ``record`` is the attempt's entry in ``ctx.attempts``, if it has one."""
    config = ctx.state.config
    attributes: Attributes = {
        "gen_ai.operation.name": OPERATIONS.get(ctx.endpoint or "", "chat"),
        "gen_ai.provider.name": provider_name(config, deployment.provider),
        "gen_ai.request.model": deployment.upstream_model,
        "llm_gateway.provider": deployment.provider,
        "llm_gateway.model": deployment.name,
        "llm_gateway.attempt.number": number,
    }
    provider = config.providers.get(deployment.provider)
    if provider is not None and provider.base_url:
        attributes.update(server_attributes(provider.base_url))
    attributes.update(request_parameters(ctx.body))
    if record is not None:
        attributes["llm_gateway.attempt.outcome"] = record["outcome"]
        attributes["http.response.status_code"] = record["status"]
    if answered:
        attributes["gen_ai.response.model"] = deployment.upstream_model
        attributes.update(usage_attributes(ctx))
        if ctx.stream and record is not None:
            attributes["llm_gateway.attempt.first_chunk_ms"] = record["ms"]
    error = attempt_error(ctx, record, answered)
    if error is not None:
        attributes["error.type"] = error
    return attributes


def attempt_error(ctx: RequestContext, record: dict[str, Any] | None, answered: bool) -> str | None:
    """An attempt's ``error.type``: its outcome when it failed, the stream's failure when it broke later."""
    if record is None:
        return ctx.error or OTHER_ERROR
    if not answered:
        return str(record["outcome"])
    return ctx.error if ctx.stream and ctx.error is not None else None


def request_error(ctx: RequestContext) -> str | None:
    """The request's ``error.type``: the error code it ended with, or its status for an unnamed 5xx."""
    if ctx.error is not None:
        return ctx.error
    return str(ctx.status) if ctx.status >= 500 else None


# ------------------------------------------------------------------ the tracer


class GatewayTracer:
    """The batch exporter and the sampler; a request observer that hands each request's spans over."""

    def __init__(self, settings: "TracingConfig", exporter: SpanExporter | None = None) -> None:
        self.settings = settings
        self._exporter = exporter
        self.processor: BatchSpanProcessor | None = None
        self.resource = Resource.create({"service.name": settings.service_name, "service.version": __version__,
                                         "process.pid": os.getpid()})
        self.scope = InstrumentationScope(INSTRUMENTATION_NAME, __version__)
        ratio = settings.sample_ratio
        self._sampler = TraceIdRatioBased(ratio) if ratio < 1 else None

    def open(self) -> None:
        """Start the exporting thread (at start-up: each worker its own)."""
        exporter = self._exporter or OTLPSpanExporter(endpoint=self.settings.otlp_endpoint, timeout=EXPORT_TIMEOUT)
        self.processor = BatchSpanProcessor(exporter)

    def start(self, request: web.Request, ctx: RequestContext, operation: str) -> RequestTrace:
        """The request's trace context: the caller's trace if it sent a valid ``traceparent``, else a new one."""
        parent = incoming_parent(request)
        started = time.time_ns() - int((time.perf_counter() - ctx.started) * 1e9)
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        if parent is not None:
            return RequestTrace(self, operation, request.method, route, started, parent, parent.trace_flags.sampled)
        trace = RequestTrace(self, operation, request.method, route, started, None, True)
        if self._sampler is not None:
            decision = self._sampler.should_sample(None, trace.trace_id, f"{request.method} {route}").decision
            trace.sampled = decision.is_sampled()
        return trace

    def request_started(self, ctx: RequestContext) -> None:
        """Nothing: the trace starts in the middleware, where the request's headers are."""

    def request_finished(self, ctx: RequestContext) -> None:
        """Hand a sampled request's spans to the exporter; never raises (it runs on the request path)."""
        trace = ctx.trace
        if trace is None or not trace.sampled or self.processor is None:
            return
        try:
            for span in trace.spans(ctx):
                self.processor.on_end(span)
        except Exception as exc:  # a tracing bug must never fail a request
            log_event("internal_error", logging.ERROR, request_id=ctx.request_id,
                      exception=error_summary(exc), note="tracing failed")

    def config_reloaded(self, config: "GatewayConfig | None", ok: bool) -> None:
        """Nothing: a change of ``monitoring.tracing`` needs a restart."""

    def force_flush(self) -> bool:
        """Export every span handed over so far (blocking: call it off the event loop)."""
        return self.processor.force_flush() if self.processor is not None else False

    def close(self) -> None:
        """Export what is left (one export: at most :data:`EXPORT_TIMEOUT` per batch) and stop (blocking)."""
        processor, self.processor = self.processor, None
        if processor is not None:
            processor.shutdown()


def tracing_middleware_for(tracer: GatewayTracer) -> Callable[..., Any]:
    """The middleware that gives a model request its trace context (see the module docstring)."""

    @web.middleware
    async def tracing_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        ctx = request[CONTEXT_KEY]
        operation = OPERATIONS.get(ctx.endpoint or "")
        if operation is not None:
            ctx.trace = tracer.start(request, ctx, operation)
        return await handler(request)

    return tracing_middleware


def _tracer_context(tracer: GatewayTracer) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        tracer.open()
        yield
        await asyncio.to_thread(tracer.close)

    return context


def install_tracing(app: web.Application, settings: "TracingConfig",
                    exporter: SpanExporter | None = None) -> GatewayTracer:
    """Trace ``app``'s model requests to ``settings.otlp_endpoint`` (or to ``exporter``).

    Adds the middleware right inside the access-log stage (so the request's
    context exists and every failure is seen), the observer that makes the
    spans, and a cleanup context that starts the exporter at start-up and
    flushes it at shutdown.
    """
    tracer = GatewayTracer(settings, exporter)
    app[TRACING] = tracer
    app[OBSERVERS].append(tracer)
    position = list(app.middlewares).index(access_log_middleware) + 1
    app.middlewares.insert(position, tracing_middleware_for(tracer))
    app.cleanup_ctx.append(_tracer_context(tracer))
    return tracer
