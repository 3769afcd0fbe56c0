"""Caller authentication and the secure-by-default bind rule."""

from __future__ import annotations

import hashlib

import pytest

from proxy.config import parse_config
from proxy.pipeline.auth import is_loopback, match_key, unsafe_bind_reason
from tests.conftest import make_config

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
KEYS = {"keys": [{"name": "billing-svc", "key": "sk-gw-billing"},
                 {"name": "ops", "key_sha256": hashlib.sha256(b"sk-gw-ops").hexdigest()}]}


async def test_missing_key_is_401_in_openai_shape(gateway) -> None:
    client = await gateway(make_config(auth=KEYS))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 401
    error = (await resp.json())["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "missing_api_key"
    assert "Authorization: Bearer" in error["message"]


async def test_wrong_key_is_401_and_never_echoed(gateway) -> None:
    client = await gateway(make_config(auth=KEYS))
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": "Bearer sk-guess-123"})
    assert resp.status == 401
    text = await resp.text()
    assert "sk-guess-123" not in text
    assert (await resp.json())["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer sk-gw-billing"},
    {"Authorization": "bearer   sk-gw-billing"},
    {"x-api-key": "sk-gw-billing"},
    {"Authorization": "Bearer sk-gw-ops"},
])
async def test_valid_key_passes(gateway, headers) -> None:
    client = await gateway(make_config(auth=KEYS))
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert resp.status == 200, await resp.text()


async def test_models_needs_a_key_but_health_does_not(gateway) -> None:
    client = await gateway(make_config(auth=KEYS))
    assert (await client.get("/v1/models")).status == 401
    assert (await client.get("/health")).status == 200


async def test_auth_disabled_explicitly_lets_requests_through(gateway) -> None:
    client = await gateway(make_config(auth={"enabled": False, "keys": KEYS["keys"]}))
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200


def test_match_key_names_the_caller() -> None:
    auth = parse_config(make_config(auth=KEYS), environ={}).auth
    assert match_key(auth, "sk-gw-billing").name == "billing-svc"
    assert match_key(auth, "sk-gw-ops").name == "ops"
    assert match_key(auth, "sk-gw-billin") is None


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("gateway.internal", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_bind_without_keys_is_refused() -> None:
    no_keys = parse_config(make_config(), environ={}).auth
    assert unsafe_bind_reason(no_keys, "127.0.0.1") is None
    assert "refusing to listen on 0.0.0.0" in unsafe_bind_reason(no_keys, "0.0.0.0")
    with_keys = parse_config(make_config(auth=KEYS), environ={}).auth
    assert unsafe_bind_reason(with_keys, "0.0.0.0") is None
    disabled = parse_config(make_config(auth={"enabled": False}), environ={}).auth
    assert unsafe_bind_reason(disabled, "0.0.0.0") is None
