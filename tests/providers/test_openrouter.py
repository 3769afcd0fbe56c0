"""OpenRouter: app headers, keep-alive comments, error events inside a 200 stream."""

from __future__ import annotations

import openai
import orjson
import pytest

from tests.conftest import make_config, sse_data
from tests.fakes import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def openrouter(aiohttp_server):
    fake = FakeOpenAI(keepalive_comments=True)
    server = await aiohttp_server(fake.app())
    config = make_config(routing={"default_provider": "openrouter", "default_model": "anthropic/claude-3-opus"})
    config["providers"]["openrouter"] = {
        "api_key": "sk-or-secret",
        "base_url": str(server.make_url("/v1")),
        "http_referer": "https://app.example",
        "x_title": "Example App",
        "models": {"anthropic/claude-3-opus": {}, "google/gemini-pro": {}},
    }
    return fake, config


async def test_app_headers_and_key(gateway, openrouter) -> None:
    fake, config = openrouter
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={"model": "anthropic/claude-3-opus", "messages": MESSAGES})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["provider"] == "openrouter"
    seen = fake.received[-1]
    assert seen.headers["HTTP-Referer"] == "https://app.example"
    assert seen.headers["X-Title"] == "Example App"
    assert seen.headers["Authorization"] == "Bearer sk-or-secret"
    assert seen.body["model"] == "anthropic/claude-3-opus"


async def test_keepalive_comments_never_reach_the_caller(gateway, openrouter) -> None:
    fake, config = openrouter
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    text = await resp.text()
    assert "OPENROUTER PROCESSING" not in text
    blocks = [b for b in text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks)
    assert blocks[-1] == "data: [DONE]"
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    stream = await sdk.chat.completions.create(model="google/gemini-pro", messages=MESSAGES, stream=True)
    content = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert content == fake.reply


async def test_error_event_in_a_200_stream_is_an_upstream_failure(gateway, openrouter) -> None:
    fake, config = openrouter
    fake.error_event_after = 0  # the error comes before any content
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    # The role chunk was already relayed, so the failure arrives as the contract's error event.
    events = sse_data(await resp.text())
    assert "[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_error"
