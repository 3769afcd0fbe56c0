"""The built-in mock provider: deterministic, configurable, speaks through real clients."""

from __future__ import annotations

import base64
import struct

import openai
import orjson

from tests.conftest import make_config

CHAT = {"messages": [{"role": "user", "content": "tell me a story"}]}


def _sdk(client) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)


async def test_same_request_same_answer(gateway) -> None:
    client = await gateway(make_config())
    first = await (await client.post("/v1/chat/completions", json=CHAT)).json()
    second = await (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert first["choices"] == second["choices"]
    assert first["id"] == second["id"]
    assert "tell me a story" in first["choices"][0]["message"]["content"]


async def test_stream_has_chunk_count_pieces_and_exact_usage(gateway) -> None:
    config = make_config()
    config["providers"]["mock"]["mock"] = {"chunk_count": 5}
    client = await gateway(config)
    sdk = _sdk(client)
    stream = await sdk.chat.completions.create(model="mock-gpt", messages=CHAT["messages"], stream=True,
                                               stream_options={"include_usage": True})
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(pieces) == 5
    plain = await sdk.chat.completions.create(model="mock-gpt", messages=CHAT["messages"])
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish == "stop"
    assert usage.completion_tokens == 5
    assert usage.prompt_tokens == plain.usage.prompt_tokens


async def test_max_tokens_truncates_with_length(gateway) -> None:
    client = await gateway(make_config())
    doc = await (await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})).json()
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"]["completion_tokens"] == 2


async def test_embeddings_float_and_base64_agree(gateway) -> None:
    config = make_config()
    config["providers"]["mock"]["mock"] = {"embedding_dimensions": 12}
    client = await gateway(config)
    body = {"model": "mock-embed", "input": ["alpha", "beta"]}
    floats = await (await client.post("/v1/embeddings", json=body)).json()
    b64 = await (await client.post("/v1/embeddings", json={**body, "encoding_format": "base64"})).json()
    for f, b in zip(floats["data"], b64["data"]):
        assert len(f["embedding"]) == 12
        decoded = struct.unpack("<12f", base64.b64decode(b["embedding"]))
        assert all(abs(x - y) < 1e-6 for x, y in zip(f["embedding"], decoded))
    assert floats["data"][0]["embedding"] != floats["data"][1]["embedding"]


async def test_embeddings_through_the_sdk_default_base64(gateway) -> None:
    client = await gateway(make_config())
    result = await _sdk(client).embeddings.create(model="mock-embed", input="alpha", dimensions=8)
    assert len(result.data[0].embedding) == 8
    norm = sum(x * x for x in result.data[0].embedding)
    assert abs(norm - 1.0) < 1e-4


async def test_latency_delays_the_first_byte(gateway) -> None:
    import time

    config = make_config()
    config["providers"]["mock"]["mock"] = {"latency": 0.2}
    client = await gateway(config)
    started = time.perf_counter()
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert time.perf_counter() - started >= 0.2
    assert orjson.loads(await resp.read())["provider"] == "mock"
