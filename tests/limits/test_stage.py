"""The limits stage, in-process: refusals, headers, reservations settled from real usage, reloads."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import openai
import pytest

from proxy.api.routes import ROUTES
from proxy.app import create_app
from proxy.config import ConfigError, parse_config
from proxy.config.reload import WATCHER
from proxy.limits.limiter import LIMITER
from proxy.pipeline.middleware import MODEL_ENDPOINTS
from tests.conftest import make_config

KEY = "sk-caller-alpha"
OTHER = "sk-caller-beta"
PRICE = {"input": 10.0, "output": 30.0}  # USD per million tokens


def config(url: str, key_limits: dict[str, Any] | None = None, team: dict[str, Any] | None = None,
           other_limits: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    cfg = make_config(url, **sections)
    cfg["providers"]["openai"]["models"]["gpt-4o"]["pricing"] = PRICE
    keys = [{"name": "alpha", "key": KEY, "team": "red"}, {"name": "beta", "key": OTHER, "team": "red"}]
    if key_limits is not None:
        keys[0]["limits"] = key_limits
    if other_limits is not None:
        keys[1]["limits"] = other_limits
    cfg["auth"] = {"keys": keys}
    if team is not None:
        cfg["auth"]["teams"] = {"red": {"limits": team}}
    return cfg


def chat(max_tokens: int | None = 100, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


async def post(client: Any, body: dict[str, Any], key: str = KEY, **headers: str) -> Any:
    resp = await client.post("/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-cache", **headers})
    await resp.read()
    return resp


async def limits_of(client: Any, key: str = KEY) -> dict[str, Any]:
    resp = await client.get("/v1/limits", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200
    return await resp.json()


# ------------------------------------------------------------------------------ rpm


async def test_rpm_refuses_past_the_limit_with_retry_after_and_openai_headers(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(config(url, {"rpm": 3}))
    answers = [await post(client, chat()) for _ in range(4)]
    assert [r.status for r in answers] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers[:3]] == ["2", "1", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in answers)
    assert answers[0].headers["x-ratelimit-reset-requests"] in ("1m0s", "1m1s", "59s", "1m")
    refused = answers[3]
    error = (await refused.json())["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "key 'alpha'" in error["message"] and "rpm" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert len(fake.received) == 3  # the refused request never reached the upstream
    # another key is not limited by alpha's rpm
    assert (await post(client, chat(), key=OTHER)).status == 200


async def test_a_team_limit_counts_every_key_of_the_team(gateway, fake_openai) -> None:
    _, url = fake_openai
    client = await gateway(config(url, team={"rpm": 2}))
    statuses = [(await post(client, chat(), key=k)).status for k in (KEY, OTHER, KEY, OTHER)]
    assert statuses == [200, 200, 429, 429]
    error = (await (await post(client, chat(), key=OTHER)).json())["error"]
    assert "team 'red'" in error["message"]


async def test_defaults_are_inherited_field_by_field(gateway, fake_openai) -> None:
    _, url = fake_openai
    cfg = config(url, {"tpm": 100000}, limits={"default": {"rpm": 1, "tpm": 5}})
    client = await gateway(cfg)
    assert (await post(client, chat())).status == 200
    assert (await post(client, chat())).status == 429  # rpm 1 inherited; tpm 100000 its own
    view = await limits_of(client)
    assert view["limits"][0]["rpm"]["limit"] == 1 and view["limits"][0]["tpm"]["limit"] == 100000
    beta = await limits_of(client, OTHER)
    assert beta["limits"][0]["tpm"]["limit"] == 5


# ------------------------------------------------------------------------------ tpm


async def test_tokens_are_reserved_from_max_tokens_and_settled_from_real_usage(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(config(url, {"tpm": 10_000}))
    resp = await post(client, chat(max_tokens=2000))
    assert resp.status == 200
    reserved_left = int(resp.headers["x-ratelimit-remaining-tokens"])
    assert reserved_left <= 10_000 - 2000  # the reservation: max_tokens plus the prompt's estimate
    view = await limits_of(client)
    used = fake.usage["prompt_tokens"] + fake.usage["completion_tokens"]
    assert view["limits"][0]["tpm"]["remaining"] == 10_000 - used  # settled: the real usage


async def test_tpm_refuses_what_would_not_fit_and_a_request_larger_than_the_limit(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(config(url, {"tpm": 3000}))
    fake.headers_delay = 0.3
    first = asyncio.ensure_future(post(client, chat(max_tokens=2900)))
    await asyncio.sleep(0.1)
    refused = await post(client, chat(max_tokens=2900))  # the first still holds its 2,900 and more
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert (await first).status == 200
    fake.headers_delay = 0
    # settled at its real 18 tokens: another 2,900 fits now
    assert (await post(client, chat(max_tokens=2900))).status == 200
    too_big = await post(client, chat(max_tokens=5000))  # more than the whole limit: waiting cannot help
    error = (await too_big.json())["error"]
    assert too_big.status == 429 and "more than" in error["message"] and "Retry-After" not in too_big.headers
    assert len(fake.received) == 2


async def test_without_max_tokens_the_model_limit_is_reserved(gateway, fake_openai) -> None:
    _, url = fake_openai
    client = await gateway(config(url, {"tpm": 5000}))
    resp = await post(client, chat(max_tokens=None))  # gpt-4o has max_tokens 4096 in the config
    assert resp.status == 200
    assert int(resp.headers["x-ratelimit-remaining-tokens"]) <= 5000 - 4096


# --------------------------------------------------------------------------- budget


async def test_a_budget_is_never_overspent_by_concurrent_requests(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.chunks, fake.chunk_delay = 1, 0.0
    fake.headers_delay = 0.05  # all requests are in flight together
    # worst case per request at 100 output tokens: 100 * 30/1e6 = $0.003 plus the prompt estimate
    client = await gateway(config(url, {"budget": {"usd": 0.01, "period": "day"}}))
    answers = await asyncio.gather(*(post(client, chat()) for _ in range(20)))
    ok = [r for r in answers if r.status == 200]
    refused = [r for r in answers if r.status == 429]
    assert ok and refused and len(ok) + len(refused) == 20
    for r in refused:
        error = (await r.json())["error"]
        assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    charged = sum(float(r.headers["X-Gateway-Cost"]) for r in ok)
    assert charged <= 0.01
    view = (await limits_of(client))["limits"][0]["budget"]
    assert view["spent_usd"] == pytest.approx(charged, abs=1e-9)
    assert view["period"] == "day" and view["resets_at"].endswith("T00:00:00Z")
    # settled at real cost, the budget has room again for requests that fit what is left
    assert view["remaining_usd"] == pytest.approx(0.01 - charged, abs=1e-9)


async def test_a_budget_on_an_unpriced_model_refuses_instead_of_counting_zero(gateway, fake_openai) -> None:
    _, url = fake_openai
    cfg = config(url, {"budget": {"usd": 1, "period": "total"}})
    cfg["providers"]["openai"]["type"] = "openai_compatible"  # no dataset price
    client = await gateway(cfg)
    resp = await post(client, chat(model="fast"))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "model_not_allowed"


# --------------------------------------------------------------------- models, parallel


async def test_models_outside_the_list_are_refused(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(config(url, {"models": ["gpt-4o"]}))
    assert (await post(client, chat())).status == 200
    refused = await post(client, chat(model="fast"))
    error = (await refused.json())["error"]
    assert refused.status == 403 and error["code"] == "model_not_allowed" and error["param"] == "model"
    assert len(fake.received) == 1


async def test_max_parallel_counts_requests_in_flight(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.headers_delay = 0.3
    client = await gateway(config(url, {"max_parallel": 2}))
    answers = await asyncio.gather(*(post(client, chat()) for _ in range(4)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200, 200, 429, 429]
    refused = next(r for r in answers if r.status == 429)
    assert refused.headers["Retry-After"] == "1"
    fake.headers_delay = 0
    assert (await post(client, chat())).status == 200  # the slots were given back


# ------------------------------------------------------------------ what is given back


async def test_a_failed_upstream_gives_back_its_tokens_and_cost(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.fail_status = 400
    client = await gateway(config(url, {"tpm": 5000, "budget": {"usd": 5, "period": "month"}}))
    assert (await post(client, chat(max_tokens=3000))).status == 400
    view = (await limits_of(client))["limits"][0]
    assert view["tpm"]["remaining"] == 5000 and view["budget"]["spent_usd"] == 0


async def test_a_caller_that_disconnects_gives_back_its_reservation(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.headers_delay = 2.0
    client = await gateway(config(url, {"tpm": 5000, "max_parallel": 1}))
    task = asyncio.ensure_future(post(client, chat(max_tokens=3000)))
    await asyncio.sleep(0.3)
    assert (await limits_of(client))["limits"][0]["max_parallel"]["in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        view = (await limits_of(client))["limits"][0]
        if view["max_parallel"]["in_flight"] == 0:
            break
        await asyncio.sleep(0.05)
    assert view["max_parallel"]["in_flight"] == 0 and view["tpm"]["remaining"] == 5000


async def test_a_cache_hit_counts_as_a_request_but_uses_no_tokens_or_budget(gateway, fake_openai) -> None:
    fake, url = fake_openai
    cfg = config(url, {"rpm": 10, "tpm": 5000, "budget": {"usd": 1, "period": "day"}},
                 caching={"enabled": True})
    client = await gateway(cfg)
    headers = {"Authorization": f"Bearer {KEY}"}
    first = await client.post("/v1/chat/completions", json=chat(), headers=headers)
    await first.read()
    before = (await limits_of(client))["limits"][0]
    hit = await client.post("/v1/chat/completions", json=chat(), headers=headers)
    await hit.read()
    assert hit.headers["X-Cache"] == "HIT"
    after = (await limits_of(client))["limits"][0]
    assert after["rpm"]["remaining"] == before["rpm"]["remaining"] - 1
    assert after["tpm"]["remaining"] == before["tpm"]["remaining"]
    assert after["budget"]["spent_usd"] == before["budget"]["spent_usd"]


# ------------------------------------------------------------------------ reload, view


async def test_a_reload_changes_limits_at_once_and_keeps_what_was_used(aiohttp_client, fake_openai, tmp_path) -> None:
    _, url = fake_openai
    path = tmp_path / "gateway.json"
    cfg = config(url, {"rpm": 3})
    path.write_text(json.dumps(cfg))
    app = create_app(parse_config(path.read_bytes(), source=str(path)), config_path=str(path), watch_interval=60)
    client = await aiohttp_client(app)
    assert [(await post(client, chat())).status for _ in range(3)] == [200, 200, 200]
    cfg["auth"]["keys"][0]["limits"] = {"rpm": 5}
    path.write_text(json.dumps(cfg))
    assert await client.app[WATCHER].reload("test")
    # the 3 already used still count: exactly 2 more pass
    assert [(await post(client, chat())).status for _ in range(3)] == [200, 200, 429]


async def test_the_limits_view_shows_only_what_is_set_and_is_not_counted(gateway, fake_openai) -> None:
    _, url = fake_openai
    client = await gateway(config(url, {"rpm": 2, "models": ["gpt-4o", "openai/fast"]},
                                  team={"budget": {"usd": 2.5, "period": "week"}, "max_parallel": 4}))
    for _ in range(3):
        view = await limits_of(client)
    assert view["key"] == "alpha" and view["team"] == "red"
    key_part, team_part = view["limits"]
    assert key_part == {"scope": "key", "name": "alpha", "rpm": {"limit": 2, "remaining": 2, "reset_seconds": 0.0},
                        "models": ["gpt-4o", "openai/fast"]}
    assert team_part["scope"] == "team" and team_part["name"] == "red"
    assert set(team_part) == {"scope", "name", "budget", "max_parallel"}
    assert team_part["budget"]["usd"] == 2.5 and team_part["budget"]["spent_usd"] == 0
    assert team_part["max_parallel"] == {"limit": 4, "in_flight": 0}


async def test_the_limits_view_with_auth_off(gateway) -> None:
    client = await gateway(make_config())
    resp = await client.get("/v1/limits")
    assert await resp.json() == {"key": None, "team": None, "limits": []}


# ------------------------------------------------------------------------- every route


SAMPLE_BODIES = {
    "chat": chat(),
    "embeddings": {"model": "text-embedding-3-small", "input": "hello"},
    "messages": {"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]},
    "count_tokens": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
}
"""A valid body for each endpoint that reaches a model: a new one must be added here."""
COUNTED_BY_THE_GATEWAY = frozenset({"count_tokens"})
"""Endpoints the gateway answers itself for an OpenAI model (it counts the tokens): limited, not forwarded."""


async def test_every_route_that_reaches_an_upstream_is_limited(gateway, fake_openai) -> None:
    fake, url = fake_openai
    for method, path, handler in ROUTES:
        endpoint = getattr(handler, "endpoint", None)
        client = await gateway(config(url, {"rpm": 1}))
        headers = {"Authorization": f"Bearer {KEY}", "Cache-Control": "no-cache"}
        before = len(fake.received)
        body = SAMPLE_BODIES.get(endpoint)
        first = await client.request(method, path, json=body, headers=headers)
        second = await client.request(method, path, json=body, headers=headers)
        reached = len(fake.received) > before
        if endpoint in MODEL_ENDPOINTS:
            assert body is not None, f"{path}: add a sample body for endpoint {endpoint!r}"
            assert (first.status, second.status) == (200, 429), path
            assert reached or endpoint in COUNTED_BY_THE_GATEWAY, path
        else:
            assert not reached, f"{path} reached an upstream without going through the limits stage"
        await client.close()


# ---------------------------------------------------------------------------- config


def test_several_workers_need_redis_for_limits() -> None:
    cfg = config("http://127.0.0.1:9/v1", {"rpm": 3}, api={"workers": 2})
    with pytest.raises(ConfigError, match=r"limits\.redis_url.*workers"):
        parse_config(cfg)
    cfg["limits"] = {"redis_url": "redis://127.0.0.1:6379/0"}
    assert parse_config(cfg).limits_redis_url == "redis://127.0.0.1:6379/0"


def test_limits_naming_an_unknown_model_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\$\.auth\.keys\[0\]\.limits\.models"):
        parse_config(config("http://127.0.0.1:9/v1", {"models": ["gpt-9"]}))


# ------------------------------------------------------------------------------- SDK


async def test_the_openai_sdk_backs_off_on_the_429_and_retries(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(config(url, {"max_parallel": 1}))
    fake.headers_delay = 0.5
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=KEY, max_retries=3)
    first = asyncio.ensure_future(sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}]))
    await asyncio.sleep(0.1)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "b"}])
    assert raw.http_response.status_code == 200
    assert raw.retries_taken >= 1  # the first try got 429 with Retry-After: 1, the SDK waited and retried
    await first
    with pytest.raises(openai.RateLimitError):
        no_retry = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=KEY, max_retries=0)
        other = asyncio.ensure_future(sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "c"}]))
        await asyncio.sleep(0.1)
        try:
            await no_retry.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "d"}])
        finally:
            await other
    assert client.app[LIMITER].backend.name == "memory"


# ------------------------------------------------------------------- Redis going away


@pytest.mark.parametrize("policy", ["allow", "deny"])
async def test_redis_down_follows_on_backend_error(gateway, fake_openai, own_redis, log_lines, policy) -> None:
    _, url = fake_openai
    cfg = config(url, {"rpm": 2}, limits={"redis_url": f"redis://127.0.0.1:{own_redis.port}/0",
                                          "on_backend_error": policy})
    client = await gateway(cfg)
    assert client.app[LIMITER].backend.name == "redis"
    assert [(await post(client, chat())).status for _ in range(3)] == [200, 200, 429]
    own_redis.stop()
    down = [await post(client, chat()) for _ in range(3)]
    if policy == "allow":
        assert [r.status for r in down] == [200, 200, 200]
        assert "x-ratelimit-limit-requests" not in down[0].headers
    else:
        assert [r.status for r in down] == [503, 503, 503]
        error = (await down[0].json())["error"]
        assert error["code"] == "limits_unavailable" and down[0].headers["Retry-After"] == "1"
    warnings = [line for line in log_lines.flushed() if line["event"] == "limits_unavailable"]
    assert len(warnings) == 1  # once per outage
    own_redis.start()  # a fresh Redis: the minute starts again
    for _ in range(50):
        resp = await post(client, chat())
        if "x-ratelimit-remaining-requests" in resp.headers:
            break
        await asyncio.sleep(0.1)
    assert resp.status == 200
    assert (await post(client, chat())).status == 200
    assert (await post(client, chat())).status == 429


async def test_the_caches_redis_is_used_for_limits_when_limits_name_none(gateway, fake_openai) -> None:
    _, url = fake_openai
    cfg = config(url, {"rpm": 5}, caching={"enabled": True, "redis_url": "redis://127.0.0.1:6379/0"})
    cfg["auth"]["keys"][0]["name"] = f"alpha-{uuid.uuid4().hex}"  # the shared Redis: counts of its own
    client = await gateway(cfg)
    assert client.app[LIMITER].backend.name == "redis"
    assert (await post(client, chat())).headers["x-ratelimit-limit-requests"] == "5"
