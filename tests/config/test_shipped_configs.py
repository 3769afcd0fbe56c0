"""The configs that ship: the packaged default, and the spec's config as the real upstreams take it.

``config/llm_gateway_config.json`` is the product spec's example made to work
against the real providers' wire formats: Anthropic only accepts dated model
ids, the spec's embeddings example needs an embeddings model, and a model's
``max_tokens`` (the most a caller may ask for) must not exceed what its
upstream accepts, or the caller passes the gateway's check only to get the
upstream's 400. The in-process test sends the spec's own examples through the
shipped config to fake upstreams and checks what they received.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from proxy.app import create_app
from proxy.config import load_config, parse_config
from proxy.formats.anthropic.request import to_anthropic_request
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "llm_gateway_config.json"
PACKAGED_DEFAULT = ROOT / "proxy" / "defaults" / "local.json"
REPOSITORY_DEFAULT = ROOT / "config" / "local.json"

KEYS = {"OPENAI_API_KEY": "sk-openai-test", "ANTHROPIC_API_KEY": "sk-ant-test",
        "OPENROUTER_API_KEY": "sk-or-test"}

DATED_ANTHROPIC_IDS = {"claude-3-opus": "claude-3-opus-20240229",
                       "claude-3-sonnet": "claude-3-sonnet-20240229"}

# The most output tokens each upstream model accepts in one request (the providers'
# model pages). Every chat model of the shipped config must be listed here.
UPSTREAM_OUTPUT_LIMITS = {
    "openai/gpt-4": 8192,
    "openai/gpt-3.5-turbo": 4096,
    "anthropic/claude-3-opus": 4096,
    "anthropic/claude-3-sonnet": 4096,
    "openrouter/anthropic/claude-3-opus": 4096,
    "openrouter/google/gemini-2.5-pro": 65536,
}
EMBEDDING_MODELS = {"openai/text-embedding-ada-002"}

# The spec's API examples, as printed.
SPEC_CHAT = {
    "model": "gpt-4",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
    ],
    "temperature": 0.7,
    "max_tokens": 1000,
    "task_type": "general",
}
SPEC_EMBEDDINGS = {"model": "text-embedding-ada-002", "input": "The quick brown fox jumps over the lazy dog"}


def shipped_raw() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text())


# ------------------------------------------------------------ the packaged default


def test_packaged_default_is_the_repository_copy() -> None:
    """``config/local.json`` (to copy and edit) and the packaged default cannot drift apart."""
    assert PACKAGED_DEFAULT.read_bytes() == REPOSITORY_DEFAULT.read_bytes()


def test_packaged_default_needs_no_keys_and_binds_loopback() -> None:
    config = load_config(PACKAGED_DEFAULT, environ={})
    assert config.api.host == "127.0.0.1"
    assert set(config.providers) == {"mock"} and config.providers["mock"].configured
    assert config.caching.redis_url is None
    assert config.auth.keys == ()


# ------------------------------------------------------------ the shipped spec config


@pytest.mark.parametrize("name", sorted(DATED_ANTHROPIC_IDS))
def test_anthropic_requests_carry_dated_model_ids(name: str) -> None:
    config = load_config(SHIPPED, environ={})
    model = config.providers["anthropic"].models[name]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    request = to_anthropic_request(body, model)
    assert request["model"] == DATED_ANTHROPIC_IDS[name]
    assert request["max_tokens"] <= UPSTREAM_OUTPUT_LIMITS[f"anthropic/{name}"]
    # The most a caller may ask for is also what Anthropic accepts.
    most = to_anthropic_request({**body, "max_tokens": model.max_tokens}, model)
    assert most["max_tokens"] <= UPSTREAM_OUTPUT_LIMITS[f"anthropic/{name}"]


def test_max_tokens_limits_fit_the_upstream_models() -> None:
    config = load_config(SHIPPED, environ={})
    chat_models = {m.qualified_name: m for p in config.providers.values() for m in p.models.values()
                   if m.qualified_name not in EMBEDDING_MODELS}
    assert set(chat_models) == set(UPSTREAM_OUTPUT_LIMITS), "a model's upstream limit is not known here"
    for name, model in chat_models.items():
        assert model.max_tokens is not None, name
        assert model.max_tokens <= UPSTREAM_OUTPUT_LIMITS[name], (name, model.max_tokens)


def test_spec_embeddings_model_resolves() -> None:
    config = load_config(SHIPPED, environ={})
    (model,) = config.find_models(SPEC_EMBEDDINGS["model"])
    assert (model.provider, model.upstream_model) == ("openai", "text-embedding-ada-002")
    assert config.providers["openai"].type == "openai"


def test_routing_rules_and_fallbacks_name_configured_models() -> None:
    raw = shipped_raw()
    configured = {f"{p}/{m}" for p, body in raw["providers"].items() for m in body["models"]}
    routing = raw["routing"]
    assert f"{routing['default_provider']}/{routing['default_model']}" in configured
    for rule in routing["routing_rules"]:
        assert f"{rule['provider']}/{rule['model']}" in configured, rule
    for primary, chain in raw["fallback"]["fallback_map"].items():
        assert primary in configured, primary
        for fallback in chain:
            assert fallback in configured, (primary, fallback)
            assert fallback not in EMBEDDING_MODELS


# ------------------------------------------------------------ end to end, in process


@pytest.fixture
async def shipped_gateway(aiohttp_server: Any, aiohttp_client: Any) -> Any:
    """The shipped config in process, its providers pointed at fake upstreams.

    Only what cannot run in a test changes: the upstreams' ``base_url``, the
    Redis cache and the metrics listener (off), the bind (loopback); models,
    routing and fallback are the file's.
    """
    openai_fake, anthropic_fake, openrouter_fake = FakeOpenAI(), FakeAnthropic(), FakeOpenAI()
    raw = copy.deepcopy(shipped_raw())
    raw["api"]["host"] = "127.0.0.1"
    raw["caching"] = {"enabled": False}
    raw["monitoring"]["metrics_enabled"] = False
    raw["providers"]["openai"]["base_url"] = str((await aiohttp_server(openai_fake.app())).make_url("/v1"))
    raw["providers"]["anthropic"]["base_url"] = str((await aiohttp_server(anthropic_fake.app())).make_url(""))
    raw["providers"]["openrouter"]["base_url"] = str(
        (await aiohttp_server(openrouter_fake.app())).make_url("/v1"))
    client = await aiohttp_client(create_app(parse_config(raw, environ=KEYS)))
    return client, openai_fake, anthropic_fake, openrouter_fake


async def post(client: Any, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    doc = await resp.json()
    assert resp.status == status, doc
    return doc


async def test_spec_examples_reach_the_upstreams_as_they_expect(shipped_gateway: Any) -> None:
    client, openai_fake, anthropic_fake, openrouter_fake = shipped_gateway

    # the spec's chat example
    doc = await post(client, "/v1/chat/completions", SPEC_CHAT)
    assert doc["provider"] == "openai" and doc["choices"][0]["message"]["content"] == openai_fake.reply
    sent = openai_fake.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert (sent.body["model"], sent.body["max_tokens"]) == ("gpt-4", 1000)
    assert "task_type" not in sent.body

    # the spec's embeddings example
    doc = await post(client, "/v1/embeddings", SPEC_EMBEDDINGS)
    assert doc["provider"] == "openai" and doc["data"][0]["embedding"]
    sent = openai_fake.received[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body["model"] == "text-embedding-ada-002" and sent.body["input"] == SPEC_EMBEDDINGS["input"]

    # task types routed to Anthropic go upstream with dated ids and max_tokens it accepts
    question = {"messages": SPEC_CHAT["messages"]}
    for task_type, dated, extra in [("sales_coaching", "claude-3-opus-20240229", {}),
                                    ("data_analysis", "claude-3-sonnet-20240229", {"max_tokens": 1000}),
                                    ("content_generation", "claude-3-sonnet-20240229", {})]:
        doc = await post(client, "/v1/chat/completions", {**question, "task_type": task_type, **extra})
        assert doc["provider"] == "anthropic"
        assert doc["choices"][0]["message"]["content"] == anthropic_fake.reply
        sent = anthropic_fake.received[-1]
        assert sent.path == "/v1/messages"
        assert sent.body["model"] == dated, task_type
        assert sent.body["max_tokens"] == extra.get("max_tokens", sent.body["max_tokens"])
        assert sent.body["max_tokens"] <= 4096, (task_type, sent.body["max_tokens"])

    # research goes to OpenRouter under OpenRouter's id
    doc = await post(client, "/v1/chat/completions", {**question, "task_type": "research"})
    assert doc["provider"] == "openrouter"
    assert openrouter_fake.received[-1].body["model"] == "anthropic/claude-3-opus"

    assert len(anthropic_fake.received) == 3 and len(openrouter_fake.received) == 1
    assert len(openai_fake.received) == 2


async def test_more_tokens_than_claude_3_accepts_is_refused_by_the_gateway(shipped_gateway: Any) -> None:
    client, _openai_fake, anthropic_fake, _openrouter_fake = shipped_gateway
    body = {"model": "claude-3-opus", "messages": SPEC_CHAT["messages"], "max_tokens": 8000}
    doc = await post(client, "/v1/chat/completions", body, status=400)
    assert doc["error"]["code"] == "max_tokens_exceeded" and "4096" in doc["error"]["message"]
    assert anthropic_fake.received == []
