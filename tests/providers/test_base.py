"""Upstream-controlled waits: ``Retry-After`` parsed strictly and capped at ``api.max_retry_after``."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from proxy.providers.base import retry_after_seconds, upstream_http_error
from tests.conftest import make_config

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "-1", "-0.5", "soon", "", " ",
                                   "12abc", "0x10", "Infinity", "1" * 100, "Mon, 99 Foo 2026 00:00:00 GMT"])
def test_a_retry_after_that_is_not_a_finite_non_negative_number_or_a_date_is_absent(value: str) -> None:
    assert retry_after_seconds(value, 60) is None


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("7", 7.0), ("2.5", 2.5), (" 3 ", 3.0)])
def test_delta_seconds_are_read(value: str, expected: float) -> None:
    assert retry_after_seconds(value, 60) == expected


def test_an_http_date_is_read_as_the_seconds_until_it() -> None:
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= retry_after_seconds(soon, 60) <= 30  # type: ignore[operator]


@pytest.mark.parametrize("value", ["100000000", "1e300", email.utils.formatdate(time.time() + 10 ** 8, usegmt=True)])
def test_every_wait_an_upstream_sets_is_capped(value: str) -> None:
    assert retry_after_seconds(value, max_wait=60) == 60
    error = upstream_http_error("openai", 429, b"{}", value, max_wait=60)
    assert error.retry_after == 60 and error.headers["Retry-After"] == "60"


async def test_a_huge_retry_after_rests_the_key_only_for_the_cap(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.script, fake.retry_after = [429], "100000000"
    client = await gateway(make_config(url, api={"max_retry_after": 1}))
    first = await client.post("/v1/chat/completions", json=CHAT)
    assert first.status == 429 and first.headers["Retry-After"] == "1"
    resting = await client.post("/v1/chat/completions", json=CHAT)
    assert resting.status == 429 and len(fake.received) == 1  # the only key rests: no upstream call
    await asyncio.sleep(1.1)
    again = await client.post("/v1/chat/completions", json=CHAT)
    assert again.status == 200 and len(fake.received) == 2


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "garbage", "-5"])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_unreadable_retry_after_is_never_a_500(gateway, fake_openai, value: str, stream: bool) -> None:
    fake, url = fake_openai
    fake.fail_status, fake.retry_after = 429, value
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert resp.status == 429
    assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}
    assert resp.headers.get("Retry-After", "1").isdigit()


async def test_fallback_waits_no_longer_than_the_cap(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.script, fake.retry_after = [503], "3600"
    config = make_config(url, api={"max_retry_after": 0.2, "timeout": 5},
                         fallback={"enabled": True, "max_retries": 1, "retry_delay": 0.01})
    client = await gateway(config)
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200 and len(fake.received) == 2
    assert time.monotonic() - started < 2
