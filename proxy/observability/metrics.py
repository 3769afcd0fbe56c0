"""Prometheus metrics: what the gateway counts, and the ``/metrics`` listener.

:class:`GatewayMetrics` is a request observer (see :mod:`proxy.observability.observers`):
it turns each finished request's context into counters and histograms, and
follows circuit breakers and config reloads. Every label has a bounded set of
values: providers and models are configured names, task types are the ones
routing rules name (anything else is ``unknown``), error codes outside the
gateway's own set are ``other``.

One process (``api.workers`` = 1): :func:`install_metrics` starts an aiohttp
listener on ``monitoring.prometheus_port`` serving ``GET /metrics``.

Several workers: the supervisor calls :func:`start_supervisor_metrics` before
spawning them. It points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory,
so each worker (a spawned process, started after that) writes its values to
files there and opens no listener; the supervisor alone serves the port and
sums the files on each scrape (``MultiProcessCollector``).

Hygiene: no ``_created`` series at all (:func:`disable_created_metrics` at
import, before any metric exists; the multiprocess files never hold them);
``llm_gateway_build_info`` (value 1, the version in its labels) and the
process's own ``process_*``, ``python_info`` and ``python_gc_*`` series on the
registry that is served: the gateway's own with one process, the
supervisor's with several workers (there they describe the supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
from bisect import bisect_left
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable
from wsgiref.simple_server import WSGIServer

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from proxy import __version__
from proxy.api.server import BIND_HOST
from proxy.cache.store import RESPONSE_CACHE
from proxy.errors import ErrorCode
from proxy.observability.logs import error_summary, log_event
from proxy.observability.observers import OBSERVERS
from proxy.optimise.savings import SavingReason
from proxy.upstream.breakers import STATE_VALUES
from proxy.upstream.health import UPSTREAM_HEALTH

if TYPE_CHECKING:
    from proxy.config import GatewayConfig
    from proxy.context import RequestContext
    from proxy.upstream.breakers import BreakerBoard


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SUPERVISED_ENV = "LLM_GATEWAY_METRICS_SUPERVISED"
"""Set (to ``1``) in a worker whose supervisor serves the metrics port."""

METRICS = web.AppKey("metrics", "GatewayMetrics")
METRICS_PORT = web.AppKey("metrics_port", int)
"""The port the ``/metrics`` listener is bound to (useful with ``prometheus_port: 0``)."""

NONE = "none"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LEDGER_RESULTS = ("queued", "written", "spooled", "dropped")
FLUSH_INTERVAL = 1.0
"""Seconds between hand-overs of gathered updates to prometheus_client (see :class:`_Child`)."""

BUILD_INFO = "llm_gateway_build_info"

disable_created_metrics()  # before any metric is made: ``_created`` series are never made at all

KNOWN_ERROR_CODES = frozenset(ErrorCode)
"""Error codes the gateway itself produces; any other code is counted as ``other``."""


def error_label(code: Any) -> str:
    """``code`` if it is one of the gateway's own error codes, else ``other``."""
    return code if isinstance(code, str) and code in KNOWN_ERROR_CODES else "other"


def status_class(status: int) -> str:
    """``2xx`` for 200..299 and so on; ``none`` for a status that is not HTTP's."""
    return f"{status // 100}xx" if 100 <= status <= 599 else NONE


def task_type_label(task_type: Any, config: "GatewayConfig") -> str:
    """A task type a routing rule names (or ``general``) as is; ``none`` if absent; else ``unknown``."""
    if task_type is None:
        return NONE
    if isinstance(task_type, str) and (task_type == "general" or task_type in config.routing.rules):
        return task_type
    return "unknown"


def build_labels() -> dict[str, str]:
    """The labels of ``llm_gateway_build_info``: the gateway's version and the Python running it."""
    return {"version": __version__, "python": platform.python_version(),
            "implementation": platform.python_implementation()}


class BuildInfoCollector:
    """Yields ``llm_gateway_build_info`` (value 1); a collector, so it needs no multiprocess file."""

    def __init__(self) -> None:
        self._labels = build_labels()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The one sample."""
        family = GaugeMetricFamily(BUILD_INFO, "The gateway's build: its version and the Python "
                                   "it runs on, in the labels; always 1.", labels=list(self._labels))
        family.add_metric(list(self._labels.values()), 1)
        yield family


def add_runtime_collectors(registry: CollectorRegistry) -> None:
    """Put build info and this process's ``process_*``, ``python_info`` and ``python_gc_*`` on ``registry``."""
    registry.register(BuildInfoCollector())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class _Child:
    """One labelled child whose updates gather in plain numbers until :meth:`flush`.

    Counting a request touches about a dozen values; through prometheus_client
    each update takes a lock (and, with several workers, writes a memory-mapped
    file), and ``Counter.inc``/``Histogram.observe`` re-check the metric's
    labels every time. Here an update is one addition to a Python number, and
    :meth:`flush` hands the totals to the library's own value objects: before
    every scrape (one process), and every :data:`FLUSH_INTERVAL` seconds and at
    shutdown (so several workers' files are at most that much behind). Scrapes
    read exactly what the public methods would have written;
    ``tests/test_metrics.py`` reads them through real scrapes.
    """

    __slots__ = ("metric", "_value", "_sum", "_bounds", "_buckets", "_pending", "_pending_sum", "_counts")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._value = getattr(metric, "_value", None)
        self._sum = getattr(metric, "_sum", None)
        self._bounds = list(getattr(metric, "_upper_bounds", ()))
        self._buckets = [bucket.inc for bucket in getattr(metric, "_buckets", ())]
        self._pending = 0.0
        self._pending_sum = 0.0
        self._counts = [0] * len(self._buckets)

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (counters and gauges)."""
        self._pending += amount

    def dec(self, amount: float = 1) -> None:
        """Take ``amount`` away (gauges)."""
        self._pending -= amount

    def set(self, value: float) -> None:
        """Set a gauge, at once."""
        self._pending = 0.0
        self._value.set(value)

    def observe(self, amount: float) -> None:
        """Count one observation into its bucket (histograms)."""
        self._pending_sum += amount
        self._counts[bisect_left(self._bounds, amount)] += 1

    def flush(self) -> None:
        """Hand what gathered since the last flush to the library's values."""
        if self._pending:
            pending, self._pending = self._pending, 0.0
            self._value.inc(pending)
        counts = self._counts
        if self._buckets and any(counts):
            pending_sum, self._pending_sum = self._pending_sum, 0.0
            self._sum.inc(pending_sum)
            for index, count in enumerate(counts):
                if count:
                    counts[index] = 0
                    self._buckets[index](count)


class _Family:
    """A labelled metric with its children cached by label values (all bounded)."""

    __slots__ = ("metric", "_children")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], _Child] = {}

    def __contains__(self, values: tuple[str, ...]) -> bool:
        return values in self._children

    def __call__(self, *values: str) -> _Child:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Child(self.metric.labels(*values))
        return child

    def flush(self) -> None:
        """Flush every child."""
        for child in list(self._children.values()):
            child.flush()


class GatewayMetrics:
    """Every gateway metric, in its own registry; a :class:`~proxy.observability.observers.RequestObserver`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._board: "BreakerBoard | None" = None
        self._ledger_stats: Any = None
        self._ledger_seen: dict[str, int] = {}
        self._limiter: Any = None
        self._limits_errors_seen = 0
        self._families: list[_Family] = []
        self._make_request_metrics()
        self._make_upstream_metrics()
        self._make_state_metrics()
        self._make_cost_metrics()
        self._make_limit_metrics()
        add_runtime_collectors(self.registry)

    # ------------------------------------------------------------- definitions

    def _family(self, kind: type, name: str, doc: str, labels: Iterable[str], **options: Any) -> _Family:
        family = _Family(kind(name, doc, list(labels), registry=self.registry, **options))
        self._families.append(family)
        return family

    def flush(self) -> None:
        """Hand every gathered update to prometheus_client (see :class:`_Child`)."""
        self._count_ledger()
        self._show_limits()
        for family in self._families:
            family.flush()

    def follow_ledger(self, stats: Any) -> None:
        """Count the usage ledger's records (``stats``: its counters since start) from now on."""
        self._ledger_stats = stats
        self._ledger_seen = dict.fromkeys(LEDGER_RESULTS, 0)

    def follow_limits(self, limiter: Any) -> None:
        """Show ``limiter``'s budget levels and count its backend's failures from now on."""
        self._limiter = limiter
        self._limits_errors_seen = limiter.backend_errors

    def _show_limits(self) -> None:
        limiter = self._limiter
        if limiter is None:
            return
        for (scope, name), (spent, limit) in list(limiter.levels.items()):
            self.budget_spent(scope, name).set(spent)
            self.budget_limit(scope, name).set(limit)
        errors = limiter.backend_errors
        if errors > self._limits_errors_seen:
            self.limits_errors.inc(errors - self._limits_errors_seen)
            self._limits_errors_seen = errors

    def _count_ledger(self) -> None:
        stats = self._ledger_stats
        if stats is None:
            return
        for result in LEDGER_RESULTS:
            now = getattr(stats, result)
            if now > self._ledger_seen[result]:
                self.usage_records(result).inc(now - self._ledger_seen[result])
                self._ledger_seen[result] = now

    def _make_request_metrics(self) -> None:
        self.requests = self._family(Counter, "llm_gateway_requests_total", "Requests answered.",
                                     ("provider", "model", "task_type", "endpoint", "status_class"))
        self.duration = self._family(Histogram, "llm_gateway_request_duration_seconds",
                                     "Time from a request's arrival to its last byte.",
                                     ("provider", "model", "endpoint"), buckets=LATENCY_BUCKETS)
        self.tokens = self._family(Counter, "llm_gateway_tokens_total", "Tokens reported by upstreams.",
                                   ("provider", "model", "task_type", "kind"))
        self.errors = self._family(Counter, "llm_gateway_errors_total", "Requests that ended in an error.",
                                   ("provider", "model", "endpoint", "code"))
        self.cache_hits = self._family(Counter, "llm_gateway_cache_hits_total",
                                       "Requests answered from the response cache.", ("endpoint",))
        self.cache_misses = self._family(Counter, "llm_gateway_cache_misses_total",
                                         "Cacheable requests the response cache could not answer.",
                                         ("endpoint",))
        self.ttft = self._family(Histogram, "llm_gateway_time_to_first_token_seconds",
                                 "Streams: time from a request's arrival to its first byte.",
                                 ("provider", "model"), buckets=TTFT_BUCKETS)
        self.overhead = self._family(Histogram, "llm_gateway_overhead_seconds",
                                     "The gateway's own time: latency (to the first byte for streams) "
                                     "minus the time spent in upstream attempts.",
                                     ("endpoint",), buckets=OVERHEAD_BUCKETS)
        self.in_flight = self._family(Gauge, "llm_gateway_requests_in_flight", "Requests being handled.",
                                      ("endpoint",), multiprocess_mode="livesum")

    def _make_upstream_metrics(self) -> None:
        self.upstream = self._family(Histogram, "llm_gateway_upstream_duration_seconds",
                                     "Duration of each upstream attempt.",
                                     ("provider", "model", "outcome"), buckets=LATENCY_BUCKETS)
        self.retries = self._family(Counter, "llm_gateway_retries_total",
                                    "Attempts beyond the first on the same upstream model.",
                                    ("provider", "model"))
        self.fallbacks = self._family(Counter, "llm_gateway_fallbacks_total",
                                      "Requests answered by another model than the first planned "
                                      "(labelled with the first planned one).", ("provider", "model"))
        self.breaker = self._family(Gauge, "llm_gateway_circuit_breaker_state",
                                    "Circuit breaker state: 0 closed, 1 half_open, 2 open "
                                    "(with several workers, the worst).",
                                    ("provider", "model"), multiprocess_mode="livemax")

    def _make_state_metrics(self) -> None:
        self.cache_errors = Counter("llm_gateway_cache_errors_total",
                                    "Cache backend errors (the request then went uncached).",
                                    registry=self.registry)
        self.reloads = self._family(Counter, "llm_gateway_config_reloads_total",
                                    "Config reloads attempted, by result.", ("result",))
        self.last_reload = Gauge("llm_gateway_config_last_reload_timestamp_seconds",
                                 "Unix time the config in force was loaded.",
                                 registry=self.registry, multiprocess_mode="max")

    def _make_cost_metrics(self) -> None:
        self.cost = self._family(Counter, "llm_gateway_cost_usd_total",
                                 "What requests cost, in USD, at the answering model's price.",
                                 ("provider", "model", "task_type", "caller", "team"))
        self.cache_saved = self._family(Counter, "llm_gateway_cache_saved_usd_total",
                                        "What cache hits saved: the upstream's price of the cached usage.",
                                        ("provider", "model"))
        self.saved = self._family(Counter, "llm_gateway_saved_usd_total",
                                  "What the gateway saved, in USD, by reason: cache (cached answers), routing "
                                  "(a rule's strategy over its dearest candidate), prompt_cache (provider cache "
                                  "reads), trim (dropped messages).", ("reason",))
        for reason in SavingReason:  # every reason shows from the start, at 0
            self.saved(reason.value)
        self.unpriced = self._family(Counter, "llm_gateway_unpriced_requests_total",
                                     "Answered requests whose model has no price (their cost is null).",
                                     ("provider", "model"))
        self.usage_records = self._family(Counter, "llm_gateway_usage_records_total",
                                          "Usage ledger records, by what became of them.", ("result",))

    def _make_limit_metrics(self) -> None:
        self.limit_rejections = self._family(Counter, "llm_gateway_limit_rejections_total",
                                             "Requests refused by a key's or a team's limit.",
                                             ("scope", "name", "limit"))
        self.budget_spent = self._family(Gauge, "llm_gateway_budget_spent_usd",
                                         "USD spent (settled and reserved) in the budget's current period.",
                                         ("scope", "name"), multiprocess_mode="livemax")
        self.budget_limit = self._family(Gauge, "llm_gateway_budget_limit_usd",
                                         "The budget's USD limit per period.",
                                         ("scope", "name"), multiprocess_mode="livemax")
        self.limits_errors = Counter("llm_gateway_limits_backend_errors_total",
                                     "Failures of the limits' Redis (requests then follow "
                                     "limits.on_backend_error).", registry=self.registry)

    # --------------------------------------------------------------- observer

    def request_started(self, ctx: "RequestContext") -> None:
        """Count the request as in flight."""
        self.in_flight(ctx.endpoint or NONE).inc()

    def request_finished(self, ctx: "RequestContext") -> None:
        """Account for a finished request; never raises (it runs on the request path)."""
        try:
            self._finished(ctx, time.perf_counter())
        except Exception as exc:  # a metrics bug must never fail a request
            log_event("internal_error", logging.ERROR, request_id=ctx.request_id,
                      exception=error_summary(exc), note="metrics failed")

    def config_reloaded(self, config: "GatewayConfig | None", ok: bool) -> None:
        """Count the reload; on success, stamp the time and follow the new models' breakers."""
        self.reloads("success" if ok else "failure").inc()
        if ok and config is not None:
            self.last_reload.set(time.time())
            if self._board is not None:
                self._show_breakers(config, self._board)

    def breaker_changed(self, provider: str, model: str, state: str) -> None:
        """``BreakerBoard.on_change``: show the breaker's new state."""
        self.breaker(provider, model).set(STATE_VALUES[state])

    def follow_breakers(self, config: "GatewayConfig", board: "BreakerBoard") -> None:
        """Show every configured model's breaker from now on, and each change of state."""
        self._board = board
        self._show_breakers(config, board)
        board.on_change = self.breaker_changed

    def _show_breakers(self, config: "GatewayConfig", board: "BreakerBoard") -> None:
        """Give each configured model not shown yet its breaker's state (closed if it has none)."""
        states = board.states()
        for provider in config.providers.values():
            for model in provider.models:
                key = (provider.name, model)
                if key not in self.breaker:
                    self.breaker_changed(*key, states.get(key, "closed"))

    # ---------------------------------------------------------------- details

    def _finished(self, ctx: "RequestContext", now: float) -> None:
        endpoint = ctx.endpoint or NONE
        self.in_flight(endpoint).dec()
        provider, model = ctx.provider or NONE, ctx.model or NONE
        task = task_type_label(ctx.task_type, ctx.state.config)
        self.requests(provider, model, task, endpoint, status_class(ctx.status)).inc()
        self.duration(provider, model, endpoint).observe(now - ctx.started)
        if ctx.error is not None:
            self.errors(provider, model, endpoint, error_label(ctx.error)).inc()
            if ctx.limited_by is not None:
                self.limit_rejections(*ctx.limited_by).inc()
        self._count_tokens(ctx, provider, model, task)
        self._count_cost(ctx, provider, model, task)
        self._count_cache(ctx.cache, endpoint)
        if ctx.attempts:
            self._count_attempts(ctx, endpoint, now)

    def _count_cost(self, ctx: "RequestContext", provider: str, model: str, task: str) -> None:
        if ctx.cost_usd:
            self.cost(provider, model, task, ctx.caller or NONE, ctx.team or NONE).inc(ctx.cost_usd)
        elif ctx.cost_usd is None and ctx.prompt_tokens is not None:
            self.unpriced(provider, model).inc()  # usage came back, but nothing to price it with
        if ctx.saved_usd and ctx.cache == "HIT":
            self.cache_saved(provider, model).inc(ctx.saved_usd)
        if ctx.saved:
            for reason, amount in ctx.saved.items():
                self.saved(reason).inc(amount)

    def _count_tokens(self, ctx: "RequestContext", provider: str, model: str, task: str) -> None:
        for kind, count in (("prompt", ctx.prompt_tokens), ("completion", ctx.completion_tokens)):
            if isinstance(count, int) and count > 0:
                self.tokens(provider, model, task, kind).inc(count)

    def _count_cache(self, cache: str | None, endpoint: str) -> None:
        if cache == "HIT":
            self.cache_hits(endpoint).inc()
        elif cache == "MISS":
            self.cache_misses(endpoint).inc()

    def _count_attempts(self, ctx: "RequestContext", endpoint: str, now: float) -> None:
        upstream_seconds = 0.0
        for attempt in ctx.attempts:
            seconds = attempt["ms"] / 1000
            upstream_seconds += seconds
            outcome = attempt["outcome"] if attempt["outcome"] in ("ok", "cancelled") else "error"
            self.upstream(attempt["provider"], attempt["model"], outcome).observe(seconds)
        if len(ctx.attempts) > 1:
            for (provider, model), group in groupby(ctx.attempts, lambda a: (a["provider"], a["model"])):
                extra = sum(1 for _ in group) - 1
                if extra:
                    self.retries(provider, model).inc(extra)
        if ctx.fallback_from:
            provider, _, model = ctx.fallback_from.partition("/")
            self.fallbacks(provider, model).inc()
        measured_to = now
        if ctx.stream and ctx.first_byte_at is not None:
            measured_to = ctx.first_byte_at
            self.ttft(ctx.provider or NONE, ctx.model or NONE).observe(ctx.first_byte_at - ctx.started)
        self.overhead(endpoint).observe(max(0.0, measured_to - ctx.started - upstream_seconds))


# ------------------------------------------------------------ the /metrics listener


def metrics_app(registry: CollectorRegistry, before_scrape: Callable[[], None] | None = None) -> web.Application:
    """A small app serving ``registry`` at ``GET /metrics`` in Prometheus' text format.

    ``before_scrape`` runs on the event loop before each scrape (to flush gathered updates).
    """

    async def scrape(request: web.Request) -> web.Response:
        if before_scrape is not None:
            before_scrape()
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encoder, registry)  # collecting may read files: off the loop
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


def install_metrics(app: web.Application, config: "GatewayConfig") -> GatewayMetrics | None:
    """Wire metrics into the gateway ``app`` when ``monitoring.metrics_enabled``; else do nothing.

    Adds a :class:`GatewayMetrics` observer, follows the circuit breakers from
    start-up, and (unless a supervisor serves the port) opens the ``/metrics``
    listener on start-up and closes it on clean-up.
    """
    if not config.monitoring.metrics_enabled:
        return None
    metrics = GatewayMetrics()
    app[METRICS] = metrics
    app[OBSERVERS].append(metrics)
    metrics.last_reload.set(time.time())

    async def follow_breakers(app: web.Application) -> None:
        metrics.follow_breakers(config, app[UPSTREAM_HEALTH].breakers)
        app[RESPONSE_CACHE].on_error = metrics.cache_errors.inc

    app.on_startup.append(follow_breakers)
    app.cleanup_ctx.append(_flushing(metrics))
    if not os.environ.get(SUPERVISED_ENV):
        _add_listener(app, metrics.registry, config.monitoring.prometheus_port, metrics.flush)
    return metrics


def _flushing(metrics: GatewayMetrics) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context flushing ``metrics`` every :data:`FLUSH_INTERVAL` seconds, and once at the end."""

    async def flush_periodically() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            metrics.flush()

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(flush_periodically())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        metrics.flush()

    return context


def _add_listener(app: web.Application, registry: CollectorRegistry, port: int,
                  before_scrape: Callable[[], None]) -> None:
    """Serve ``registry`` on ``port`` (at the gateway's bind address) while ``app`` runs."""
    runner = web.AppRunner(metrics_app(registry, before_scrape), access_log=None)

    async def start(app: web.Application) -> None:
        await runner.setup()
        site = web.TCPSite(runner, app[BIND_HOST], port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        app[METRICS_PORT] = runner.addresses[0][1]

    async def stop(app: web.Application) -> None:
        await runner.cleanup()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


# ------------------------------------------------------------ several workers


def prepare_multiprocess_dir() -> str:
    """Make a fresh directory for the workers' metric files and point the environment at it.

    Call before spawning workers: they inherit ``PROMETHEUS_MULTIPROC_DIR``
    and the flag that tells them not to open the metrics port themselves.
    """
    path = tempfile.mkdtemp(prefix="llm-gateway-metrics-")
    os.environ[MULTIPROC_ENV] = path
    os.environ[SUPERVISED_ENV] = "1"
    return path


def serve_multiprocess_metrics(host: str, port: int, path: str) -> WSGIServer:
    """Serve the sum of every worker's metrics (files under ``path``) on a background thread,
    with the supervisor's own build info and process metrics."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    add_runtime_collectors(registry)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def cleanup_multiprocess_dir(path: str) -> None:
    """Remove the metric files and the environment variables :func:`prepare_multiprocess_dir` set."""
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == path:
        del os.environ[MULTIPROC_ENV]
        os.environ.pop(SUPERVISED_ENV, None)


@dataclass(slots=True)
class SupervisorMetrics:
    """The supervisor's part: the workers' metric files and the listener that sums them.

    Inert (no directory, no listener) when metrics are disabled, so the
    supervisor can call its methods unconditionally.
    """

    path: str | None = None
    server: WSGIServer | None = None

    @property
    def port(self) -> int | None:
        """The port the listener is bound to, if there is one."""
        return self.server.server_address[1] if self.server is not None else None

    def worker_exited(self, pid: int | None) -> None:
        """A worker is gone: drop its live gauges (in flight, breakers); its counts stay."""
        if self.path is not None and pid:
            mark_process_dead(pid, self.path)

    def close(self) -> None:
        """Stop serving and remove the metric files."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.path is not None:
            cleanup_multiprocess_dir(self.path)
            self.path = None


def start_supervisor_metrics(config: "GatewayConfig") -> SupervisorMetrics:
    """With ``monitoring.metrics_enabled``, prepare the workers' directory and serve the port.

    Call before spawning workers. Raises ``OSError`` (after cleaning up) when
    the port cannot be bound. With metrics disabled, returns an inert object.
    """
    if not config.monitoring.metrics_enabled:
        return SupervisorMetrics()
    path = prepare_multiprocess_dir()
    try:
        server = serve_multiprocess_metrics(config.api.host, config.monitoring.prometheus_port, path)
    except OSError:
        cleanup_multiprocess_dir(path)
        raise
    return SupervisorMetrics(path, server)
