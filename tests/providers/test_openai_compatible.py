"""OpenAI-compatible servers (vLLM, llama.cpp, Ollama, LM Studio): any base URL, key optional."""

from __future__ import annotations

import openai

from tests.conftest import make_config
from tests.fakes import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hello"}]


async def test_keyless_server_gets_no_authorization(gateway, aiohttp_server) -> None:
    fake = FakeOpenAI(reply="local model says hi")
    server = await aiohttp_server(fake.app())
    config = make_config()
    config["providers"]["ollama"] = {"type": "openai_compatible", "base_url": str(server.make_url("/v1")),
                                     "models": {"llama3": {"upstream_model": "llama3:8b"}}}
    client = await gateway(config)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="caller-key", max_retries=0)
    answer = await sdk.chat.completions.create(model="llama3", messages=MESSAGES)
    assert answer.choices[0].message.content == "local model says hi"
    seen = fake.received[-1]
    assert "Authorization" not in seen.headers
    assert seen.body["model"] == "llama3:8b"
    health = await (await client.get("/health")).json()
    assert health["providers"]["ollama"] == "available"


async def test_server_with_a_key(gateway, aiohttp_server) -> None:
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app())
    config = make_config()
    config["providers"]["vllm"] = {"type": "openai_compatible", "api_key": "vllm-token",
                                   "base_url": str(server.make_url("/v1")), "models": {"qwen": {}}}
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json={"model": "qwen", "messages": MESSAGES, "stream": True})
    assert (await resp.text()).endswith("data: [DONE]\n\n")
    assert fake.received[-1].headers["Authorization"] == "Bearer vllm-token"
