"""The real process against hostile HTTP: odd header bytes, oversized headers, connections that never finish.

Raw sockets send what no well-behaved client library would, and every answer
must still be the gateway's own JSON error (or a normal answer), with exactly
one log line per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
import pytest

from tests.conftest import make_config

CALLER_KEY = "sk-caller-3b9e1f7a2c5d8e4f"
AUTH = {"keys": [{"name": "tests", "key": CALLER_KEY}]}
BODY = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}'


async def exchange(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the requests below all close the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def chat_request(*extra_headers: bytes, body: bytes = BODY) -> bytes:
    head = [b"POST /v1/chat/completions HTTP/1.1", b"Host: gateway", b"Connection: close",
            b"Content-Type: application/json", b"Content-Length: %d" % len(body), *extra_headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def assert_openai_error(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"].startswith("application/json")
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.fixture
async def gateway_port(gateway_process) -> Any:
    gw = gateway_process(make_config(auth=AUTH, api={"idle_timeout": 1}))
    await gw.await_started()
    return gw


ODD = b"bot-\xff\xfe\x80"


@pytest.mark.parametrize("header", [b"X-Agent", b"X-Task-Type", b"X-Request-Id", b"Cache-Control",
                                    b"User-Agent", b"X-Anything"])
async def test_odd_header_bytes_never_break_the_answer_or_the_log_line(gateway_port, header: bytes) -> None:
    gw = gateway_port
    status, _, body = await exchange(gw.port, chat_request(b"Authorization: Bearer " + CALLER_KEY.encode(),
                                                           header + b": " + ODD))
    assert status == 200 and orjson.loads(body)["choices"]
    line = await gw.await_for("request")
    assert line["status"] == 200
    if header == b"X-Agent":
        assert line["agent"].startswith("bot-")


@pytest.mark.parametrize("auth", [b"Authorization: Bearer " + ODD, b"x-api-key: " + ODD,
                                  b"Authorization: " + ODD])
async def test_a_key_with_odd_bytes_is_a_logged_401(gateway_port, auth: bytes) -> None:
    gw = gateway_port
    status, headers, body = await exchange(gw.port, chat_request(auth))
    assert status == 401
    assert assert_openai_error(headers, body)["code"] in ("invalid_api_key", "missing_api_key")
    line = await gw.await_for("request")
    assert line["status"] == 401  # key guessing leaves a trace


@pytest.mark.parametrize("headers", [
    [b"X-Big: " + b"a" * 100_000],
    [b"X-H%d: v" % i for i in range(1000)],
], ids=["100KB", "1000 headers"])
async def test_oversized_headers_get_an_openai_shaped_error_and_a_log_line(gateway_port, headers) -> None:
    gw = gateway_port
    status, response_headers, body = await exchange(gw.port, chat_request(*headers))
    assert status == 431
    assert assert_openai_error(response_headers, body)["code"] == "headers_too_large"
    line = await gw.await_for("request")
    assert line["status"] == 431 and line["error"] == "headers_too_large"


async def test_a_malformed_request_line_gets_an_openai_shaped_error(gateway_port) -> None:
    gw = gateway_port
    status, headers, body = await exchange(gw.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and assert_openai_error(headers, body)["code"] == "bad_http_request"


async def test_a_connection_that_never_finishes_its_headers_is_closed(gateway_port) -> None:
    gw = gateway_port
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n")
    started = time.monotonic()
    closed_after = None
    try:
        for _ in range(40):  # a header line every 0.1 s, never the blank line
            await asyncio.sleep(0.1)
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            if reader.at_eof():
                closed_after = time.monotonic() - started
                break
            with contextlib.suppress(asyncio.TimeoutError):
                if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                    closed_after = time.monotonic() - started
                    break
    except (ConnectionResetError, BrokenPipeError):
        closed_after = time.monotonic() - started
    finally:
        writer.close()
    assert closed_after is not None and closed_after < 2.5  # api.idle_timeout is 1 s here
