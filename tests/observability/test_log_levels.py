"""The level of each request's log line says who has to act on how it ended.

Read from the real JSON lines the gateway writes: ``ERROR`` for a 5xx answer
and for a stream that broke after it began, ``WARNING`` for a request cut by
the gateway's own shutdown, ``INFO`` for the rest (4xx included). At
``log_level: WARNING`` only the failures are written.
"""

from __future__ import annotations

import signal
from typing import Any

import aiohttp

from proxy.observability import logs
from tests.conftest import make_config

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


def request_lines(log_lines: Any) -> list[dict[str, Any]]:
    return [line for line in log_lines.flushed() if line["event"] == "request"]


async def test_success_and_caller_mistakes_are_info_and_upstream_failures_error(
        gateway, fake_openai, log_lines) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    assert (await client.post("/v1/chat/completions", json={"messages": "not a list"})).status == 400
    assert (await client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"})).status == 404
    fake.fail_status = 500
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 502
    fake.fail_status = 503
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 503

    lines = request_lines(log_lines)
    assert [(line["status"], line["level"]) for line in lines] == [
        (200, "INFO"), (400, "INFO"), (404, "INFO"), (502, "ERROR"), (503, "ERROR")]
    assert [line.get("error") for line in lines[3:]] == ["upstream_error", "upstream_unavailable"]


async def test_a_stream_broken_midway_is_an_error_though_its_status_is_200(gateway, fake_openai, log_lines) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    fake.cut_after = 1
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    assert b'"error"' in await resp.read()
    fake.cut_after = None
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")

    broken, whole = request_lines(log_lines)
    assert (broken["status"], broken["level"], broken["error"]) == (200, "ERROR", "upstream_stream_cut")
    assert (whole["status"], whole["level"]) == (200, "INFO") and "error" not in whole


async def test_at_warning_only_the_failures_are_written(gateway, fake_openai, log_lines) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    logs.set_level("WARNING")
    assert (await client.post("/v1/chat/completions", json=CHAT, headers={"X-Request-Id": "fine"})).status == 200
    fake.fail_status = 500
    assert (await client.post("/v1/chat/completions", json=CHAT, headers={"X-Request-Id": "bad"})).status == 502

    assert [(line["request_id"], line["level"]) for line in request_lines(log_lines)] == [("bad", "ERROR")]


async def test_a_stream_cut_by_shutdown_is_a_warning(gateway_process: Any) -> None:
    config = make_config()
    config["api"]["shutdown_timeout"] = 1
    config["providers"]["mock"]["mock"] = {"chunk_count": 40, "chunk_delay": 0.25}  # about 10 s
    gw = gateway_process(config)
    await gw.await_started()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(f"{gw.base_url}/v1/chat/completions",
                                json={"stream": True, "messages": [{"role": "user", "content": "hi"}]}) as resp:
            await resp.content.readuntil(b"\n\n")
            gw.send(signal.SIGTERM)
            try:
                while await resp.content.readany():
                    pass
            except aiohttp.ClientPayloadError:
                pass  # cut, as it should be
    assert await gw.await_exit(timeout=15) == 0
    [line] = gw.requests()
    assert (line["level"], line["error"]) == ("WARNING", "gateway_shutdown")
