"""Assemble the aiohttp application: routes, the middleware pipeline, start-up and shutdown."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Mapping

from aiohttp import web

from proxy.api.routes import add_routes
from proxy.api.server import BIND_HOST
from proxy.cache.store import RESPONSE_CACHE, ResponseCache
from proxy.config import GatewayConfig
from proxy.config.reload import WATCHER, ConfigWatcher
from proxy.lifecycle import LIFECYCLE, Lifecycle
from proxy.limits.limiter import LIMITER, Limiter, follow_budget_levels, stop_following
from proxy.limits.rebuild import restore_budgets
from proxy.limits.stage import LimitsSettler
from proxy.observability.metrics import METRICS, install_metrics
from proxy.observability.observers import OBSERVERS
from proxy.pipeline.access_log import access_log_middleware, add_gateway_headers
from proxy.pipeline.middleware import pipeline_middleware
from proxy.state import STATE, StateHolder, build_state
from proxy.upstream.attempt_feed import StreamEnds
from proxy.upstream.health import UPSTREAM_HEALTH, UpstreamHealth
from proxy.upstream.pool import POOL, UpstreamPool
from proxy.usage.costing import warn_unpriced
from proxy.usage.ledger import LEDGER, Ledger
from proxy.usage.query import USAGE_READER, usage_reader_context
from proxy.usage.recorder import LedgerRecorder

PIPELINE = (
    access_log_middleware,  # request id, context, errors, the log line, metrics hook
    pipeline_middleware,  # admission, auth, validation, routing, cache (proxy/pipeline/middleware.py)
)


def create_app(
    config: GatewayConfig,
    *,
    config_path: str | None = None,
    bind_host: str = "127.0.0.1",
    watch_interval: float = 0.5,
    overrides: Mapping[str, Any] | None = None,
) -> web.Application:
    """The gateway as an aiohttp app; upstream sessions open on start-up."""
    app = web.Application(middlewares=PIPELINE)
    app[BIND_HOST] = bind_host
    app[OBSERVERS] = []
    app[WATCHER] = None
    app[LIFECYCLE] = Lifecycle()
    health = UpstreamHealth()
    health.configure(config.fallback)
    app[UPSTREAM_HEALTH] = health
    app[OBSERVERS].append(StreamEnds(health.stats))  # a stream's deployment is in flight until it ends
    response_cache = ResponseCache()
    app[RESPONSE_CACHE] = response_cache
    add_routes(app)
    app.on_response_prepare.append(add_gateway_headers)

    async def open_upstreams(app: web.Application) -> None:
        warn_unpriced(config, "start")
        response_cache.configure(config.caching)
        pool = UpstreamPool(connect_timeout=config.api.connect_timeout)
        app[POOL] = pool
        holder = StateHolder(build_state(config, pool))
        app[STATE] = holder
        if config_path is not None:
            def reloaded(new: GatewayConfig) -> None:
                health.configure(new.fallback)
                response_cache.configure(new.caching)
                warn_unpriced(new, "reload")
                for observer in app[OBSERVERS]:
                    observer.config_reloaded(new, True)

            def refused() -> None:
                for observer in app[OBSERVERS]:
                    observer.config_reloaded(None, False)

            watcher = ConfigWatcher(config_path, holder, pool, bind_host, interval=watch_interval,
                                    on_reload=reloaded, on_failure=refused, overrides=overrides)
            app[WATCHER] = watcher
            watcher.start()

    async def close_upstreams(app: web.Application) -> None:
        watcher = app[WATCHER]
        if watcher is not None:
            await watcher.stop()
        await app[POOL].close()
        await response_cache.close()

    app.on_startup.append(open_upstreams)
    app.on_cleanup.append(close_upstreams)
    if config.usage is not None:
        app.cleanup_ctx.append(usage_ledger(config))
        app.cleanup_ctx.append(usage_reader_context(config.usage))
    app.cleanup_ctx.append(limits_context(config))
    install_metrics(app, config)
    if config.monitoring.tracing is not None:
        from proxy.observability.tracing import install_tracing  # only then: no OpenTelemetry import when off

        install_tracing(app, config.monitoring.tracing)
    return app


def usage_ledger(config: GatewayConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: open the ledger at start (a failure stops the start), close it last.

    Closing flushes what it can within ``api.shutdown_timeout`` (at most 10 s) and spools
    the rest for the next start.
    """
    assert config.usage is not None
    usage = config.usage

    async def context(app: web.Application) -> AsyncIterator[None]:
        ledger = await Ledger.open(usage)
        app[LEDGER] = ledger
        app[OBSERVERS].append(LedgerRecorder(ledger))
        metrics = app.get(METRICS)
        if metrics is not None:
            metrics.follow_ledger(ledger.stats)
        yield
        await ledger.close(timeout=min(10.0, config.api.shutdown_timeout or 1.0))

    return context


def limits_context(config: GatewayConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: the limiter (memory or Redis), its settling observer and its budget gauges;
    with the memory backend, budgets' spend restored from the usage ledger at start."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        limiter = Limiter.for_config(config)
        app[LIMITER] = limiter
        app[OBSERVERS].append(LimitsSettler(limiter))
        reader = app.get(USAGE_READER)
        if reader is not None and config.auth.limited():
            await restore_budgets(limiter, config, reader)
        metrics = app.get(METRICS)
        if metrics is not None:
            metrics.follow_limits(limiter)
        follower = asyncio.get_running_loop().create_task(follow_budget_levels(app, limiter))
        yield
        await stop_following(limiter, follower)
        await limiter.close()

    return context
