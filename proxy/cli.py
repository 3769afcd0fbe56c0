"""Command line: ``python -m proxy`` / ``llm-gateway``.

The config is ``--config``, else ``$LLM_GATEWAY_CONFIG``, else the default
shipped inside the package (``proxy/defaults/local.json``: the mock provider,
memory only, no keys, loopback), so the command starts from any directory.

Loads the config, refuses unsafe binds, then serves with one worker in this
process or ``api.workers`` processes sharing the port (``SO_REUSEPORT``).
SIGTERM or SIGINT drains: no new connections, in-flight requests and streams
get ``api.shutdown_timeout`` seconds to finish, then exit 0. SIGHUP reloads
the config.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from importlib import resources
from typing import Any, Callable, Mapping

from aiohttp import web

from proxy import __version__
from proxy.api.server import GatewayRunner
from proxy.app import create_app
from proxy.config import ConfigError, GatewayConfig, load_config, with_api_overrides
from proxy.config.reload import WATCHER
from proxy.lifecycle import LIFECYCLE
from proxy.observability.logs import log_event, setup_logging, stop_logging
from proxy.observability.metrics import start_supervisor_metrics
from proxy.pipeline.auth import unsafe_bind_reason
from proxy.state import STATE
from proxy.usage.store import LedgerError

CONFIG_ENV = "LLM_GATEWAY_CONFIG"
QUICK_DEATH_SECONDS = 2.0
MAX_QUICK_DEATHS = 5
DEFAULT_CONFIG = ("defaults", "local.json")
"""The packaged default config, inside the ``proxy`` package (a copy of ``config/local.json``)."""

_EXTRACTED = contextlib.ExitStack()  # the default, copied out of a zipped package, until exit
atexit.register(_EXTRACTED.close)


def _default_resource() -> Any:
    resource = resources.files("proxy")
    for part in DEFAULT_CONFIG:
        resource = resource.joinpath(part)
    return resource


def default_config_label() -> str:
    """Where the packaged default is, for ``--help``: its file path when the package is on disk."""
    resource = _default_resource()
    if isinstance(resource, os.PathLike):
        return os.fspath(resource)
    return "proxy/" + "/".join(DEFAULT_CONFIG) + " inside the installed package"


def default_config_path() -> str:
    """The packaged default config as a real file path (the reload watcher polls a path).

    A package on disk (editable or installed) has the file itself; a zipped one
    gets a temporary copy that lasts as long as this process.
    """
    resource = _default_resource()
    if isinstance(resource, os.PathLike):
        return os.fspath(resource)
    return os.fspath(_EXTRACTED.enter_context(resources.as_file(resource)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's options; ``config`` is resolved to the file that will be read."""
    parser = argparse.ArgumentParser(prog="llm-gateway", description="OpenAI-compatible LLM gateway")
    parser.add_argument("--config", metavar="PATH",
                        help=f"config file (default: ${CONFIG_ENV} if set, else the packaged default "
                             f"{default_config_label()}: the mock provider, no keys, loopback only)")
    parser.add_argument("--host", help="listen address (overrides api.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides api.port; 0 picks a free one)")
    parser.add_argument("--workers", type=int, help="worker processes (overrides api.workers)")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--version", action="version", version=f"llm-gateway {__version__}")
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = os.environ.get(CONFIG_ENV) or default_config_path()
    return args


def api_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``api`` fields the command line sets."""
    return {k: v for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
            if v is not None}


def effective_config(args: argparse.Namespace) -> GatewayConfig:
    """The config file with command-line overrides applied."""
    return with_api_overrides(load_config(args.config), api_overrides(args))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["usage"]:  # ``llm-gateway usage ...``: who spent what (proxy/usage/report.py)
        from proxy.usage.report import main as usage_main

        return usage_main(argv[1:])
    args = parse_args(argv)
    try:
        config = effective_config(args)
    except ConfigError as exc:
        print(f"llm-gateway: {exc}", file=sys.stderr)
        return 2
    problem = unsafe_bind_reason(config.auth, config.api.host)
    if problem:
        print(f"llm-gateway: {problem}", file=sys.stderr)
        return 2
    if args.check:
        print(f"llm-gateway: {args.config} is valid")
        return 0
    if config.api.workers > 1:
        return supervise(args, config)
    return run_worker(args, reuse_port=False)


def run_worker(args: argparse.Namespace, reuse_port: bool) -> int:
    """Serve in this process until SIGTERM or SIGINT."""
    config = effective_config(args)
    setup_logging(config.monitoring.log_level)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory(config.api.event_loop)) as runner:
            runner.run(serve(config, os.path.abspath(args.config), reuse_port, api_overrides(args)))
    except LedgerError as exc:  # the usage ledger cannot be opened: refuse to start without it
        log_event("gateway_failed", logging.ERROR, error=str(exc))
        print(f"llm-gateway: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        log_event("gateway_failed", logging.ERROR,
                  error=f"cannot listen on {config.api.host}:{config.api.port}: {exc.strerror or exc}")
        return 1
    finally:
        stop_logging()
    return 0


async def serve(config: GatewayConfig, config_path: str | None, reuse_port: bool = False,
                overrides: Mapping[str, Any] | None = None) -> None:
    """Run the gateway until a stop signal, then drain and clean up."""
    api = config.api
    app = create_app(config, config_path=config_path, bind_host=api.host, overrides=overrides)
    # aiohttp's own shutdown wait is kept short: the drain below is what honours the grace period.
    runner = GatewayRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None,
                           keepalive_timeout=api.idle_timeout)
    try:
        await runner.setup()
        site = web.TCPSite(runner, api.host, api.port, reuse_port=reuse_port or None, backlog=2048)
        await site.start()
    except BaseException:
        await runner.cleanup()  # whatever start-up opened (ledger, pool) is closed again
        raise
    stop = asyncio.Event()
    _install_signal_handlers(app, stop)
    tune_gc()
    log_event("gateway_started", host=api.host, port=site.port, pid=os.getpid(), version=__version__,
              config=config_path, providers=sorted(config.providers))
    await stop.wait()
    grace = app[STATE].current.config.api.shutdown_timeout
    log_event("gateway_stopping", pid=os.getpid(), grace_seconds=grace,
              in_flight=len(app[LIFECYCLE].in_flight))
    await site.stop()  # no new connections
    assert runner.server is not None
    runner.server.pre_shutdown()  # no new requests on kept-alive connections
    cut = await app[LIFECYCLE].drain(grace)
    await runner.cleanup()
    log_event("gateway_stopped", pid=os.getpid(), cut_at_shutdown=cut)


# Young-generation threshold (CPython's default is 700). Requests free almost
# everything they allocate by reference counting, so the count of tracked objects
# grows only with the requests in flight; at 700, 200 concurrent streams set off
# about 30 collections per round and a full one every few rounds (7 ms of pauses
# per round, measured), at 20,000 about one. Cyclic garbage waits longer, but is
# still bounded by this count.
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Once serving: freeze what was loaded at start-up and collect the young generation less often.

    Everything loaded so far lives as long as the process, so it is moved out of
    the collector's way (``gc.freeze``): collections walk per-request objects only.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _install_signal_handlers(app: web.Application, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher = app[WATCHER]
    if watcher is not None:
        loop.add_signal_handler(signal.SIGHUP, watcher.request_reload)


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for (the default) and installed; else asyncio's own."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None
        return uvloop.new_event_loop
    return None


def _worker_entry(args: argparse.Namespace) -> None:
    raise SystemExit(run_worker(args, reuse_port=True))


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound (not listening) ``SO_REUSEPORT`` socket that fixes the port all workers share.

    With ``--port 0`` this is how the workers agree on one free port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def supervise(args: argparse.Namespace, config: GatewayConfig) -> int:
    """Run ``api.workers`` processes on one port; restart any that dies; pass signals on."""
    setup_logging(config.monitoring.log_level)
    try:
        reserved = reserve_port(config.api.host, config.api.port)
    except OSError as exc:
        log_event("gateway_failed", logging.ERROR,
                  error=f"cannot listen on {config.api.host}:{config.api.port}: {exc.strerror or exc}")
        stop_logging()
        return 1
    args.port = reserved.getsockname()[1]
    try:
        metrics = start_supervisor_metrics(config)
    except OSError as exc:
        reserved.close()
        log_event("gateway_failed", logging.ERROR, error=f"cannot listen for metrics: {exc.strerror or exc}")
        stop_logging()
        return 1
    spawn = multiprocessing.get_context("spawn")
    count = config.api.workers
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        proc = spawn.Process(target=_worker_entry, args=(args,), daemon=False)
        proc.start()
        return proc

    def on_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.pid and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    def on_hup(_signum: int, _frame: object) -> None:
        for proc in workers:
            if proc.pid and proc.is_alive():
                os.kill(proc.pid, signal.SIGHUP)

    workers = [start() for _ in range(count)]
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    log_event("supervisor_started", pid=os.getpid(), workers=count, port=args.port)
    started_at = {proc.pid: time.monotonic() for proc in workers}
    quick_deaths = 0
    failed = False
    while workers:
        time.sleep(0.2)
        for proc in list(workers):
            if proc.is_alive():
                continue
            metrics.worker_exited(proc.pid)
            if stopping:
                workers.remove(proc)
                failed = failed or proc.exitcode not in (0, None)
                continue
            lived = time.monotonic() - started_at.pop(proc.pid, 0.0)
            quick_deaths = quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                log_event("worker_died", logging.ERROR, pid=proc.pid, exitcode=proc.exitcode,
                          note="workers keep dying at start; giving up")
                on_stop(signal.SIGTERM, None)
                failed = True
                continue
            log_event("worker_died", logging.ERROR, pid=proc.pid, exitcode=proc.exitcode,
                      note="restarting it")
            replacement = start()
            started_at[replacement.pid] = time.monotonic()
            workers[workers.index(proc)] = replacement
    reserved.close()
    metrics.close()
    log_event("supervisor_stopped", pid=os.getpid())
    stop_logging()
    return 1 if failed else 0
