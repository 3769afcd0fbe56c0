"""Body reading, JSON parsing and schema checks: every client mistake is a clear 4xx."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import make_config


async def _error(resp) -> dict:
    assert resp.headers["Content-Type"].startswith("application/json")
    return (await resp.json())["error"]


async def test_invalid_json_is_400(gateway) -> None:
    client = await gateway(make_config())
    resp = await client.post("/v1/chat/completions", data=b'{"messages": [',
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    error = await _error(resp)
    assert error["code"] == "invalid_json"
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("body", [b"", b"[1, 2]", b'"text"'])
async def test_body_must_be_a_json_object(gateway, body: bytes) -> None:
    client = await gateway(make_config())
    resp = await client.post("/v1/chat/completions", data=body)
    assert resp.status == 400
    assert (await _error(resp))["code"] == "invalid_json"


@pytest.mark.parametrize(("body", "param"), [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": "x"}], "model": 7}, "model"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, "tool_choice"),
])
async def test_schema_violation_names_the_field(gateway, body, param: str) -> None:
    client = await gateway(make_config())
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 400
    error = await _error(resp)
    assert error["param"] == param
    assert param in error["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": "mock-embed"}, "input"),
    ({"model": "mock-embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"model": "mock-embed", "input": [1.5]}, "input"),
])
async def test_embeddings_schema(gateway, body, param: str) -> None:
    client = await gateway(make_config())
    resp = await client.post("/v1/embeddings", json=body)
    assert resp.status == 400
    assert (await _error(resp))["param"] == param


async def test_body_over_the_limit_is_413(gateway) -> None:
    config = make_config()
    config["api"]["max_body_bytes"] = 2048
    client = await gateway(config)
    big = {"messages": [{"role": "user", "content": "x" * 4096}]}
    resp = await client.post("/v1/chat/completions", json=big)
    assert resp.status == 413
    error = await _error(resp)
    assert error["code"] == "request_too_large"
    assert "2048" in error["message"]


async def test_chunked_body_over_the_limit_is_413(gateway) -> None:
    config = make_config()
    config["api"]["max_body_bytes"] = 2048

    async def chunks():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", data=chunks())
    assert resp.status == 413


@pytest.mark.parametrize("filler, status", [(100, 200), (3000, 413)])
async def test_a_body_that_arrives_slowly_in_pieces_is_read_whole(gateway, filler: int, status: int) -> None:
    config = make_config()
    config["api"]["max_body_bytes"] = 2048

    async def slow_pieces():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(3):
            await asyncio.sleep(0.05)  # the gateway is already waiting for the rest
            yield b"z" * (filler // 3)
        yield b'"}]}'

    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", data=slow_pieces())
    assert resp.status == status
    if status == 200:
        assert "z" * 99 in (await resp.json())["choices"][0]["message"]["content"]


async def test_default_limit_leaves_room_for_images(gateway) -> None:
    client = await gateway(make_config())
    image = "data:image/png;base64," + "A" * (5 * 1024 * 1024)
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": image}}]}]}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 200


async def test_unknown_fields_are_accepted(gateway) -> None:
    client = await gateway(make_config())
    body = {"messages": [{"role": "user", "content": "x"}], "brand_new_param": {"a": 1}}
    assert (await client.post("/v1/chat/completions", json=body)).status == 200


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/embeddings"])
@pytest.mark.parametrize("depth", [200, 300, 1000])
async def test_a_body_nested_deeper_than_can_be_forwarded_is_a_400(gateway, endpoint: str, depth: int) -> None:
    client = await gateway(make_config())
    deep = b"[" * depth + b"]" * depth
    model = b"mock-gpt" if endpoint.endswith("completions") else b"mock-embed"
    raw = (b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "input": "x", "extra": %s}'
           % (model, deep))
    resp = await client.post(endpoint, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_json"


async def test_a_body_nested_within_the_limit_is_forwarded(gateway) -> None:
    client = await gateway(make_config())
    deep = b"[" * 100 + b"]" * 100
    raw = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "extra": %s}' % deep
    resp = await client.post("/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200


@pytest.mark.parametrize(("field", "value"), [("n", "2.5"), ("seed", "1e30"), ("max_tokens", "0"),
                                              ("max_tokens", "-1.0"), ("n", "1000")])
async def test_whole_number_fields_refuse_values_that_are_not(gateway, field: str, value: str) -> None:
    client = await gateway(make_config())
    raw = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (
        field.encode(), value.encode())
    resp = await client.post("/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["param"] == field
