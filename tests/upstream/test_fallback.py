"""Retries, fallback chains, key rotation and breakers against upstreams that fail for real."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import orjson
import pytest

from proxy.upstream.health import UPSTREAM_HEALTH
from tests.conftest import make_config, sse_data
from tests.fakes import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hello"}]
CHAT = {"messages": MESSAGES}  # the default route: primary/gpt-4o
SPLIT = {"model": "gpt-4o", "messages": MESSAGES}  # both deployments of gpt-4o, by weight


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _provider(url: str, *models: str, **extra) -> dict:
    return {"type": "openai", "api_key": "sk-upstream-secret", "base_url": url,
            "models": {m: {} for m in models}, **extra}


def _config(primary_url: str, backup_url: str, **fallback) -> dict:
    """``primary`` and ``backup`` both serve gpt-4o; backup also serves ``cheap``."""
    config = make_config(
        routing={"default_provider": "primary", "default_model": "gpt-4o"},
        fallback={"enabled": True, "max_retries": 2, "retry_delay": 0.01,
                  "fallback_map": {"primary/gpt-4o": ["backup/cheap"]}, **fallback},
    )
    config["api"]["timeout"] = 5
    config["providers"]["primary"] = _provider(primary_url, "gpt-4o")
    config["providers"]["backup"] = _provider(backup_url, "gpt-4o", "cheap")
    return config


@pytest.fixture
async def upstreams(aiohttp_server):
    """Two fake OpenAI upstreams, ``primary`` and ``backup``, and a config for them."""
    primary, backup = FakeOpenAI(reply="from primary"), FakeOpenAI(reply="from backup")
    primary_server = await aiohttp_server(primary.app())
    backup_server = await aiohttp_server(backup.app())
    return primary, backup, str(primary_server.make_url("/v1")), str(backup_server.make_url("/v1"))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_retryable_statuses_are_retried_on_the_same_upstream(gateway, upstreams, status) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.script = [status]
    client = await gateway(_config(p_url, b_url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "from primary"
    assert resp.headers["X-Gateway-Attempts"] == "2"
    assert "X-Gateway-Fallback" not in resp.headers
    assert len(primary.received) == 2 and backup.received == []


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_client_errors_are_never_retried_nor_fallen_back(gateway, upstreams, status) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.script = [status]
    client = await gateway(_config(p_url, b_url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == status
    assert len(primary.received) == 1 and backup.received == []


@pytest.mark.parametrize("step", ["hang", "malformed"])
async def test_hangs_and_malformed_answers_are_retried(gateway, upstreams, step) -> None:
    primary, _, p_url, b_url = upstreams
    primary.script = [step]
    config = _config(p_url, b_url)
    config["providers"]["primary"]["models"]["gpt-4o"]["timeout"] = 0.3
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert resp.headers["X-Gateway-Attempts"] == "2"


async def test_refused_connection_falls_back_along_the_map(gateway, upstreams) -> None:
    _, backup, _, b_url = upstreams
    client = await gateway(_config(f"http://127.0.0.1:{_free_port()}/v1", b_url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert resp.headers["X-Gateway-Provider"] == "backup"
    assert resp.headers["X-Gateway-Model"] == "cheap"  # the fallback_map entry comes first
    assert resp.headers["X-Gateway-Fallback"] == "primary/gpt-4o"
    assert resp.headers["X-Gateway-Attempts"] == "4"  # 1 + 2 retries on primary, then backup
    assert backup.received[-1].body["model"] == "cheap"
    assert (await resp.json())["provider"] == "backup"


async def test_provider_fallback_comes_after_the_map(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status = 503
    backup.script = [503, 503, 503]  # backup/cheap fails all three attempts
    client = await gateway(_config(p_url, b_url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert (resp.headers["X-Gateway-Provider"], resp.headers["X-Gateway-Model"]) == ("backup", "gpt-4o")
    assert [r.body["model"] for r in backup.received] == ["cheap"] * 3 + ["gpt-4o"]


async def test_everything_failing_is_503_with_retry_after(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status = backup.fail_status = 502
    client = await gateway(_config(p_url, b_url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    error = (await resp.json())["error"]
    assert error["code"] == "upstreams_exhausted"
    assert len(primary.received) == 3 and len(backup.received) == 6


async def test_retry_after_is_honoured_when_it_fits(gateway, upstreams) -> None:
    primary, _, p_url, b_url = upstreams
    primary.script, primary.retry_after = [429], "1"
    client = await gateway(_config(p_url, b_url))
    started = time.perf_counter()
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200 and resp.headers["X-Gateway-Provider"] == "primary"
    assert time.perf_counter() - started >= 1.0


async def test_retry_after_beyond_the_deadline_moves_on(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status, primary.retry_after = 503, "120"
    config = _config(p_url, b_url)
    config["api"]["timeout"] = 3
    client = await gateway(config)
    resp = await asyncio.wait_for(client.post("/v1/chat/completions", json=CHAT), 2.5)
    assert resp.status == 200
    assert resp.headers["X-Gateway-Provider"] == "backup"
    assert len(primary.received) == 1


async def test_one_deadline_bounds_all_attempts(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.script = ["hang"] * 10
    backup.script = ["hang"] * 10
    config = _config(p_url, b_url)
    config["api"]["timeout"] = 1
    client = await gateway(config)
    resp = await asyncio.wait_for(client.post("/v1/chat/completions", json=CHAT), 3)
    assert resp.status in (503, 504)
    assert len(primary.received) + len(backup.received) == 1  # the deadline ran out on the first


async def test_upstream_auth_failure_falls_back_and_marks_the_provider_down(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status = 401
    client = await gateway(_config(p_url, b_url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert resp.headers["X-Gateway-Provider"] == "backup"
    assert len(primary.received) == 1  # no retries with a refused key
    health = await (await client.get("/health")).json()
    assert health["providers"]["primary"] == "unavailable"
    assert health["status"] == "degraded"
    await client.post("/v1/chat/completions", json=CHAT)
    assert len(primary.received) == 1  # skipped while marked down


async def test_keys_rotate_and_a_rate_limited_key_rests(gateway, upstreams) -> None:
    primary, _, p_url, b_url = upstreams
    config = _config(p_url, b_url)
    config["providers"]["primary"]["api_key"] = None
    config["providers"]["primary"]["api_keys"] = ["sk-key-one", "sk-key-two"]
    client = await gateway(config)
    for _ in range(4):
        await client.post("/v1/chat/completions", json=CHAT)
    used = [r.headers["Authorization"] for r in primary.received]
    assert used == ["Bearer sk-key-one", "Bearer sk-key-two"] * 2
    primary.script, primary.retry_after = [429], "60"
    await client.post("/v1/chat/completions", json=CHAT)  # key one draws the 429, key two answers
    primary.retry_after = None
    for _ in range(3):
        await client.post("/v1/chat/completions", json=CHAT)
    later = [r.headers["Authorization"] for r in primary.received[-4:]]
    assert later == ["Bearer sk-key-two"] * 4


async def test_all_keys_resting_answers_429_without_calling_upstream(gateway, upstreams) -> None:
    primary, _, p_url, b_url = upstreams
    config = _config(p_url, b_url, enabled=False)
    client = await gateway(config)
    primary.script, primary.retry_after = [429], "30"
    first = await client.post("/v1/chat/completions", json=CHAT)
    assert first.status == 429
    second = await client.post("/v1/chat/completions", json=CHAT)
    assert second.status == 429
    assert 25 <= int(second.headers["Retry-After"]) <= 30
    assert len(primary.received) == 1


async def test_breaker_opens_skips_then_probes_and_closes(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status = 500
    config = _config(p_url, b_url, max_retries=0, circuit_breaker={"failure_threshold": 3, "cooldown": 0.5})
    client = await gateway(config)
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    assert len(primary.received) == 3
    health = await (await client.get("/health")).json()
    assert health["providers"]["primary"] == "unavailable"
    for _ in range(5):  # open: primary is skipped at no cost
        resp = await client.post("/v1/chat/completions", json=CHAT)
        assert resp.headers["X-Gateway-Provider"] == "backup"
    assert len(primary.received) == 3
    await asyncio.sleep(0.6)
    primary.fail_status = None
    resp = await client.post("/v1/chat/completions", json=CHAT)  # the probe
    assert resp.headers["X-Gateway-Provider"] == "primary"
    assert len(primary.received) == 4
    assert (await (await client.get("/health")).json())["providers"]["primary"] == "available"


async def test_weights_split_traffic_among_healthy_deployments(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    config = _config(p_url, b_url)
    config["providers"]["primary"]["models"]["gpt-4o"]["weight"] = 3
    config["providers"]["backup"]["models"]["gpt-4o"]["weight"] = 1
    client = await gateway(config)
    for _ in range(400):
        await client.post("/v1/chat/completions", json=SPLIT)
    share = len(primary.received) / 400
    assert 0.65 <= share <= 0.85
    breaker = client.app[UPSTREAM_HEALTH].breakers.get("primary", "gpt-4o")
    breaker.trip()
    before = len(primary.received)
    for _ in range(50):
        await client.post("/v1/chat/completions", json=SPLIT)
    assert len(primary.received) == before


async def test_stream_failure_before_first_byte_falls_back(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status = 503
    client = await gateway(_config(p_url, b_url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    assert resp.headers["X-Gateway-Fallback"] == "primary/gpt-4o"
    text = await resp.text()
    assert text.endswith("data: [DONE]\n\n")
    assert "from backup"[:3] in text


@pytest.mark.parametrize("step", ["cut", "stall"])
async def test_stream_failure_after_first_byte_is_not_retried(gateway, upstreams, step) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.script = [step]
    config = _config(p_url, b_url)
    config["providers"]["primary"]["models"]["gpt-4o"]["timeout"] = 0.3
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = sse_data(await resp.text())
    assert "[DONE]" not in events
    assert "error" in orjson.loads(events[-1])
    assert len(primary.received) == 1 and backup.received == []


async def test_attempts_are_in_the_log_line(gateway, upstreams, log_lines) -> None:
    primary, _, p_url, b_url = upstreams
    primary.fail_status = 502
    client = await gateway(_config(p_url, b_url))
    await client.post("/v1/chat/completions", json=CHAT)
    log_lines.flushed()
    line = log_lines.events("request")[0]
    outcomes = [(a["provider"], a["model"], a["outcome"]) for a in line["attempts"]]
    assert outcomes == [("primary", "gpt-4o", "upstream_error")] * 3 + [("backup", "cheap", "ok")]
    assert line["fallback_from"] == "primary/gpt-4o"


async def test_no_storm_when_every_upstream_is_down(gateway, upstreams) -> None:
    primary, backup, p_url, b_url = upstreams
    primary.fail_status = backup.fail_status = 503
    config = _config(p_url, b_url, max_retries=3, circuit_breaker={"failure_threshold": 5, "cooldown": 30})
    client = await gateway(config)
    statuses: Counter[int] = Counter()
    retry_after_missing = 0

    async def one() -> None:
        nonlocal retry_after_missing
        resp = await client.post("/v1/chat/completions", json=CHAT)
        statuses[resp.status] += 1
        retry_after_missing += "Retry-After" not in resp.headers
        await resp.read()

    started = time.perf_counter()
    for _ in range(20):  # 1,000 requests, 50 at a time
        await asyncio.gather(*(one() for _ in range(50)))
    elapsed = time.perf_counter() - started
    sent_upstream = len(primary.received) + len(backup.received)
    naive = 1000 * (1 + 3) * 3  # every attempt of every candidate
    assert statuses == Counter({503: 1000})
    assert retry_after_missing == 0
    print(f"storm: {sent_upstream} upstream attempts for 1000 requests (naive {naive}) in {elapsed:.2f}s")
    assert sent_upstream < naive // 20, sent_upstream
    assert elapsed < 30


async def test_a_bare_429_on_the_only_key_backs_off_before_the_retry(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.script = [429]  # no Retry-After
    config = make_config(url, fallback={"enabled": True, "max_retries": 1, "retry_delay": 0.4})
    client = await gateway(config)
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}]})
    assert resp.status == 200 and len(fake.received) == 2
    assert time.monotonic() - started >= 0.2  # retry_delay jittered to 50-100 %, not an instant retry
