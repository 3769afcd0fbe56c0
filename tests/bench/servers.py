"""Start the three servers under test: the upstream, the floor and the gateway.

The gateway runs as the real ``python -m proxy`` with every layer on: caller
auth, an ``openai`` provider pointed at the bench upstream, Prometheus metrics
on a port of its own, the in-memory response cache, and JSON logs at INFO
written to a file.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.procs import Child, Procs, free_port

REPO = Path(__file__).resolve().parents[2]
API_KEY = "bench-caller-key-7f3a"
MODEL = "bench-model"
MESSAGES_MODEL = "bench-claude"
"""The model of the gateway's ``anthropic`` provider (the bench upstream's ``/v1/messages``)."""
WITH_LEDGER = True
"""Whether the gateway under test writes the SQLite usage ledger (``--no-ledger`` turns it off)."""
LIMITS_BACKEND: str | None = "memory"
"""Where the bench key's limits are counted: ``memory`` (the default), ``redis`` (``--redis-limits``,
the Redis at 127.0.0.1:6379) or None (``--no-limits``: the key has no limits)."""
REDIS_URL = "redis://127.0.0.1:6379/0"
WITH_TRACING = False
"""Whether the gateway exports OpenTelemetry traces (``--tracing``; to the bench upstream's ``/v1/traces``)."""
BENCH_LIMITS = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "max_parallel": 100_000,
                "budget": {"usd": 100_000, "period": "day"}}
"""Limits the load never reaches, so every request is checked, reserved and settled and none refused."""
START_TIMEOUT = 30.0


@dataclass
class Server:
    """A started server: its process, where it listens, and (gateway) its files."""

    name: str
    child: Child
    port: int
    metrics_port: int | None = None
    config_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_url(self) -> str:
        return self.url + "/v1/chat/completions"

    @property
    def messages_url(self) -> str:
        return self.url + "/v1/messages"

    def rss_mb(self) -> float:
        """RSS of the whole process group (one process unless it has workers), in MB."""
        return self.child.group_rss_kb() / 1024


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LLM_GATEWAY_CONFIG", None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _listening(line: dict[str, Any]) -> bool:
    return line.get("event") == "listening"


def start_upstream(procs: Procs, chunks: int = 20, delay_ms: float = 10.0) -> Server:
    """The fast local upstream (``tests/bench/upstream.py``)."""
    child = procs.spawn("upstream", [sys.executable, "-m", "tests.bench.upstream", "--port", "0",
                                     "--chunks", str(chunks), "--delay-ms", str(delay_ms)],
                        env=_child_env(), cwd=str(REPO))
    port = int(child.wait_for(_listening, START_TIMEOUT)[0]["port"])
    return Server("upstream", child, port)


def start_floor(procs: Procs, upstream: Server) -> Server:
    """The bare pass-through floor (``tests/bench/floor.py``)."""
    child = procs.spawn("floor", [sys.executable, "-m", "tests.bench.floor", "--port", "0",
                                  "--upstream", upstream.url], env=_child_env(), cwd=str(REPO))
    port = int(child.wait_for(_listening, START_TIMEOUT)[0]["port"])
    return Server("floor", child, port)


def gateway_config(upstream: Server, metrics_port: int, workers: int = 1,
                   max_in_flight: int | None = None) -> dict[str, Any]:
    """A config with every layer on, pointed at the bench upstream: caller keys, validation,
    routing, the memory cache, metrics, JSON logs, cost (a configured price), the SQLite
    usage ledger (``usage.db`` in the run's temp dir, beside the config) and the key's limits
    and budget (in memory, or in Redis)."""
    api: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "workers": workers, "timeout": 60,
                           "shutdown_timeout": 2}
    if max_in_flight is not None:
        api["max_in_flight"] = max_in_flight
    return {
        "api": api,
        "providers": {
            "bench": {"type": "openai", "api_key": "sk-bench-upstream", "base_url": upstream.url + "/v1",
                      "models": {MODEL: {"pricing": {"input": 2.5, "output": 10, "cached_input": 1.25}},
                                 # the routing phase's dearer candidate (unused by the other phases)
                                 "bench-model-dear": {"upstream_model": MODEL,
                                                      "pricing": {"input": 10, "output": 30}}}},
            # the Messages phase's native path (unused by the other phases)
            "bench-anthropic": {"type": "anthropic", "api_key": "sk-bench-upstream", "base_url": upstream.url,
                                "models": {MESSAGES_MODEL: {"pricing": {"input": 3, "output": 15,
                                                                        "cached_input": 0.3}}}},
        },
        "routing": {"default_provider": "bench", "default_model": MODEL, "routing_rules": [
            {"task_type": "bench-single", "provider": "bench", "model": MODEL},
            {"task_type": "bench-cheapest", "models": [f"bench/{MODEL}", "bench/bench-model-dear"],
             "strategy": "cheapest"}]},
        "caching": {"enabled": True},
        "monitoring": {"metrics_enabled": True, "prometheus_port": metrics_port, "log_level": "INFO",
                       **({"tracing": {"otlp_endpoint": upstream.url + "/v1/traces"}} if WITH_TRACING else {})},
        "auth": {"keys": [{"name": "bench", "key": API_KEY,
                           **({"limits": BENCH_LIMITS} if LIMITS_BACKEND else {})}]},
        **({"usage": {"database": "sqlite:///usage.db"}} if WITH_LEDGER else {}),
        # several workers must share their counts: limits then live in Redis whatever LIMITS_BACKEND says
        **({"limits": {"redis_url": REDIS_URL}}
           if LIMITS_BACKEND == "redis" or (LIMITS_BACKEND and workers > 1) else {}),
    }


def start_gateway(procs: Procs, upstream: Server, name: str = "gateway", workers: int = 1,
                  max_in_flight: int | None = None) -> Server:
    """``python -m proxy`` on a fresh config; its JSON log lines go to ``<name>.out``."""
    metrics_port = free_port()
    config_path = procs.workdir / f"{name}.json"
    config_path.write_text(json.dumps(gateway_config(upstream, metrics_port, workers, max_in_flight), indent=2))
    child = procs.spawn(name, [sys.executable, "-m", "proxy", "--config", str(config_path), "--port", "0"],
                        env=_child_env(), cwd=str(REPO))
    started = child.wait_for(lambda line: line.get("event") == "gateway_started", START_TIMEOUT, count=workers)
    return Server(name, child, int(started[0]["port"]), metrics_port, config_path)


def check_layers(gateway: Server) -> list[str]:
    """Problems with the layers that should be on (empty when all are): auth, cache, cost, metrics,
    logs, the usage ledger."""
    problems = []
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "layer check"}]}).encode()

    def post(key: str | None) -> tuple[int, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(gateway.chat_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers)

    if post(None)[0] != 401:
        problems.append("auth: a request without the key was not refused with 401")
    status, headers = post(API_KEY)
    if status != 200:
        problems.append(f"chat: status {status} with the key")
    if headers.get("X-Cache") not in ("MISS", "HIT"):
        problems.append(f"cache: X-Cache is {headers.get('X-Cache')!r}")
    if "X-Gateway-Cost" not in headers:
        problems.append("cost: no X-Gateway-Cost header")
    if LIMITS_BACKEND and "x-ratelimit-remaining-requests" not in headers:
        problems.append("limits: no x-ratelimit-remaining-requests header")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10) as resp:
            if b"llm_gateway_requests_total" not in resp.read():
                problems.append("metrics: llm_gateway_requests_total missing")
    except OSError as exc:
        problems.append(f"metrics: {exc}")
    try:
        gateway.child.wait_for(lambda line: line.get("event") == "request", 5.0)
    except RuntimeError:
        problems.append("logs: no request log line")
    if WITH_LEDGER and gateway.config_path is not None and not (gateway.config_path.parent / "usage.db").exists():
        problems.append("usage ledger: no usage.db beside the config")
    return problems
