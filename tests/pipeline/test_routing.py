"""Route resolution: explicit model, then task_type rule, then the default."""

from __future__ import annotations

import pytest

from proxy.config import parse_config
from proxy.context import RequestContext
from proxy.errors import GatewayError
from proxy.pipeline.routing import resolve_route
from tests.conftest import make_config

RULES = {
    "default_provider": "mock",
    "default_model": "mock-gpt",
    "routing_rules": [{"task_type": "summarization", "provider": "mock", "model": "mock-fast"}],
}


def _config():
    raw = make_config("http://u.test/v1", routing=RULES)
    raw["providers"]["mock"]["models"]["mock-fast"] = {}
    return parse_config(raw, environ={})


def _resolve(body: dict, headers: dict | None = None):
    config = _config()
    ctx = RequestContext(request_id="r", state=None)  # type: ignore[arg-type]
    return resolve_route(config, body, headers or {}, ctx), ctx, body


def test_explicit_model_wins_over_task_type() -> None:
    route, ctx, body = _resolve({"model": "gpt-4o", "task_type": "summarization"})
    assert route.model.qualified_name == "openai/gpt-4o"
    assert route.reason == "explicit"
    assert ctx.task_type == "summarization"
    assert "task_type" not in body


def test_provider_slash_model_is_explicit() -> None:
    route, _, _ = _resolve({"model": "openai/fast"})
    assert route.model.upstream_model == "gpt-4o-mini"


def test_task_type_rule_from_body_or_header() -> None:
    route, _, body = _resolve({"task_type": "summarization"})
    assert (route.model.name, route.reason) == ("mock-fast", "task_type")
    assert "task_type" not in body
    route, ctx, _ = _resolve({}, {"X-Task-Type": "summarization"})
    assert route.model.name == "mock-fast"
    assert ctx.task_type == "summarization"


def test_unknown_task_type_uses_default_and_says_so() -> None:
    route, ctx, _ = _resolve({"task_type": "astrology"})
    assert (route.model.name, route.reason) == ("mock-gpt", "default")
    assert any("astrology" in note for note in ctx.notes)


def test_no_model_no_task_uses_default() -> None:
    route, _, _ = _resolve({})
    assert (route.model.name, route.reason) == ("mock-gpt", "default")


def test_unknown_model_is_404_model_not_found() -> None:
    with pytest.raises(GatewayError) as err:
        _resolve({"model": "gpt-7"})
    assert err.value.status == 404
    assert err.value.code == "model_not_found"
    assert err.value.param == "model"


async def test_unknown_model_over_http(gateway) -> None:
    client = await gateway(make_config())
    resp = await client.post("/v1/chat/completions",
                             json={"model": "gpt-7", "messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 404
    error = (await resp.json())["error"]
    assert error["code"] == "model_not_found"
    assert "/v1/models" in error["message"]


async def test_task_type_is_not_forwarded(gateway, fake_openai) -> None:
    fake, url = fake_openai
    raw = make_config(url, routing={"default_provider": "openai", "default_model": "gpt-4o",
                                    "routing_rules": [{"task_type": "research", "model": "fast"}]})
    client = await gateway(raw)
    resp = await client.post("/v1/chat/completions",
                             json={"task_type": "research", "messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 200
    sent = fake.received[-1].body
    assert "task_type" not in sent
    assert sent["model"] == "gpt-4o-mini"


def test_a_name_served_by_several_providers_is_drawn_by_weight_among_the_healthy() -> None:
    raw = make_config()
    raw["providers"]["a"] = {"type": "mock", "models": {"m": {"weight": 9}}}
    raw["providers"]["b"] = {"type": "mock", "models": {"m": {"weight": 1}}}
    config = parse_config(raw, environ={})

    def pick(healthy=lambda model: True) -> tuple[str, str | None]:
        ctx = RequestContext(request_id="r", state=None)  # type: ignore[arg-type]
        route = resolve_route(config, {"model": "m"}, {}, ctx, healthy)
        return route.model.provider, ctx.skipped

    picks = [pick()[0] for _ in range(2000)]
    assert 0.85 < picks.count("a") / 2000 < 0.95
    assert {pick(lambda model: model.provider == "b") for _ in range(20)} == {("b", "a/m=breaker_open")}
    assert {pick(lambda model: False)[0] for _ in range(200)} == {"a", "b"}  # none healthy: all drawn


def test_fallback_plan_order() -> None:
    from proxy.pipeline.routing import fallback_plan

    raw = make_config("http://u.test/v1", fallback={"enabled": True,
                                                     "fallback_map": {"openai/gpt-4o": ["mock/mock-gpt"]}})
    raw["providers"]["azure"] = {"type": "azure", "api_key": "k", "base_url": "https://a.test",
                                 "api_version": "2024-10-21", "models": {"gpt-4o": {}}}
    config = parse_config(raw, environ={})
    primary = config.providers["openai"].models["gpt-4o"]
    assert [m.qualified_name for m in fallback_plan(config, primary)] == [
        "openai/gpt-4o", "mock/mock-gpt", "azure/gpt-4o"]
    disabled = parse_config(make_config("http://u.test/v1"), environ={})
    assert fallback_plan(disabled, disabled.providers["openai"].models["gpt-4o"]) == (
        disabled.providers["openai"].models["gpt-4o"],)
