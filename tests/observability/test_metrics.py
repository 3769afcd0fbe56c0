"""Prometheus metrics, read the way Prometheus reads them: a real scrape of the metrics port.

The gateway runs in-process on a config with ``monitoring.metrics_enabled``
and ``prometheus_port: 0``; each test drives it with requests (to the mock
provider or fake OpenAI upstreams) and then scrapes ``GET /metrics`` over
HTTP and parses the text with ``prometheus_client``'s own parser. The last
test runs the real ``python -m proxy`` with two workers and checks that one
scrape sums both.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.app import create_app
from proxy.config import load_config, parse_config
from proxy.observability.metrics import FLUSH_INTERVAL, METRICS, METRICS_PORT
from tests.conftest import make_config
from tests.fakes import FakeOpenAI
from tests.process import GatewayProcess, free_port, write_config

MONITORING = {"metrics_enabled": True, "prometheus_port": 0}
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}
SPEC_FAMILIES = {
    "llm_gateway_requests": "counter",
    "llm_gateway_request_duration_seconds": "histogram",
    "llm_gateway_tokens": "counter",
    "llm_gateway_errors": "counter",
    "llm_gateway_cache_hits": "counter",
    "llm_gateway_cache_misses": "counter",
}
WAIT = 5.0  # seconds: the bound on every wait for something to happen


class Scrape:
    """One parsed scrape: sum samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.samples: list[Any] = []
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.samples.extend(family.samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value ``label`` takes on the samples called ``name``."""
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


async def scrape(client: Any) -> Scrape:
    """``GET /metrics`` on the gateway's metrics port, parsed."""
    url = f"http://127.0.0.1:{client.app[METRICS_PORT]}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return Scrape(await resp.text())


async def scrape_until(client: Any, predicate: Any) -> Scrape:
    """Scrape until ``predicate(scrape)`` holds (at most ``WAIT`` seconds); return that scrape."""
    deadline = time.monotonic() + WAIT
    while True:
        result = await scrape(client)
        if predicate(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.02)


def metered_config(upstream_url: str | None = None, **sections: Any) -> dict[str, Any]:
    """The shared test config with metrics on, on a free port."""
    return make_config(upstream_url, monitoring=MONITORING, **sections)


@pytest.fixture
def metered(aiohttp_client: Any) -> Any:
    """Start the gateway in-process with metrics; ``start(config_dict_or_path, **create_app_options)``."""

    async def start(config: dict[str, Any] | Path, **options: Any) -> Any:
        loaded = load_config(config) if isinstance(config, Path) else parse_config(config)
        return await aiohttp_client(create_app(loaded, **options))

    return start


# ------------------------------------------------------------------ requests


async def test_the_spec_metrics_are_exposed_before_any_request(metered) -> None:
    client = await metered(metered_config())
    result = await scrape(client)
    for name, kind in SPEC_FAMILIES.items():
        assert result.types.get(name) == kind, f"{name} missing or not a {kind}: {result.types}"


async def test_requests_durations_and_tokens_are_counted(metered) -> None:
    client = await metered(metered_config())
    prompt = completion = 0
    for i in range(3):
        resp = await client.post("/v1/chat/completions",
                                 json={"messages": [{"role": "user", "content": f"question {i} " * (i + 1)}]})
        assert resp.status == 200
        usage = (await resp.json())["usage"]
        prompt, completion = prompt + usage["prompt_tokens"], completion + usage["completion_tokens"]
    resp = await client.post("/v1/embeddings", json={"model": "mock-embed", "input": "embed me"})
    assert resp.status == 200
    embed_prompt = (await resp.json())["usage"]["prompt_tokens"]

    result = await scrape(client)
    chat = {"provider": "mock", "model": "mock-gpt"}
    assert result.value("llm_gateway_requests_total", **chat, task_type="none", endpoint="chat",
                        status_class="2xx") == 3
    assert result.value("llm_gateway_requests_total", provider="mock", model="mock-embed",
                        endpoint="embeddings", status_class="2xx") == 1
    assert result.value("llm_gateway_request_duration_seconds_count", **chat, endpoint="chat") == 3
    assert result.value("llm_gateway_tokens_total", **chat, kind="prompt") == prompt
    assert result.value("llm_gateway_tokens_total", **chat, kind="completion") == completion
    assert result.value("llm_gateway_tokens_total", model="mock-embed", kind="prompt") == embed_prompt
    assert result.value("llm_gateway_upstream_duration_seconds_count", **chat, outcome="ok") == 3
    assert result.value("llm_gateway_overhead_seconds_count") == 4  # every request that went upstream
    assert result.value("llm_gateway_errors_total") == 0
    assert result.value("llm_gateway_requests_in_flight") == 0


async def test_counts_reach_the_registry_without_a_scrape_and_at_shutdown(metered) -> None:
    # What a supervisor sums (the workers' metric files) is each worker's registry, which
    # no scrape of the worker flushes: counts must reach it on their own, and at shutdown.
    client = await metered(metered_config())
    registry = client.app[METRICS].registry
    labels = {"provider": "mock", "model": "mock-gpt", "task_type": "none", "endpoint": "chat",
              "status_class": "2xx"}

    async def post() -> None:
        resp = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert resp.status == 200

    await post()
    deadline = time.monotonic() + FLUSH_INTERVAL + WAIT
    while registry.get_sample_value("llm_gateway_requests_total", labels) != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert registry.get_sample_value("llm_gateway_requests_total", labels) == 1
    await post()
    await client.close()  # runs the app's cleanup
    assert registry.get_sample_value("llm_gateway_requests_total", labels) == 2


async def test_errors_are_counted_by_bounded_code(metered, fake_openai) -> None:
    fake, url = fake_openai
    client = await metered(metered_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"})
    assert resp.status == 404
    resp = await client.post("/v1/chat/completions", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    fake.script = [500]  # upstream failure, no fallback configured
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
    assert resp.status == 502
    fake.script = [422]  # the upstream's own code ("fake_failure") is passed back to the caller
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "fake_failure"

    result = await scrape(client)
    errors = "llm_gateway_errors_total"
    assert result.value(errors, code="model_not_found", endpoint="chat", provider="none") == 1
    assert result.value(errors, code="invalid_json") == 1
    assert result.value(errors, code="upstream_error", provider="openai", model="gpt-4o") == 1
    assert result.value(errors, code="other", provider="openai", model="gpt-4o") == 1
    assert result.label_values(errors, "code") == {"model_not_found", "invalid_json", "upstream_error", "other"}
    assert result.value("llm_gateway_requests_total", status_class="4xx") == 3
    assert result.value("llm_gateway_requests_total", status_class="5xx") == 1
    assert result.value("llm_gateway_upstream_duration_seconds_count", outcome="error") == 2


async def test_a_stream_records_time_to_first_token_and_its_usage(metered, fake_openai) -> None:
    fake, url = fake_openai
    client = await metered(metered_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o", "stream": True})
    assert resp.status == 200
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})  # not a stream
    assert resp.status == 200

    result = await scrape(client)
    labels = {"provider": "openai", "model": "gpt-4o"}
    assert result.value("llm_gateway_time_to_first_token_seconds_count", **labels) == 1
    assert result.value("llm_gateway_time_to_first_token_seconds_sum", **labels) > 0
    assert result.value("llm_gateway_tokens_total", **labels, kind="prompt") == 2 * fake.usage["prompt_tokens"]
    assert result.value("llm_gateway_tokens_total", **labels, kind="completion") == (
        2 * fake.usage["completion_tokens"])
    assert result.value("llm_gateway_requests_total", **labels, status_class="2xx") == 2


async def test_in_flight_counts_a_waiting_request_and_returns_to_zero(metered, fake_openai) -> None:
    fake, url = fake_openai
    fake.script = ["hang"]
    client = await metered(metered_config(url))
    waiting = asyncio.create_task(client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}))
    in_flight = "llm_gateway_requests_in_flight"
    result = await scrape_until(client, lambda r: r.value(in_flight, endpoint="chat") == 1)
    assert result.value(in_flight, endpoint="chat") == 1
    waiting.cancel()  # the caller gives up: the gateway cancels the request
    with pytest.raises(asyncio.CancelledError):
        await waiting
    result = await scrape_until(client, lambda r: r.value("llm_gateway_requests_total") == 1)
    assert result.value(in_flight, endpoint="chat") == 0
    assert result.value("llm_gateway_errors_total", code="client_disconnected") == 1
    assert result.value("llm_gateway_requests_total", status_class="4xx") == 1


async def test_fifty_unknown_task_types_make_one_label(metered) -> None:
    rules = [{"task_type": "summarization", "model": "mock-gpt"}]
    config = metered_config(routing={"default_provider": "mock", "default_model": "mock-gpt",
                                     "routing_rules": rules})
    client = await metered(config)
    for i in range(50):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "task_type": f"made-up-{i}"})
        assert resp.status == 200
    for task_type in ("summarization", "general"):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "task_type": task_type})
        assert resp.status == 200
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200

    result = await scrape(client)
    requests = "llm_gateway_requests_total"
    assert result.label_values(requests, "task_type") == {"unknown", "summarization", "general", "none"}
    assert result.value(requests, task_type="unknown") == 50
    assert result.label_values("llm_gateway_tokens_total", "task_type") == {
        "unknown", "summarization", "general", "none"}


async def test_cache_hits_and_misses_are_counted(metered) -> None:
    client = await metered(metered_config(caching={"enabled": True}))
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json=CHAT)
        assert resp.status == 200
    assert resp.headers.get("X-Cache") == "HIT", "the response cache did not answer the repeat"

    result = await scrape(client)
    assert result.value("llm_gateway_cache_misses_total", endpoint="chat") == 1
    assert result.value("llm_gateway_cache_hits_total", endpoint="chat") == 1


# ------------------------------------------------------------------ resilience


@pytest.fixture
async def two_upstreams(aiohttp_server: Any) -> tuple[FakeOpenAI, FakeOpenAI, dict[str, Any]]:
    """``primary`` serves gpt-4o; ``backup`` serves gpt-4o and cheap; primary/gpt-4o falls back to backup/cheap."""
    primary, backup = FakeOpenAI(reply="from primary"), FakeOpenAI(reply="from backup")
    urls = [str((await aiohttp_server(fake.app())).make_url("/v1")) for fake in (primary, backup)]
    config = metered_config(
        routing={"default_provider": "primary", "default_model": "gpt-4o"},
        fallback={"enabled": True, "max_retries": 1, "retry_delay": 0.01,
                  "fallback_map": {"primary/gpt-4o": ["backup/cheap"]}},
    )
    for name, url, models in (("primary", urls[0], ["gpt-4o"]), ("backup", urls[1], ["gpt-4o", "cheap"])):
        config["providers"][name] = {"type": "openai", "api_key": "sk-upstream-secret", "base_url": url,
                                     "models": {m: {} for m in models}}
    return primary, backup, config


async def test_retries_and_fallbacks_are_counted(metered, two_upstreams) -> None:
    primary, _backup, config = two_upstreams
    client = await metered(config)
    primary.script = [500]  # one retry on primary, then primary answers
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200 and resp.headers["X-Gateway-Attempts"] == "2"
    primary.script = [500, 500]  # primary fails twice: backup/cheap answers
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200 and resp.headers["X-Gateway-Fallback"] == "primary/gpt-4o"

    result = await scrape(client)
    first = {"provider": "primary", "model": "gpt-4o"}
    assert result.value("llm_gateway_retries_total", **first) == 2
    assert result.value("llm_gateway_retries_total") == 2
    assert result.value("llm_gateway_fallbacks_total", **first) == 1
    assert result.value("llm_gateway_fallbacks_total") == 1
    assert result.value("llm_gateway_requests_total", **first, status_class="2xx") == 1
    assert result.value("llm_gateway_requests_total", provider="backup", model="cheap") == 1
    assert result.value("llm_gateway_upstream_duration_seconds_count", **first, outcome="error") == 3
    assert result.value("llm_gateway_upstream_duration_seconds_count", outcome="ok") == 2


async def test_breaker_gauge_shows_an_open_breaker(metered, fake_openai) -> None:
    fake, url = fake_openai
    fake.fail_status = 500
    config = metered_config(url, fallback={"enabled": True, "max_retries": 0,
                                           "circuit_breaker": {"failure_threshold": 2, "cooldown": 60}})
    client = await metered(config)
    state = "llm_gateway_circuit_breaker_state"
    result = await scrape(client)
    assert result.value(state, provider="openai", model="gpt-4o") == 0  # every configured model, closed
    assert result.value(state, provider="mock", model="mock-gpt") == 0
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
        assert resp.status >= 500

    result = await scrape(client)
    assert result.value(state, provider="openai", model="gpt-4o") == 2
    assert result.value(state, provider="mock", model="mock-gpt") == 0
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
    assert resp.status == 503 and len(fake.received) == 2  # skipped while open


# ------------------------------------------------------------------ reloads and the listener


async def test_config_reloads_are_counted(metered, tmp_path: Path) -> None:
    path = write_config(tmp_path / "gateway.json", metered_config())
    client = await metered(path, config_path=str(path), watch_interval=0.05)
    reloads, stamp = "llm_gateway_config_reloads_total", "llm_gateway_config_last_reload_timestamp_seconds"
    before = await scrape(client)
    assert before.value(reloads) == 0 and before.value(stamp) > 0  # the time the config was loaded

    changed = metered_config()
    changed["providers"]["mock"]["models"]["mock-new"] = {}
    write_config(path, changed)
    after = await scrape_until(client, lambda r: r.value(reloads, result="success") == 1)
    assert after.value(reloads, result="success") == 1
    assert after.value(stamp) >= before.value(stamp)
    assert after.value("llm_gateway_circuit_breaker_state", provider="mock", model="mock-new") == 0

    broken = metered_config()
    broken["routing"]["default_model"] = "ghost"
    write_config(path, broken)
    refused = await scrape_until(client, lambda r: r.value(reloads, result="failure") == 1)
    assert refused.value(reloads, result="failure") == 1
    assert refused.value(reloads, result="success") == 1
    assert refused.value(stamp) == after.value(stamp)


async def test_metrics_disabled_opens_no_port(gateway) -> None:
    port = free_port()
    client = await gateway(make_config(monitoring={"metrics_enabled": False, "prometheus_port": port}))
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    assert METRICS not in client.app and METRICS_PORT not in client.app
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/metrics")


async def test_the_listener_serves_only_metrics(metered) -> None:
    client = await metered(metered_config())
    base = f"http://127.0.0.1:{client.app[METRICS_PORT]}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/v1/models") as resp:
            assert resp.status == 404
        async with session.post(f"{base}/metrics") as resp:
            assert resp.status == 405


# ------------------------------------------------------------------ several workers


def _worker_of(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for row in fh.readlines()[1:]:
                fields = row.split()
                local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                if int(local, 16) == server_port and int(remote, 16) == client_port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def _multiproc_dir(pid: int) -> str | None:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        for entry in fh.read().split(b"\0"):
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return entry.split(b"=", 1)[1].decode()
    return None


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    """Gateway processes a test starts; every one is killed in teardown."""
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        gw.kill()


def _scrape_once(port: int) -> Scrape:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        return Scrape(resp.read().decode())
    finally:
        conn.close()


def test_one_scrape_sums_every_worker(processes: list[GatewayProcess], tmp_path: Path) -> None:
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc to see which worker accepted a connection")
    port, metrics_port = free_port(), free_port()
    config = make_config(api={"host": "127.0.0.1", "port": port, "workers": 2, "shutdown_timeout": 5},
                         monitoring={"metrics_enabled": True, "prometheus_port": metrics_port})
    path = write_config(tmp_path / "gateway.json", config)
    gw = GatewayProcess(["--config", str(path)], cwd=tmp_path)
    processes.append(gw)
    gw.wait_for("gateway_started", timeout=30, count=2)
    workers = sorted({line["pid"] for line in gw.lines("gateway_started")})
    assert len(workers) == 2

    served_by = []
    for i in range(60):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection each time
        try:
            conn.request("POST", "/v1/chat/completions", body=json.dumps(CHAT),
                          headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
            served_by.append(_worker_of(conn.sock.getsockname()[1], port, workers))
        finally:
            conn.close()
        if i >= 9 and set(served_by) == set(workers):
            break
    assert set(served_by) == set(workers), f"requests were served by {served_by}"
    metrics_dir = _multiproc_dir(workers[0])
    assert metrics_dir and os.path.isdir(metrics_dir)

    # Workers hand their counts to their metric files every FLUSH_INTERVAL seconds.
    deadline = time.monotonic() + FLUSH_INTERVAL + WAIT
    while True:
        result = _scrape_once(metrics_port)
        if result.value("llm_gateway_requests_total") == len(served_by) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert result.value("llm_gateway_requests_total") == len(served_by)
    assert result.value("llm_gateway_requests_total", provider="mock", model="mock-gpt",
                        endpoint="chat", status_class="2xx") == len(served_by)
    assert result.value("llm_gateway_requests_in_flight") == 0
    assert result.value("llm_gateway_circuit_breaker_state", provider="mock", model="mock-gpt") == 0

    gw.send(signal.SIGTERM)
    assert gw.wait_exit(timeout=15) == 0
    assert not os.path.exists(metrics_dir), "the supervisor left its metric files behind"


async def test_cache_backend_errors_are_counted(metered) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    client = await metered(metered_config(caching={"enabled": True, "redis_url": dead_redis}))
    resp = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 200
    assert resp.headers["X-Cache"] == "BYPASS"
    result = await scrape(client)
    assert result.value("llm_gateway_cache_errors_total") >= 1


# ------------------------------------------------------------------ cost and usage


async def test_cost_savings_and_unpriced_requests_are_counted(metered, tmp_path: Path) -> None:
    config = metered_config(caching={"enabled": True}, usage={"database": f"sqlite:////{tmp_path}/usage.db"},
                            auth={"keys": [{"name": "svc", "key": "sk-metrics-caller-01", "team": "data"}]})
    models = config["providers"]["mock"]["models"]
    models["mock-gpt"]["pricing"] = {"input": 1000, "output": 2000}  # big enough to see in a counter
    models["mock-free"] = {}
    client = await metered(config)
    headers = {"Authorization": "Bearer sk-metrics-caller-01"}
    for _ in range(2):  # a miss, then a hit
        resp = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert resp.status == 200
    cost = float((await client.post("/v1/chat/completions", json={**CHAT, "user": "other"},
                                    headers=headers)).headers["X-Gateway-Cost"])
    unpriced = await client.post("/v1/chat/completions", json={**CHAT, "model": "mock-free"}, headers=headers)
    assert (await unpriced.json())["usage"]["cost"] is None

    result = await scrape_until(client, lambda r: r.value("llm_gateway_usage_records_total", result="written") >= 4)
    spent = result.value("llm_gateway_cost_usd_total", provider="mock", model="mock-gpt", caller="svc", team="data")
    assert spent == pytest.approx(2 * cost)  # the miss and the third request; the hit cost nothing
    assert result.value("llm_gateway_cache_saved_usd_total", provider="mock", model="mock-gpt") == pytest.approx(cost)
    assert result.value("llm_gateway_unpriced_requests_total", provider="mock", model="mock-free") == 1
    assert result.value("llm_gateway_usage_records_total", result="queued") == 4
    assert result.value("llm_gateway_usage_records_total", result="written") == 4
