"""The limits in force for the running gateway: the backend that counts, and the scopes a caller counts against.

One :class:`Limiter` lives for the app's lifetime (``LIMITER``), across reloads: the
counts belong to key and team names, not to a config, so limits changed by a reload
apply at once to what was already used. The backend (memory, or Redis) is chosen at
start; changing ``limits.redis_url`` needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from proxy.config import GatewayConfig, Limits
from proxy.ids import unique_id
from proxy.limits.demand import USD_UNITS
from proxy.limits.memory import MemoryLimits
from proxy.limits.model import KEY, TEAM, Scope
from proxy.limits.periods import period_bounds

if TYPE_CHECKING:
    from proxy.config import AuthKey
    from proxy.limits.redis_backend import RedisLimits

LEVELS_INTERVAL = 2.0
"""Seconds between readings of every budget for ``llm_gateway_budget_spent_usd``."""


class Limiter:
    """The backend, each caller's scopes (cached per config), and the budgets' last known levels."""

    def __init__(self, backend: "MemoryLimits | RedisLimits") -> None:
        self.backend = backend
        self._scopes: dict[str, tuple[GatewayConfig, tuple[Scope, ...], float | None]] = {}
        self._periods: dict[str, tuple[str, float, float | None]] = {}
        self.levels: dict[tuple[str, str], tuple[float, float]] = {}  # (scope, name) -> (spent, limit) USD
        self.backend_errors = 0
        self.closing = False
        self.on_backend_error: Callable[[], None] | None = None

    @classmethod
    def for_config(cls, config: GatewayConfig) -> "Limiter":
        """A limiter with the backend ``config`` asks for: Redis when it has a URL, else memory."""
        url = config.limits_redis_url
        limiter = cls(MemoryLimits())
        if url is not None:
            from proxy.limits.redis_backend import RedisLimits

            lapse = max(config.api.timeout, config.api.max_stream_duration) + 60.0
            limiter.backend = RedisLimits(url, timeout=config.limits.redis_timeout, lapse=lapse,
                                          on_error=limiter._backend_failed)
        return limiter

    def _backend_failed(self) -> None:
        self.backend_errors += 1
        if self.on_backend_error is not None:
            self.on_backend_error()

    def next_id(self) -> str:
        """A reservation id no other reservation of any gateway has."""
        return unique_id()

    def scopes_for(self, config: GatewayConfig, key: "AuthKey") -> tuple[Scope, ...]:
        """The key's and its team's scopes that have limits, with their budget periods as of now.

        Cached per key for the config in force (compared by identity, so a reloaded config
        is never served another's limits) until the first of their budget periods ends.
        """
        cached = self._scopes.get(key.name)
        if cached is not None and cached[0] is config and (cached[2] is None or time.time() < cached[2]):
            return cached[1]
        if len(self._scopes) > 10_000:
            self._scopes.clear()
        scopes = tuple(self._with_period(scope) for scope in _configured_scopes(config, key))
        ends = [scope.period[2] for scope in scopes if scope.period is not None and scope.period[2] is not None]
        self._scopes[key.name] = (config, scopes, min(ends) if ends else None)
        return scopes

    def all_scopes(self, config: GatewayConfig) -> list[Scope]:
        """Every key and team with limits (each once)."""
        seen: dict[tuple[str, str], Scope] = {}
        for key in config.auth.keys:
            for scope in self.scopes_for(config, key):
                seen.setdefault((scope.scope, scope.name), scope)
        for name, limits in config.auth.teams.items():
            if limits.any:
                seen.setdefault((TEAM, name), self._with_period(Scope(TEAM, name, limits)))
        return list(seen.values())

    def _with_period(self, scope: Scope) -> Scope:
        budget = scope.limits.budget
        if budget is None:
            return scope
        period = self._periods.get(budget.period)
        now = time.time()
        if period is None or (period[2] is not None and now >= period[2]):
            period = self._periods[budget.period] = period_bounds(budget.period, now)
        return Scope(scope.scope, scope.name, scope.limits, period)

    async def refresh_levels(self, config: GatewayConfig) -> None:
        """Read every budget from the backend (other replicas' spending, a new period)."""
        scopes = [scope for scope in self.all_scopes(config) if scope.limits.budget is not None]
        readings = await self.backend.read(scopes)
        levels = {}
        for scope, reading in zip(scopes, readings):
            assert scope.limits.budget is not None
            levels[(scope.scope, scope.name)] = (reading.spent_units / USD_UNITS, scope.limits.budget.usd)
        self.levels = levels

    async def close(self) -> None:
        """Send pending settles and close the backend."""
        await self.backend.close()


def _configured_scopes(config: GatewayConfig, key: "AuthKey") -> tuple[Scope, ...]:
    scopes = []
    if key.limits.any:
        scopes.append(Scope(KEY, key.name, key.limits))
    if key.team is not None:
        team: Limits | None = config.auth.teams.get(key.team)
        if team is not None and team.any:
            scopes.append(Scope(TEAM, key.team, team))
    return tuple(scopes)


LIMITER = web.AppKey("limiter", Limiter)


async def follow_budget_levels(app: web.Application, limiter: Limiter) -> None:
    """Read every budget's level every :data:`LEVELS_INTERVAL` seconds, for as long as the app runs."""
    from proxy.state import STATE

    while not limiter.closing:  # checked as well as cancelled: a client library may swallow a cancel
        holder = app.get(STATE)
        if holder is not None:
            with contextlib.suppress(Exception):  # a failing backend is counted and logged by itself
                await limiter.refresh_levels(holder.current.config)
        await asyncio.sleep(LEVELS_INTERVAL)


async def stop_following(limiter: Limiter, follower: "asyncio.Task[None]") -> None:
    """Stop :func:`follow_budget_levels`, waiting for it at most 2 seconds."""
    limiter.closing = True
    follower.cancel()
    await asyncio.wait({follower}, timeout=2.0)
