"""The response cache: keys, tenancy, streams, directives, memory and a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import openai
import orjson
import pytest

from proxy.cache.store import RESPONSE_CACHE
from tests.conftest import make_config, sse_data

KEYS = {"keys": [{"name": "tenant-a", "key": "sk-gw-a", "team": "blue"},
                 {"name": "tenant-b", "key": "sk-gw-b", "team": "blue"},
                 {"name": "tenant-c", "key": "sk-gw-c", "team": "red"}]}
A, B, C = ({"Authorization": f"Bearer sk-gw-{x}"} for x in "abc")
REDIS_URL = "redis://127.0.0.1:6379/0"


def _chat(text: str | None = None, **extra) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text or uuid.uuid4().hex}], **extra}


def _config(url: str, **caching) -> dict:
    return make_config(url, auth=KEYS, caching={"enabled": True, "ttl": 60, **caching})



async def _settle(client) -> None:
    """Let the background cache writes finish."""
    cache = client.app[RESPONSE_CACHE]
    while cache._writes:
        await asyncio.sleep(0.01)


async def _post(client, body, headers=A):
    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
    text = await resp.text()
    await _settle(client)
    return resp, text


@pytest.fixture(params=["memory", "redis"])
def backend(request) -> dict:
    return {} if request.param == "memory" else {"redis_url": REDIS_URL}


async def test_miss_then_hit(gateway, fake_openai, backend) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, **backend))
    body = _chat()
    first, first_text = await _post(client, body)
    second, second_text = await _post(client, body)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    miss, hit = orjson.loads(first_text), orjson.loads(second_text)
    assert miss["usage"]["cost"] > 0 and hit["usage"]["cost"] == 0  # a hit costs nothing
    miss["usage"].pop("cost"), hit["usage"].pop("cost")
    assert miss == hit
    assert len(fake.received) == 1


async def test_stream_flag_and_request_id_are_not_in_the_key(gateway, fake_openai, backend) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, **backend))
    body = _chat()
    await _post(client, body, {**A, "X-Request-Id": "one"})
    resp, text = await _post(client, {**body, "stream": True}, {**A, "X-Request-Id": "two"})
    assert resp.headers["X-Cache"] == "HIT"
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = sse_data(text)
    assert events[-1] == "[DONE]"
    content = "".join(orjson.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert content == fake.reply
    assert len(fake.received) == 1


async def test_every_answer_changing_parameter_is_in_the_key(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    body = _chat("same words")
    variants = [body, {**body, "temperature": 0.1}, {**body, "max_tokens": 10}, {**body, "seed": 3},
                {**body, "tools": [{"type": "function", "function": {"name": "f"}}]},
                {**body, "model": "fast"}, {**body, "messages": body["messages"] * 2}]
    for variant in variants:
        resp, _ = await _post(client, variant)
        assert resp.headers["X-Cache"] == "MISS", variant
    assert len(fake.received) == len(variants)


async def test_tenants_never_read_each_others_answers(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    body = _chat()
    await _post(client, body, A)
    resp, _ = await _post(client, body, B)
    assert resp.headers["X-Cache"] == "MISS"
    assert len(fake.received) == 2


async def test_team_scope_shares_within_a_team_only(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, scope="team"))
    body = _chat()
    await _post(client, body, A)
    same_team, _ = await _post(client, body, B)
    other_team, _ = await _post(client, body, C)
    assert (same_team.headers["X-Cache"], other_team.headers["X-Cache"]) == ("HIT", "MISS")


async def test_global_scope_shares_across_keys(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, scope="global"))
    body = _chat()
    await _post(client, body, A)
    resp, _ = await _post(client, body, C)
    assert resp.headers["X-Cache"] == "HIT"


async def test_no_cache_skips_the_read_and_no_store_skips_the_write(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    body = _chat()
    resp, _ = await _post(client, body, {**A, "Cache-Control": "no-store"})
    assert resp.headers["X-Cache"] == "MISS"
    resp, _ = await _post(client, body)
    assert resp.headers["X-Cache"] == "MISS"  # nothing had been stored
    resp, _ = await _post(client, body, {**A, "Cache-Control": "no-cache"})
    assert resp.headers["X-Cache"] == "BYPASS"
    resp, _ = await _post(client, body)
    assert resp.headers["X-Cache"] == "HIT"
    assert len(fake.received) == 3


async def test_errors_are_never_stored(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    body = _chat()
    fake.script = [500]
    resp, _ = await _post(client, body)
    assert resp.status == 502
    resp, _ = await _post(client, body)
    assert resp.status == 200 and resp.headers["X-Cache"] == "MISS"


async def test_a_streamed_miss_is_stored_when_it_finished_cleanly(gateway, fake_openai, backend) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, **backend))
    body = _chat(stream=True)
    resp, _ = await _post(client, body)
    assert resp.headers["X-Cache"] == "MISS"
    plain, text = await _post(client, {**body, "stream": False})
    assert plain.headers["X-Cache"] == "HIT"
    answer = orjson.loads(text)
    assert answer["choices"][0]["message"]["content"] == fake.reply
    assert answer["usage"] == {**fake.usage, "cost": 0.0}
    assert answer["provider"] == "openai"


async def test_a_broken_stream_is_not_stored(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    body = _chat(stream=True)
    fake.script = ["cut"]
    _, text = await _post(client, body)
    assert "[DONE]" not in text
    resp, _ = await _post(client, body)
    assert resp.headers["X-Cache"] == "MISS"


async def test_replayed_stream_works_with_the_sdk(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="sk-gw-a", max_retries=0)
    words = uuid.uuid4().hex
    await sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": words}])
    await _settle(client)
    stream = await sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": words}],
                                               stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake.reply
    assert chunks[-1].usage.total_tokens == fake.usage["total_tokens"]
    assert len(fake.received) == 1


async def test_embeddings_are_cached_per_encoding_format(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url))
    body = {"model": "text-embedding-3-small", "input": uuid.uuid4().hex}
    for fmt, expected in (("float", "MISS"), ("float", "HIT"), ("base64", "MISS"), ("base64", "HIT")):
        resp = await client.post("/v1/embeddings", json={**body, "encoding_format": fmt}, headers=A)
        assert resp.headers["X-Cache"] == expected
        await resp.read()
        await _settle(client)
    assert len(fake.received) == 2


async def test_disabled_cache_says_bypass(gateway, fake_openai) -> None:
    _, url = fake_openai
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json=_chat())
    assert resp.headers["X-Cache"] == "BYPASS"


async def test_memory_cache_is_bounded(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, max_entries=3))
    bodies = [_chat() for _ in range(5)]
    for body in bodies:
        await _post(client, body)
    resp, _ = await _post(client, bodies[0])
    assert resp.headers["X-Cache"] == "MISS"  # evicted
    resp, _ = await _post(client, bodies[-1])
    assert resp.headers["X-Cache"] == "HIT"


async def test_a_fallback_answer_is_not_stored_under_the_primary(gateway, fake_openai, aiohttp_server) -> None:
    from tests.fakes import FakeOpenAI

    fake, url = fake_openai
    backup = FakeOpenAI(reply="backup answer")
    backup_server = await aiohttp_server(backup.app())
    config = _config(url)
    config["fallback"] = {"enabled": True, "max_retries": 0, "fallback_map": {"openai/gpt-4o": ["backup/b"]}}
    config["providers"]["backup"] = {"type": "openai", "api_key": "k", "base_url": str(backup_server.make_url("/v1")),
                                     "models": {"b": {}}}
    client = await gateway(config)
    body = _chat()
    fake.script = [503]
    resp, _ = await _post(client, body)
    assert resp.headers["X-Gateway-Provider"] == "backup"
    resp, text = await _post(client, body)
    assert resp.headers["X-Cache"] == "MISS"
    assert orjson.loads(text)["choices"][0]["message"]["content"] == fake.reply


# ---------------------------------------------------------------- Redis going away and coming back


async def test_redis_going_away_and_coming_back(gateway, fake_openai, own_redis, log_lines) -> None:
    fake, url = fake_openai
    client = await gateway(_config(url, redis_url=f"redis://127.0.0.1:{own_redis.port}/0"))
    body = _chat()
    await _post(client, body)
    resp, _ = await _post(client, body)
    assert resp.headers["X-Cache"] == "HIT"

    own_redis.stop()
    statuses = []
    for _ in range(5):
        resp, _ = await _post(client, body)
        statuses.append((resp.status, resp.headers["X-Cache"]))
    assert all(status == 200 for status, _ in statuses)
    assert {cache for _, cache in statuses} == {"BYPASS"}
    warnings = await log_lines.wait_for("cache_unavailable")
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"
    assert client.app[RESPONSE_CACHE].errors >= 1

    own_redis.start()  # empty again: it keeps nothing on disk
    await asyncio.sleep(1.1)  # past the backend's one-second pause after a failure
    seen = []
    for _ in range(3):
        resp, _ = await _post(client, body)
        seen.append(resp.headers["X-Cache"])
    assert seen[-1] == "HIT"
    log_lines.flushed()
    assert log_lines.events("cache_recovered")


async def test_a_stream_with_a_chunk_that_is_not_json_is_relayed_but_never_cached(gateway, fake_openai):
    fake, url = fake_openai
    head = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":'
    payloads = [head + b'[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}', b'{"broken": ',
                head + b'[{"index":0,"delta":{},"finish_reason":"stop"}]}', b"[DONE]"]
    fake.script = [payloads, payloads]
    client = await gateway(_config(url))
    body = _chat(stream=True)
    for _ in range(2):
        resp, text = await _post(client, body)
        assert resp.status == 200 and resp.headers["X-Cache"] == "MISS"
        events = sse_data(text)
        assert '"Hi"' in events[0] and events[-1] == "[DONE]"
