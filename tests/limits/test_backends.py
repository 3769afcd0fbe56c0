"""The memory and Redis backends, through the same cases: the Lua scripts keep the memory rules."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator

import pytest

from proxy.config import Budget, Limits
from proxy.limits.demand import Demand
from proxy.limits.memory import MemoryLimits
from proxy.limits.model import LimitsUnavailable, Refusal, Reservation, Scope
from proxy.limits.periods import period_bounds
from proxy.limits.redis_backend import RedisLimits

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    made = MemoryLimits() if request.param == "memory" else RedisLimits(REDIS_URL)
    yield made
    await made.close()


def scope(limits: Limits, kind: str = "key") -> Scope:
    name = f"t-{uuid.uuid4().hex[:12]}"  # a fresh name: nothing counted yet, in any backend
    period = period_bounds(limits.budget.period, time.time()) if limits.budget else None
    return Scope(kind, name, limits, period)


async def settle(backend: Any, reservation: Reservation, tokens: int, cost: int) -> None:
    backend.settle(reservation, tokens, cost)
    assert await backend.flush()


async def test_concurrent_reserves_never_pass_rpm(backend) -> None:
    scopes = (scope(Limits(rpm=10)),)
    results = await asyncio.gather(*(backend.reserve(scopes, Demand(1, 0), f"r{i}") for i in range(40)))
    granted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, Refusal)]
    assert len(granted) == 10 and len(refused) == 30
    assert all(r.limit == "rpm" and 0 < r.retry_after <= 61 for r in refused)
    assert sorted(g.readings[0].rpm_used for g in granted) == list(range(1, 11))


async def test_all_scopes_must_admit_and_only_then_all_are_counted(backend) -> None:
    key, team = scope(Limits(rpm=5)), scope(Limits(rpm=1), "team")
    assert isinstance(await backend.reserve((key, team), Demand(1, 0), "a"), Reservation)
    refused = await backend.reserve((key, team), Demand(1, 0), "b")
    assert isinstance(refused, Refusal) and (refused.scope, refused.limit) == ("team", "rpm")
    [key_now] = await backend.read((key,))
    assert key_now.rpm_used == 1  # the refused request counted nowhere


async def test_tokens_are_reserved_then_settled_to_real_use(backend) -> None:
    scopes = (scope(Limits(tpm=1000)),)
    first = await backend.reserve(scopes, Demand(800, 0), "a")
    assert isinstance(first, Reservation) and first.readings[0].tpm_used == 800
    refused = await backend.reserve(scopes, Demand(300, 0), "b")
    assert isinstance(refused, Refusal) and refused.limit == "tpm"
    await settle(backend, first, 120, 0)
    [now] = await backend.read(scopes)
    assert now.tpm_used == 120
    assert isinstance(await backend.reserve(scopes, Demand(800, 0), "c"), Reservation)
    too_big = await backend.reserve(scopes, Demand(1001, 0), "d")
    assert isinstance(too_big, Refusal) and too_big.retry_after is None


async def test_budget_holds_reservations_and_settles_to_the_real_cost(backend) -> None:
    scopes = (scope(Limits(budget=Budget(1.0, "day"))),)
    units = 10**10  # one dollar
    held = [await backend.reserve(scopes, Demand(1, units // 4), f"r{i}") for i in range(5)]
    assert [isinstance(h, Reservation) for h in held] == [True, True, True, True, False]
    assert held[4].limit == "budget" and 0 < held[4].retry_after <= 86400
    for reservation in held[:4]:
        await settle(backend, reservation, 10, units // 10)
    [now] = await backend.read(scopes)
    assert now.spent_units == 4 * units // 10
    assert isinstance(await backend.reserve(scopes, Demand(1, units // 2), "x"), Reservation)


async def test_max_parallel_slots_are_given_back_on_settle(backend) -> None:
    scopes = (scope(Limits(max_parallel=2)),)
    a = await backend.reserve(scopes, Demand(1, 0), "a")
    b = await backend.reserve(scopes, Demand(1, 0), "b")
    c = await backend.reserve(scopes, Demand(1, 0), "c")
    assert isinstance(c, Refusal) and c.limit == "max_parallel" and c.retry_after == 1.0
    await settle(backend, a, 0, 0)
    assert isinstance(await backend.reserve(scopes, Demand(1, 0), "d"), Reservation)
    assert b.readings[0].in_flight == 2


async def test_a_redis_settle_sent_twice_counts_once() -> None:
    backend = RedisLimits(REDIS_URL)
    try:
        scopes = (scope(Limits(tpm=1000, budget=Budget(5.0, "month"))),)
        held = await backend.reserve(scopes, Demand(500, 10**9), "once")
        assert isinstance(held, Reservation)
        backend.settle(held, 100, 10**8)
        backend.settle(held, 100, 10**8)  # a retried batch
        assert await backend.flush()
        [now] = await backend.read(scopes)
        assert (now.tpm_used, now.spent_units, now.in_flight) == (100, 10**8, 0)
    finally:
        await backend.close()


async def test_redis_down_is_reported_and_retried_after_a_pause(own_redis) -> None:
    backend = RedisLimits(f"redis://127.0.0.1:{own_redis.port}/0")
    try:
        scopes = (scope(Limits(rpm=5)),)
        assert isinstance(await backend.reserve(scopes, Demand(1, 0), "a"), Reservation)
        own_redis.stop()
        with pytest.raises(LimitsUnavailable):
            await backend.reserve(scopes, Demand(1, 0), "b")
        assert not backend.available
        with pytest.raises(LimitsUnavailable):  # skipped at once while it is considered down
            await backend.reserve(scopes, Demand(1, 0), "c")
        own_redis.start()
        for _ in range(40):
            if backend.available:
                break
            await asyncio.sleep(0.1)
        assert isinstance(await backend.reserve(scopes, Demand(1, 0), "d"), Reservation)
    finally:
        await backend.close()


async def test_a_redis_reserve_sent_twice_takes_once() -> None:
    backend = RedisLimits(REDIS_URL)
    try:
        scopes = (scope(Limits(rpm=10, tpm=1000, budget=Budget(5.0, "month"))),)
        first = await backend.reserve(scopes, Demand(300, 10**9), "twice")
        again = await backend.reserve(scopes, Demand(300, 10**9), "twice")  # a retry after a lost reply
        assert isinstance(first, Reservation) and isinstance(again, Reservation)
        assert again.second == first.second
        [now] = await backend.read(scopes)
        assert (now.rpm_used, now.tpm_used, now.spent_units, now.in_flight) == (1, 300, 10**9, 1)
        backend.settle(again, 50, 10**8)
        assert await backend.flush()
        [now] = await backend.read(scopes)
        assert (now.tpm_used, now.spent_units, now.in_flight) == (50, 10**8, 0)
    finally:
        await backend.close()
