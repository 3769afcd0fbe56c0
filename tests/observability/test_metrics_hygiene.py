"""What a scrape carries besides the gateway's own counts: no ``_created`` series, build info, process metrics.

Read through real scrapes of the metrics port, in both exposition formats,
with one process and with a supervisor over two workers.
"""

from __future__ import annotations

import http.client
import os
import platform
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from proxy import __version__
from proxy.observability.metrics import METRICS_PORT
from tests.conftest import make_config
from tests.observability.test_metrics import Scrape, metered_config
from tests.process import GatewayProcess, free_port, write_config

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}
BUILD_LABELS = {"version": __version__, "python": platform.python_version(),
                "implementation": platform.python_implementation()}
WAIT = 5.0


async def fetch(client: Any, accept: str | None = None) -> str:
    """One scrape of the in-process gateway's metrics port, as text."""
    url = f"http://127.0.0.1:{client.app[METRICS_PORT]}/metrics"
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        assert resp.status == 200
        return await resp.text()


def sample_names(text: str, openmetrics: bool = False) -> set[str]:
    """Every sample name in a scrape."""
    if openmetrics:
        return {s.name for family in openmetrics_families(text) for s in family.samples}
    return {s.name for s in Scrape(text).samples}


async def busy_gateway(gateway: Any, fake_openai: Any) -> Any:
    """An in-process gateway with metrics that has counted every kind of metric at least once."""
    fake, url = fake_openai
    client = await gateway(metered_config(url, caching={"enabled": True},
                                          fallback={"enabled": True, "max_retries": 1, "retry_delay": 0.01}))
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    assert (await client.post("/v1/chat/completions", json=CHAT)).headers["X-Cache"] == "HIT"
    await (await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o", "stream": True})).read()
    fake.script = [500]  # a retry
    retried = {"model": "gpt-4o", "messages": [{"role": "user", "content": "once more"}]}
    assert (await client.post("/v1/chat/completions", json=retried)).headers["X-Gateway-Attempts"] == "2"
    assert (await client.post("/v1/embeddings", json={"model": "mock-embed", "input": "x"})).status == 200
    assert (await client.post("/v1/chat/completions", json={"messages": "bad"})).status == 400
    return client


async def test_no_created_series_in_either_format(gateway, fake_openai) -> None:
    client = await busy_gateway(gateway, fake_openai)
    text = await fetch(client)
    names = sample_names(text)
    assert "llm_gateway_requests_total" in names and "llm_gateway_retries_total" in names
    assert "llm_gateway_request_duration_seconds_bucket" in names
    assert {name for name in names if name.endswith("_created")} == set()

    om_text = await fetch(client, OPENMETRICS)
    om_names = sample_names(om_text, openmetrics=True)
    assert "llm_gateway_requests_total" in om_names
    assert {name for name in om_names if name.endswith("_created")} == set()
    assert "_created" not in text + om_text


async def test_build_info_and_process_metrics_are_served(gateway, fake_openai) -> None:
    client = await busy_gateway(gateway, fake_openai)
    result = Scrape(await fetch(client))
    [build] = [s for s in result.samples if s.name == "llm_gateway_build_info"]
    assert (build.labels, build.value) == (BUILD_LABELS, 1)
    assert result.types["llm_gateway_build_info"] == "gauge"

    assert result.value("process_resident_memory_bytes") > 0
    assert result.value("process_open_fds") > 0
    assert result.types["process_cpu_seconds"] == "counter"
    assert result.value("process_start_time_seconds") == process_start_time(os.getpid())
    assert {s.labels["version"] for s in result.samples if s.name == "python_info"} == {platform.python_version()}
    assert result.label_values("python_gc_collections_total", "generation") == {"0", "1", "2"}


def process_start_time(pid: int) -> float:
    """When ``pid`` started, in Unix seconds, computed the way ``process_start_time_seconds`` is."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().split(b")")[-1].split()
    with open("/proc/stat", "rb") as fh:
        btime = next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))
    return float(fields[19]) / os.sysconf("SC_CLK_TCK") + btime


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    """Gateway processes a test starts; every one is killed in teardown."""
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        gw.kill()


def scrape_text(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read().decode()
    finally:
        conn.close()


def test_with_workers_the_supervisor_serves_build_info_and_its_own_process(
        processes: list[GatewayProcess], tmp_path: Path) -> None:
    if not os.path.exists("/proc/stat"):
        pytest.skip("needs Linux /proc to compute a process's start time")
    port, metrics_port = free_port(), free_port()
    config = make_config(api={"host": "127.0.0.1", "port": port, "workers": 2, "shutdown_timeout": 5},
                         monitoring={"metrics_enabled": True, "prometheus_port": metrics_port})
    gw = GatewayProcess(["--config", str(write_config(tmp_path / "gateway.json", config))], cwd=tmp_path)
    processes.append(gw)
    gw.wait_for("gateway_started", timeout=30, count=2)
    supervisor = gw.wait_for("supervisor_started", timeout=5)["pid"]
    for _ in range(4):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=b'{"messages":[{"role":"user","content":"hi"}]}',
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()

    deadline = time.monotonic() + WAIT
    while True:  # workers hand their counts over every second
        text = scrape_text(metrics_port)
        result = Scrape(text)
        if result.value("llm_gateway_requests_total") == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert result.value("llm_gateway_requests_total") == 4
    [build] = [s for s in result.samples if s.name == "llm_gateway_build_info"]
    assert (build.labels, build.value) == (BUILD_LABELS, 1)
    assert len([s for s in result.samples if s.name == "process_start_time_seconds"]) == 1
    assert result.value("process_start_time_seconds") == process_start_time(supervisor)
    assert result.value("process_resident_memory_bytes") > 0
    assert len([s for s in result.samples if s.name == "python_info"]) == 1
    assert {name for name in sample_names(text) if name.endswith("_created")} == set()

    gw.send(signal.SIGTERM)
    assert gw.wait_exit(timeout=15) == 0
