"""Limits in real ``python -m proxy`` processes: two gateways sharing one Redis count as one.

Each test starts its gateways once (two processes on one Redis of the test's own, see
``tests/own_redis.py``) and drives them concurrently with aiohttp: ``rpm`` and budgets hold
exactly across both, tokens reserved on one process are seen (and settled) through the
other's ``GET /v1/limits``, Redis stopped and restarted under load follows
``limits.on_backend_error``, and the metrics port counts refusals and shows budgets.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from proxy.limits.demand import estimate_prompt_tokens
from tests.conftest import make_config
from tests.fakes import FakeOpenAI
from tests.observability.test_metrics import Scrape
from tests.own_redis import OwnRedis
from tests.process import GatewayProcess, free_port, write_config

ALPHA, BETA = "sk-limits-alpha-0001", "sk-limits-beta-00001"
PRICING = {"input": 10.0, "output": 2500.0}
"""USD per million tokens for ``mock-gpt``: its answer to ``CHAT`` (5 prompt tokens, 4 completion
tokens, one per stream chunk) costs about a cent, and ``max_tokens: 8`` reserves about two."""
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
WAIT = 10.0
"""Seconds: the bound on every wait for something to happen."""


# ------------------------------------------------------------------------ helpers


@dataclass
class Answer:
    """One gateway answer, read whole."""

    status: int
    headers: CIMultiDictProxy[str]
    body: dict[str, Any]
    port: int

    @property
    def code(self) -> str | None:
        """The error code of an error answer."""
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None

    @property
    def cost(self) -> float:
        """The charged cost (``X-Gateway-Cost``)."""
        return float(self.headers["X-Gateway-Cost"])


def gateway_config(keys: list[dict[str, Any]], *, redis_url: str | None = None, teams: dict[str, Any] | None = None,
                   limits: dict[str, Any] | None = None, upstream_url: str | None = None,
                   latency: float = 0.0, **sections: Any) -> dict[str, Any]:
    """A config with the mock provider (priced), ``keys`` and their limits, counted in ``redis_url``.

    With Redis, unless ``limits`` says otherwise, a Redis call may take 2 s and one that
    fails is refused (``deny``): on a loaded machine a slow answer then shows as a 503
    naming the cause, never as a request let through unchecked that would look like a leak.
    """
    config = make_config(upstream_url, **sections)
    mock = config["providers"]["mock"]
    mock["models"]["mock-gpt"]["pricing"] = PRICING
    mock["mock"]["latency"] = latency
    config["auth"] = {"keys": keys}
    if teams is not None:
        config["auth"]["teams"] = {name: {"limits": value} for name, value in teams.items()}
    section = dict(limits or {})
    if redis_url is not None:
        section = {"redis_url": redis_url, "on_backend_error": "deny", "redis_timeout": 2.0, **section}
    if section:
        config["limits"] = section
    return config


def redis_url(redis: OwnRedis) -> str:
    """The URL of the test's own Redis."""
    return f"redis://127.0.0.1:{redis.port}/0"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``start(config, name)``: a gateway process in its own folder ``tmp_path/name``; all killed in teardown."""
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any], name: str) -> GatewayProcess:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        path = write_config(folder / "gateway.json", config)
        gw = GatewayProcess(["--config", str(path), "--port", "0"], cwd=folder)
        gw.config_path = path
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.kill()


async def start_pair(processes: Callable[..., GatewayProcess],
                     config: dict[str, Any]) -> tuple[list[GatewayProcess], list[int]]:
    """Two gateway processes on ``config``, started together; them and their ports."""
    gateways = [processes(config, "a"), processes(config, "b")]
    return gateways, list(await asyncio.gather(*(gw.await_started() for gw in gateways)))


def events(gateways: list[GatewayProcess]) -> list[dict[str, Any]]:
    """Every log line but the per-request ones, of every gateway (for assertion messages)."""
    return [line for gw in gateways for line in gw.lines(lambda line: line.get("event") != "request")]


async def post_chat(session: aiohttp.ClientSession, port: int, key: str, body: Any = CHAT) -> Answer:
    """``POST /v1/chat/completions`` to the gateway on ``port``; ``body`` a dict, or raw bytes."""
    options = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", **options,
                            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as resp:
        return Answer(resp.status, resp.headers, await resp.json(content_type=None), port)


async def burst(session: aiohttp.ClientSession, ports: list[int], key: str, count: int,
                body: Any = CHAT) -> list[Answer]:
    """``count`` concurrent requests, spread evenly over ``ports``."""
    return list(await asyncio.gather(*(post_chat(session, ports[i % len(ports)], key, body)
                                       for i in range(count))))


async def limits_of(session: aiohttp.ClientSession, port: int, key: str) -> tuple[int, dict[str, Any]]:
    """``GET /v1/limits`` on ``port`` as ``key``: the status and the answer."""
    async with session.get(f"http://127.0.0.1:{port}/v1/limits",
                           headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, await resp.json(content_type=None)


async def scope_of(session: aiohttp.ClientSession, port: int, key: str, scope: str = "key") -> dict[str, Any]:
    """The ``scope`` part (``key`` or ``team``) of the caller's ``GET /v1/limits``."""
    status, view = await limits_of(session, port, key)
    assert status == 200, view
    return next(part for part in view["limits"] if part["scope"] == scope)


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def session() -> aiohttp.ClientSession:
    """A client session without a connection cap, so a burst is really concurrent."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


# ---------------------------------------------------------------------------- rpm


async def test_two_gateways_on_one_redis_let_exactly_rpm_requests_through(processes, own_redis) -> None:
    config = gateway_config([{"name": "alpha", "key": ALPHA, "limits": {"rpm": 30}}], redis_url=redis_url(own_redis))
    gateways, ports = await start_pair(processes, config)
    async with session() as client:
        answers = await burst(client, ports, ALPHA, 100)
        views = [await scope_of(client, port, ALPHA) for port in ports]
    passed = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    assert (len(passed), len(refused)) == (30, 70), (sorted((a.status, a.code) for a in answers), events(gateways))
    for answer in refused:
        assert answer.code == "rate_limit_exceeded"
        assert 1 <= int(answer.headers["Retry-After"]) <= 61
        assert answer.headers["x-ratelimit-limit-requests"] == "30"
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
    remaining = sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in passed)
    assert remaining == list(range(30))  # each admitted request saw what was left after it, across both
    assert [v["rpm"]["remaining"] for v in views] == [0, 0]


# ------------------------------------------------------------------------- budget


async def test_a_budget_shared_by_two_gateways_is_never_overspent(processes, own_redis) -> None:
    budget = 0.05
    config = gateway_config([{"name": "payer", "key": ALPHA, "limits": {"budget": {"usd": budget, "period": "total"}}}],
                            redis_url=redis_url(own_redis), latency=0.2)
    gateways, ports = await start_pair(processes, config)
    async with session() as client:
        answers = await burst(client, ports, ALPHA, 50)
        passed = [a for a in answers if a.status == 200]
        refused = [a for a in answers if a.status != 200]
        charged = sum(a.cost for a in passed)

        async def settled() -> list[dict[str, Any]] | None:
            views = [(await scope_of(client, port, ALPHA))["budget"] for port in ports]
            return views if all(v["spent_usd"] == pytest.approx(charged, abs=1e-9) for v in views) else None

        views = await until(settled, f"both gateways showing the ${charged} charged as spent")
    assert passed and refused, events(gateways)
    assert charged <= budget
    for answer in refused:
        assert answer.status == 429 and answer.code == "budget_exceeded", answer.body
        assert answer.body["error"]["type"] == "insufficient_quota"
        assert "payer" in answer.body["error"]["message"]
    for view in views:
        assert view["usd"] == budget and view["period"] == "total" and view["resets_at"] is None
        assert view["remaining_usd"] == pytest.approx(budget - charged, abs=1e-9)


# ------------------------------------------------------------------------- tokens


class GatedOpenAI(FakeOpenAI):
    """A fake OpenAI upstream that holds every chat request until :attr:`gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.arrived = 0

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.arrived += 1
        await self.gate.wait()
        return await super().chat(request)


def reserved_tokens(body: bytes, output: int) -> int:
    """What a request reserves against ``tpm``: its prompt estimated from the body's size, plus ``output``."""
    return estimate_prompt_tokens(len(body)) + output


async def test_tokens_reserved_on_one_gateway_and_settled_are_seen_on_the_other(processes, own_redis,
                                                                                aiohttp_server) -> None:
    fake = GatedOpenAI()
    server = await aiohttp_server(fake.app())
    tpm = 100_000
    config = gateway_config([{"name": "alpha", "key": ALPHA, "limits": {"tpm": tpm, "max_parallel": 5}}],
                            redis_url=redis_url(own_redis), upstream_url=str(server.make_url("/v1")))
    gateways, ports = await start_pair(processes, config)
    asked = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "one"}], "max_tokens": 700})
    unbounded = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "two"}]})
    own = [reserved_tokens(asked, 700), reserved_tokens(unbounded, 4096)]  # gpt-4o's max_tokens is 4096
    held = sum(own)
    async with session() as client:
        first = asyncio.ensure_future(post_chat(client, ports[0], ALPHA, asked))
        second = asyncio.ensure_future(post_chat(client, ports[1], ALPHA, unbounded))

        async def both_held() -> bool:
            return fake.arrived == 2

        await until(both_held, "both requests reaching the upstream")
        in_flight = [await scope_of(client, port, ALPHA) for port in ports]
        fake.gate.set()
        answers = [await first, await second]
        used = fake.usage["prompt_tokens"] + fake.usage["completion_tokens"]

        async def settled() -> list[dict[str, Any]] | None:
            views = [await scope_of(client, port, ALPHA) for port in ports]
            return views if all(v["tpm"]["remaining"] == tpm - 2 * used for v in views) else None

        after = await until(settled, "both reservations settled at the real usage")
    for view in in_flight:  # each gateway sees both reservations: its own and the other's
        assert view["tpm"]["remaining"] == tpm - held
        assert view["max_parallel"]["in_flight"] == 2
    assert [a.status for a in answers] == [200, 200]
    assert [a.body["usage"]["total_tokens"] for a in answers] == [used, used]
    # what remained after each reservation: the first saw only its own, the second both
    remaining = [int(a.headers["x-ratelimit-remaining-tokens"]) for a in answers]
    assert sorted(remaining) in ([tpm - held, tpm - own[0]], [tpm - held, tpm - own[1]]), (remaining, own)
    assert all(v["max_parallel"]["in_flight"] == 0 for v in after)


# ------------------------------------------------------------ Redis going away


LOADERS = 4
"""Concurrent request loops keeping both gateways busy while Redis is stopped and started."""


class Load:
    """Requests sent back to back by :data:`LOADERS` loops, alternating between gateways, until stopped."""

    def __init__(self, client: aiohttp.ClientSession, ports: list[int], key: str) -> None:
        self.answers: list[Answer] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._loop(client, ports, key, i)) for i in range(LOADERS)]

    async def _loop(self, client: aiohttp.ClientSession, ports: list[int], key: str, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            self.answers.append(await post_chat(client, ports[turn % len(ports)], key))
            turn += 1

    async def wait_for(self, count: int, what: str) -> int:
        """Wait until ``count`` more answers have come; how many had come before."""
        start = len(self.answers)

        async def enough() -> bool:
            return len(self.answers) >= start + count

        await until(enough, what)
        return start

    async def stop(self) -> list[Answer]:
        """Stop the loops; every answer."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.answers


def redis_keys(redis: OwnRedis, policy: str) -> dict[str, Any]:
    """Two keys counted in ``redis`` under ``policy``: ALPHA (the load; rpm far above it) and BETA (rpm 10)."""
    keys = [{"name": "alpha", "key": ALPHA, "limits": {"rpm": 100_000}},
            {"name": "beta", "key": BETA, "limits": {"rpm": 10}}]
    return gateway_config(keys, redis_url=redis_url(redis), limits={"on_backend_error": policy})


async def reachable_again(client: aiohttp.ClientSession, ports: list[int]) -> None:
    """Wait until both gateways read their limits from Redis again (``GET /v1/limits`` answers 200)."""
    for port in ports:
        async def answered() -> bool:
            return (await limits_of(client, port, BETA))[0] == 200

        await until(answered, f"the gateway on {port} reaching the restarted Redis")


async def warm_up(client: aiohttp.ClientSession, ports: list[int]) -> None:
    """A burst as ALPHA, so each gateway holds a pool of open Redis connections when Redis goes away."""
    answers = await burst(client, ports, ALPHA, 40)
    assert {a.status for a in answers} == {200}


async def exactly_rpm_pass(client: aiohttp.ClientSession, ports: list[int], gateways: list[GatewayProcess]) -> None:
    """A burst of three times BETA's rpm over both gateways: exactly 10 pass, the rest get 429,
    and neither gateway finds Redis down again (connections made before Redis went away included)."""
    warned = [len(gw.lines("limits_unavailable")) for gw in gateways]
    answers = await burst(client, ports, BETA, 30)
    statuses = sorted((a.status, a.code) for a in answers)
    assert statuses == [(200, None)] * 10 + [(429, "rate_limit_exceeded")] * 20, (statuses, events(gateways))
    assert [len(gw.lines("limits_unavailable")) for gw in gateways] == warned


async def test_with_allow_requests_pass_while_redis_is_down_and_limits_hold_after(processes, own_redis) -> None:
    gateways, ports = await start_pair(processes, redis_keys(own_redis, "allow"))
    async with session() as client:
        await warm_up(client, ports)
        load = Load(client, ports, ALPHA)
        await load.wait_for(20, "answers with Redis up")
        own_redis.stop()
        for gw in gateways:
            await gw.await_for("limits_unavailable", timeout=WAIT)
        down_from = await load.wait_for(40, "answers with Redis down")
        unchecked = await burst(client, ports, BETA, 30)  # three times beta's rpm: none of it can be counted
        warnings = [gw.lines("limits_unavailable") for gw in gateways]
        own_redis.start()
        await reachable_again(client, ports)
        answers = await load.stop()
        await exactly_rpm_pass(client, ports, gateways)
    assert [a.status for a in unchecked] == [200] * 30
    assert {a.status for a in answers} == {200}, sorted({(a.status, a.code) for a in answers})
    assert {a.port for a in answers[down_from:]} == set(ports)
    for found in warnings:
        [warning] = found  # once, for all the requests its gateway let through unchecked
        assert warning["level"] == "WARNING" and warning["backend"] == "redis"
    for gw in gateways:
        await gw.await_for("limits_recovered", timeout=WAIT)


async def test_with_deny_requests_get_503_while_redis_is_down_and_limits_hold_after(processes, own_redis) -> None:
    gateways, ports = await start_pair(processes, redis_keys(own_redis, "deny"))
    async with session() as client:
        await warm_up(client, ports)
        load = Load(client, ports, ALPHA)
        await load.wait_for(20, "answers with Redis up")
        own_redis.stop()
        down_from = len(load.answers)

        async def both_denied() -> bool:
            return {a.port for a in load.answers[down_from:] if a.status == 503} == set(ports)

        await until(both_denied, "both gateways answering 503 while Redis is down")
        own_redis.start()
        up_from = len(load.answers)

        async def both_passing() -> bool:
            return {a.port for a in load.answers[up_from:] if a.status == 200} == set(ports)

        await until(both_passing, "both gateways answering 200 after Redis is back")
        answers = await load.stop()
        await exactly_rpm_pass(client, ports, gateways)
    assert {a.status for a in answers[:down_from]} == {200}
    denied = [a for a in answers if a.status != 200]
    assert denied and {(a.status, a.code) for a in denied} == {(503, "limits_unavailable")}
    assert all(a.headers["Retry-After"] == "1" for a in denied)
    assert "retry shortly" in denied[0].body["error"]["message"]


# ------------------------------------------------------------------------ metrics


async def scrape(port: int) -> Scrape:
    """One scrape of a gateway's metrics port, parsed."""
    async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        return Scrape(await resp.text())


def value(result: Scrape, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples with these labels (``name`` included, which ``Scrape.value`` cannot take)."""
    return sum(s.value for s in result.samples
               if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()))


async def test_the_metrics_port_counts_refusals_and_shows_budgets(processes) -> None:
    metrics_port = free_port()
    keys = [{"name": "alpha", "key": ALPHA, "limits": {"rpm": 3}},
            {"name": "payer", "key": BETA, "limits": {"budget": {"usd": 0.035, "period": "month"}}}]
    config = gateway_config(keys, monitoring={"metrics_enabled": True, "prometheus_port": metrics_port})
    gw = processes(config, "a")
    port = await gw.await_started()
    async with session() as client:
        limited = [await post_chat(client, port, ALPHA) for _ in range(5)]
        spent = [await post_chat(client, port, BETA) for _ in range(3)]
    assert [a.status for a in limited] == [200, 200, 200, 429, 429]
    assert [a.status for a in spent] == [200, 200, 429] and spent[2].code == "budget_exceeded"
    charged = spent[0].cost + spent[1].cost

    async def shown() -> Scrape | None:
        result = await scrape(metrics_port)
        done = (value(result, "llm_gateway_limit_rejections_total") == 3
                and value(result, "llm_gateway_budget_spent_usd", scope="key", name="payer")
                == pytest.approx(charged, abs=1e-9))
        return result if done else None

    result = await until(shown, "the refusals and the settled spend on the metrics port")
    rejections = "llm_gateway_limit_rejections_total"
    assert value(result, rejections, scope="key", name="alpha", limit="rpm") == 2
    assert value(result, rejections, scope="key", name="payer", limit="budget") == 1
    assert value(result, "llm_gateway_budget_limit_usd", scope="key", name="payer") == 0.035
    assert result.label_values("llm_gateway_budget_limit_usd", "name") == {"payer"}  # alpha has no budget
    assert result.label_values("llm_gateway_budget_spent_usd", "name") == {"payer"}
