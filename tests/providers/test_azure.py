"""Azure OpenAI: deployment URLs with api-version, and the api-key header."""

from __future__ import annotations

import pytest

from proxy.config import ConfigError, parse_config
from tests.conftest import make_config
from tests.fakes import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def azure(aiohttp_server):
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.azure_app())
    config = make_config()
    config["providers"]["azure-east"] = {
        "type": "azure",
        "api_key": "azure-secret",
        "base_url": str(server.make_url("")).rstrip("/"),
        "api_version": "2024-10-21",
        "models": {"gpt-4o": {"upstream_model": "prod-gpt4o"}, "embed": {"upstream_model": "prod-embed"}},
    }
    return fake, config


async def test_chat_goes_to_the_deployment_with_api_key(gateway, azure) -> None:
    fake, config = azure
    client = await gateway(config)
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES,
                                                               "stream": stream})
        assert resp.status == 200
        await resp.read()
        seen = fake.received[-1]
        assert seen.path == "/openai/deployments/prod-gpt4o/chat/completions"
        assert seen.headers["api-key"] == "azure-secret"
        assert "Authorization" not in seen.headers


async def test_embeddings_go_to_the_deployment(gateway, azure) -> None:
    fake, config = azure
    client = await gateway(config)
    resp = await client.post("/v1/embeddings", json={"model": "embed", "input": "x", "encoding_format": "base64"})
    assert resp.status == 200
    assert fake.received[-1].path == "/openai/deployments/prod-embed/embeddings"


async def test_api_version_is_sent(gateway, azure, aiohttp_server) -> None:
    from aiohttp import web

    seen = {}

    async def capture(request: web.Request) -> web.Response:
        seen["query"] = dict(request.query)
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                  "choices": [], "usage": None})

    app = web.Application()
    app.router.add_post("/openai/deployments/{d}/chat/completions", capture)
    server = await aiohttp_server(app)
    _, config = azure
    config["providers"]["azure-east"]["base_url"] = str(server.make_url("")).rstrip("/")
    client = await gateway(config)
    await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
    assert seen["query"] == {"api-version": "2024-10-21"}


def test_azure_needs_api_version() -> None:
    config = make_config()
    config["providers"]["az"] = {"type": "azure", "api_key": "k", "base_url": "https://x.openai.azure.com",
                                 "models": {"m": {}}}
    with pytest.raises(ConfigError, match=r"\$\.providers\.az\.api_version"):
        parse_config(config, environ={})
