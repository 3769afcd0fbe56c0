"""Admission control: refuse at once past the in-flight limit, never /health."""

from __future__ import annotations

import asyncio

from tests.conftest import make_config

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _slow_config(limit: int) -> dict:
    config = make_config()
    config["api"]["max_in_flight"] = limit
    config["providers"]["mock"]["mock"] = {"latency": 0.5}
    return config


async def test_past_the_limit_new_requests_get_503_at_once(gateway) -> None:
    client = await gateway(_slow_config(3))
    admitted = [asyncio.ensure_future(client.post("/v1/chat/completions", json=CHAT)) for _ in range(3)]
    await asyncio.sleep(0.1)  # the three are in flight
    loop = asyncio.get_running_loop()
    started = loop.time()
    refused = await client.post("/v1/chat/completions", json=CHAT)
    assert loop.time() - started < 0.4  # answered before any admitted request finished
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert (await refused.json())["error"]["code"] == "gateway_overloaded"
    assert (await client.get("/health")).status == 200  # probes are never refused
    assert [r.status for r in await asyncio.gather(*admitted)] == [200, 200, 200]
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200  # room again


async def test_zero_means_no_limit(gateway) -> None:
    client = await gateway(_slow_config(0))
    results = await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(20)))
    assert {r.status for r in results} == {200}


async def test_a_refused_or_failed_request_frees_its_place(gateway) -> None:
    client = await gateway(_slow_config(1))
    for _ in range(3):
        bad = await client.post("/v1/chat/completions", json={"model": "nope", **CHAT})
        assert bad.status == 404
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
