"""Streamed Messages answers: relayed natively, translated chunk by chunk, failures mid-stream, keep-alive pings."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.upstream import messages_stream
from tests.fake_anthropic import sse_event
from tests.formats.anthropic.golden import StreamVector, messages_events, payloads, streams
from tests.messages_env import CALLER_KEY, CLAUDE, GPT, MessagesEnv, messages_env  # noqa: F401

HELLO = [{"role": "user", "content": "Say hello"}]


async def stream_bytes(env: MessagesEnv, model: str, **extra: Any) -> bytes:
    assert env.client is not None
    resp = await env.client.post("/v1/messages", json={"model": model, "max_tokens": 50, "messages": HELLO,
                                                       "stream": True, **extra},
                                 headers={"x-api-key": CALLER_KEY})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    return await resp.read()


@pytest.mark.parametrize("vector", streams("inbound"))
async def test_golden_chat_streams_reach_the_caller_as_their_messages_side(messages_env: MessagesEnv,
                                                                          vector: StreamVector) -> None:
    await messages_env.start()
    messages_env.openai.script = [list(payloads([vector.chat]))]
    body = await stream_bytes(messages_env, GPT)
    got, expected = messages_events(body), messages_events(vector.messages)
    if expected[-1][0] == "error":  # the gateway words an upstream's failure itself
        assert got[:-1] == expected[:-1]
        assert got[-1][0] == "error" and got[-1][1]["error"]["type"] == "api_error"
        assert messages_env.finished().error is not None
    else:
        assert body == vector.messages  # byte for byte
        assert messages_env.finished().error is None


async def test_native_events_pass_as_they_came_and_an_upstream_error_event_too(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    fake = messages_env.anthropic
    fake.error_event_after = 2
    body = await stream_bytes(messages_env, CLAUDE)
    sent = fake._interrupted(fake.stream_events(fake.received[0].body))
    assert body == b"".join(sse_event(name, doc) for name, doc in sent)
    assert sent[-1][0] == "error" and "message_stop" not in body.decode()
    assert messages_env.finished().error == "upstream_unavailable"


@pytest.mark.parametrize("model", [CLAUDE, GPT])
async def test_a_stream_cut_short_ends_with_an_error_event(messages_env: MessagesEnv, model: str) -> None:
    await messages_env.start()
    messages_env.anthropic.cut_after = 2
    messages_env.openai.cut_after = 2
    events = messages_events(await stream_bytes(messages_env, model))
    assert events[0][0] == "message_start"
    assert events[-1] == ("error", {"type": "error", "error": {
        "type": "api_error", "message": events[-1][1]["error"]["message"]}})
    assert "ended the stream before it finished" in events[-1][1]["error"]["message"]
    assert all(name != "message_stop" for name, _ in events)
    assert messages_env.finished().error == "upstream_stream_cut"


async def test_an_openai_error_chunk_mid_stream_is_an_error_event(messages_env: MessagesEnv) -> None:
    await messages_env.start()
    messages_env.openai.error_event_after = 1
    events = messages_events(await stream_bytes(messages_env, GPT))
    assert [name for name, _ in events][:2] == ["message_start", "ping"]
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert "model overloaded mid-stream" in events[-1][1]["error"]["message"]


async def test_a_silent_translated_stream_gets_ping_events(messages_env: MessagesEnv,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages_stream, "PING_INTERVAL", 0.02)
    await messages_env.start()
    messages_env.openai.chunk_delay = 0.2
    names = [name for name, _ in messages_events(await stream_bytes(messages_env, GPT))]
    first_text, last_text = names.index("content_block_delta"), len(names) - names[::-1].index("content_block_delta")
    assert "ping" in names[first_text:last_text]  # pings while the upstream said nothing
    assert names[-2:] == ["message_delta", "message_stop"]
    async with messages_env.sdk().messages.stream(model=GPT, max_tokens=50, messages=HELLO) as stream:
        assert (await stream.get_final_message()).content[0].text == messages_env.openai.reply

