"""Endpoints: /v1/models, /health, unknown paths and methods, request ids."""

from __future__ import annotations

from tests.conftest import make_config


async def test_models_lists_configured_models(gateway, fake_openai) -> None:
    _, url = fake_openai
    client = await gateway(make_config(url))
    doc = await (await client.get("/v1/models")).json()
    assert doc["object"] == "list"
    ids = {m["id"]: m["owned_by"] for m in doc["data"]}
    assert ids == {"mock-gpt": "mock", "mock-embed": "mock", "gpt-4o": "openai", "fast": "openai",
                   "text-embedding-3-small": "openai"}
    assert all(m["object"] == "model" for m in doc["data"])


async def test_health_reports_each_provider(gateway, fake_openai) -> None:
    _, url = fake_openai
    client = await gateway(make_config(url))
    resp = await client.get("/health")
    doc = await resp.json()
    assert resp.status == 200
    assert doc["status"] == "healthy"
    assert doc["providers"] == {"mock": "available", "openai": "available"}
    assert doc["version"]


async def test_health_shows_unconfigured_provider_as_degraded(gateway, fake_openai) -> None:
    _, url = fake_openai
    config = make_config(url, routing={"default_provider": "openai", "default_model": "gpt-4o"})
    config["providers"]["openai"]["api_key"] = "${NO_SUCH_KEY_VAR}"
    client = await gateway(config)
    doc = await (await client.get("/health")).json()
    assert doc["providers"]["openai"] == "unconfigured"
    assert doc["status"] == "degraded"


async def test_unknown_path_is_404_in_openai_shape(gateway) -> None:
    client = await gateway(make_config())
    resp = await client.get("/v1/completions-that-do-not-exist")
    assert resp.status == 404
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert resp.headers["X-Request-Id"]


async def test_wrong_method_is_405_with_allow(gateway) -> None:
    client = await gateway(make_config())
    resp = await client.get("/v1/chat/completions")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
    assert (await client.delete("/v1/models")).status == 405


async def test_every_answer_has_a_request_id(gateway) -> None:
    client = await gateway(make_config())
    ids = set()
    for method, path, body in (("GET", "/health", None), ("GET", "/v1/models", None),
                               ("POST", "/v1/chat/completions", {"messages": []}),
                               ("POST", "/v1/chat/completions",
                                {"messages": [{"role": "user", "content": "x"}], "stream": True})):
        resp = await client.request(method, path, json=body)
        ids.add(resp.headers["X-Request-Id"])
        await resp.read()
    assert len(ids) == 4
    resp = await client.get("/health", headers={"X-Request-Id": "trace-abc-123"})
    assert resp.headers["X-Request-Id"] == "trace-abc-123"
    resp = await client.get("/health", headers={"X-Request-Id": "x" * 500})
    assert resp.headers["X-Request-Id"] != "x" * 500
