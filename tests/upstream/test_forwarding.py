"""Forwarding: failures before and after the first byte, limits, unreachable upstreams."""

from __future__ import annotations

import asyncio
import socket

import openai
import orjson
import pytest

from tests.conftest import make_config, sse_data

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("single_write", [False, True], ids=["spread", "bunched"])
@pytest.mark.parametrize("failure", ["cut_after", "error_event_after"])
async def test_failure_mid_stream_ends_with_an_error_event_and_no_done(gateway, fake_openai, failure,
                                                                       single_write):
    fake, url = fake_openai
    fake.chunks, fake.single_write = 6, single_write
    setattr(fake, failure, 2)
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    events = sse_data(await resp.text())
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert sum(1 for e in events if '"content"' in e) >= 2


async def test_events_that_arrive_together_all_reach_the_caller_in_order(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.reply, fake.chunks, fake.single_write = "one two three four five six seven", 7, True
    client = await gateway(make_config(url))
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    stream = await sdk.chat.completions.create(model="gpt-4o", messages=CHAT["messages"], stream=True,
                                               stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == fake.reply and len([p for p in pieces if p]) == 7
    assert finish == "stop" and usage is not None and usage.total_tokens == 18


async def test_the_openai_sdk_raises_on_a_cut_stream(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunks, fake.cut_after = 6, 2
    client = await gateway(make_config(url))
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    stream = await sdk.chat.completions.create(model="gpt-4o", messages=CHAT["messages"], stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_stall_mid_stream_is_bounded_by_the_chunk_timeout(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunk_delay = 2.0
    config = make_config(url)
    config["providers"]["openai"]["models"]["gpt-4o"]["timeout"] = 0.3
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = sse_data(await asyncio.wait_for(resp.text(), 5))
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_timeout"


async def test_stream_is_relayed_as_it_arrives(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunks, fake.chunk_delay = 3, 0.5
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 0.45)
    assert b'"role":"assistant"' in first
    resp.close()


async def test_slow_headers_beyond_the_model_timeout_is_504(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.headers_delay = 1.0
    config = make_config(url)
    config["providers"]["openai"]["models"]["gpt-4o"]["timeout"] = 0.2
    client = await gateway(config)
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert resp.status == 504
        assert (await resp.json())["error"]["code"] == "upstream_timeout"


async def test_unreachable_upstream_is_502(gateway) -> None:
    client = await gateway(make_config(f"http://127.0.0.1:{_free_port()}/v1"))
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert resp.status == 502
        assert (await resp.json())["error"]["code"] == "upstream_unreachable"


async def test_upstream_that_is_not_json_is_502(gateway, aiohttp_server) -> None:
    from aiohttp import web

    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", broken)
    server = await aiohttp_server(app)
    client = await gateway(make_config(str(server.make_url("/v1"))))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "upstream_bad_response"


async def test_unconfigured_provider_is_503(gateway, fake_openai) -> None:
    _, url = fake_openai
    config = make_config(url)
    config["providers"]["openai"]["api_key"] = "${UNSET_FOR_THIS_TEST}"
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "provider_unconfigured"


async def test_max_tokens_above_the_model_limit_is_400(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    for field in ("max_tokens", "max_completion_tokens"):
        resp = await client.post("/v1/chat/completions", json={**CHAT, field: 5000})
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error["param"] == field
        assert "4096" in error["message"]
    assert fake.received == []
    assert (await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 4096})).status == 200


async def test_caller_disconnect_closes_the_upstream_stream(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunks, fake.chunk_delay = 50, 0.05
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    await resp.content.readuntil(b"\n\n")
    resp.close()
    for _ in range(40):
        if fake.streams_closed:
            break
        await asyncio.sleep(0.05)
    assert fake.streams_closed == 1
    assert fake.streams_finished == 0


async def test_a_chunk_that_cannot_be_json_ends_the_stream_with_an_error_event(gateway, fake_openai):
    fake, url = fake_openai
    fake.single_write = True  # the bad chunk arrives in the same read as a good one before it
    fake.script = [[b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
                    b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}',
                    b"hello there", b"[DONE]"]]
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    events = sse_data(await resp.text())
    assert '"Hi"' in events[0] and "[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_bad_response"


@pytest.mark.parametrize("api", [{}, {"max_stream_duration": 60}])
async def test_a_dripping_stream_is_bounded_between_complete_events(gateway, fake_openai, api) -> None:
    fake, url = fake_openai
    fake.script, fake.drip_interval = ["drip"], 0.1
    config = make_config(url, api={"timeout": 5, **api})
    config["providers"]["openai"]["models"]["gpt-4o"]["timeout"] = 0.5
    client = await gateway(config)
    started = asyncio.get_running_loop().time()
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = sse_data(await asyncio.wait_for(resp.text(), 5))
    assert asyncio.get_running_loop().time() - started < 1.5  # the bytes never restarted the clock
    assert "[DONE]" not in events
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_timeout" and "no complete stream event" in error["message"]


async def test_a_stream_longer_than_max_stream_duration_is_cut(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunks, fake.chunk_delay, fake.reply = 20, 0.1, "x" * 20
    client = await gateway(make_config(url, api={"timeout": 5, "max_stream_duration": 0.5}))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = sse_data(await asyncio.wait_for(resp.text(), 5))
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_timeout" and "api.max_stream_duration" in error["message"]
    assert 2 <= sum(1 for e in events if '"content"' in e) < 20


async def test_a_slow_caller_does_not_count_against_the_upstream(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunks, fake.reply = 4, "abcd"
    config = make_config(url)
    config["providers"]["openai"]["models"]["gpt-4o"]["timeout"] = 0.3
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    pieces = []
    async for line in resp.content:
        pieces.append(line)
        await asyncio.sleep(0.1)  # the caller reads slowly; the upstream has long finished
    events = sse_data(b"".join(pieces).decode())
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", ["100000.0", "5000", "1e4", "100000000000000000000000", "9223372036854775807"])
async def test_model_max_tokens_holds_for_every_number_json_can_carry(gateway, fake_openai, field, value):
    fake, url = fake_openai
    client = await gateway(make_config(url))
    raw = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (
        field.encode(), value.encode())
    resp = await client.post("/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and not fake.received
    error = (await resp.json())["error"]
    assert error["param"] == field and error["code"] in ("max_tokens_exceeded", "invalid_request")


async def test_an_integral_float_is_sent_upstream_as_an_integer(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    raw = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100.0, "n": 1.0}'
    resp = await client.post("/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    sent = fake.received[0].body
    assert sent["max_tokens"] == 100 and isinstance(sent["max_tokens"], int) and isinstance(sent["n"], int)


async def test_both_token_fields_are_held_to_the_limit(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "max_completion_tokens": 10,
                                                           "max_tokens": 100000})
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "max_tokens"
