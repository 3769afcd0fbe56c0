"""Limits counted in one Redis shared by every worker and replica.

Each check-and-reserve is one Lua script (one round trip before the upstream is
called) and each settle another, batched with other requests' settles in one pipeline
after the request has ended, off its path. Redis runs a script atomically, so
concurrent requests on any number of gateways can never together pass a limit, and the
scripts take the time from Redis itself (``TIME``), so replicas with clocks apart still
count one minute and one budget period alike.

Keys (``llm-gateway:limits:<scope>:<name>:...``): ``rpm`` and ``tpm`` are hashes of
second -> use (the sliding minute of ``proxy/limits/windows.py``), ``flight`` a sorted
set of the reservations in flight scored by when they lapse (a gateway that dies
mid-request frees its slots after the longest the request could have run), and
``budget:<period id>`` the units spent in that period. Settling is idempotent: it only
applies while the reservation is still in ``flight``, so a retried batch never counts
twice; likewise a reserve retried after its reply was lost finds its reservation held and
takes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Iterable

from proxy.limits.demand import Demand
from proxy.limits.model import LimitsUnavailable, Reading, Refusal, Reservation, Scope
from proxy.limits.windows import KEEP_SECONDS
from proxy.observability.logs import log_event
from proxy.redis_outage import RETRY_AFTER_FAILURE, RedisOutage

KEY_PREFIX = "llm-gateway:limits:"
CLOSE_TIMEOUT = 5.0
SETTLE_BATCH = 200
MAX_PENDING_SETTLES = 100_000
"""Settles waiting for Redis beyond this are dropped (their reservations then lapse)."""

_WINDOW_LUA = """
local KEEP = %d
local function window(key, sec)
  local flat = redis.call('HGETALL', key)
  local oldest = sec - KEEP + 1
  local buckets = {}
  local total = 0
  for i = 1, #flat, 2 do
    local b = tonumber(flat[i])
    local a = tonumber(flat[i + 1])
    if b < oldest then
      redis.call('HDEL', key, flat[i])
    else
      total = total + a
      buckets[#buckets + 1] = {b, a}
    end
  end
  table.sort(buckets, function(x, y) return x[1] < y[1] end)
  return total, buckets
end
local function wait_for(total, buckets, need, limit, now)
  if need > limit then return -1 end
  local excess = total + need - limit
  if excess <= 0 then return 0 end
  local freed = 0
  for _, b in ipairs(buckets) do
    freed = freed + b[2]
    if freed >= excess then return math.max(0, b[1] + KEEP - now) end
  end
  return KEEP
end
local function reset_in(buckets, sec, now)
  local last = sec
  if #buckets > 0 and buckets[#buckets][1] > last then last = buckets[#buckets][1] end
  return math.max(0, last + KEEP - now)
end
""" % KEEP_SECONDS

RESERVE_LUA = _WINDOW_LUA + """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local rid = ARGV[2]
local tokens = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local lapse = tonumber(ARGV[5])
if n > 0 then
  local held = redis.call('ZSCORE', KEYS[3], rid)
  if held then
    -- this reservation was already taken (a retry after a lost reply): report it, change nothing
    local out = {'ok', tostring(math.floor(tonumber(held) - lapse))}
    for i = 0, n - 1 do
      local k = i * 4
      local rt, rb = window(KEYS[k + 1], sec)
      local tt, tb = window(KEYS[k + 2], sec)
      out[#out + 1] = tostring(rt)
      out[#out + 1] = tostring(reset_in(rb, sec, now))
      out[#out + 1] = tostring(tt)
      out[#out + 1] = tostring(reset_in(tb, sec, now))
      out[#out + 1] = tostring(redis.call('ZCARD', KEYS[k + 3]))
      out[#out + 1] = redis.call('GET', KEYS[k + 4]) or '0'
    end
    return out
  end
end
local seen = {}
for i = 0, n - 1 do
  local k, a = i * 4, 5 + i * 5
  local rpm, tpm, par, budget = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local s = {rt = 0, rb = {}, tt = 0, tb = {}, spent = 0}
  if budget >= 0 then
    s.spent = tonumber(redis.call('GET', KEYS[k + 4]) or '0')
    if s.spent + cost > budget then return {'budget', i, '-1'} end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
  s.flight = redis.call('ZCARD', KEYS[k + 3])
  if par >= 0 and s.flight >= par then return {'max_parallel', i, '1'} end
  if rpm >= 0 then
    s.rt, s.rb = window(KEYS[k + 1], sec)
    local w = wait_for(s.rt, s.rb, 1, rpm, now)
    if w ~= 0 then return {'rpm', i, tostring(w)} end
  end
  if tpm >= 0 then
    s.tt, s.tb = window(KEYS[k + 2], sec)
    local w = wait_for(s.tt, s.tb, tokens, tpm, now)
    if w ~= 0 then return {'tpm', i, tostring(w)} end
  end
  seen[i] = s
end
local out = {'ok', sec}
for i = 0, n - 1 do
  local k, a = i * 4, 5 + i * 5
  local rpm, tpm, budget, ttl = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local s = seen[i]
  local rpm_reset, tpm_reset = 0, 0
  if rpm >= 0 then
    redis.call('HINCRBY', KEYS[k + 1], sec, 1)
    redis.call('EXPIRE', KEYS[k + 1], KEEP + 1)
    s.rt = s.rt + 1
    rpm_reset = reset_in(s.rb, sec, now)
  end
  if tpm >= 0 then
    redis.call('HINCRBY', KEYS[k + 2], sec, tokens)
    redis.call('EXPIRE', KEYS[k + 2], KEEP + 1)
    s.tt = s.tt + tokens
    tpm_reset = reset_in(s.tb, sec, now)
  end
  redis.call('ZADD', KEYS[k + 3], now + lapse, rid)
  redis.call('EXPIRE', KEYS[k + 3], math.ceil(lapse) + 1)
  if budget >= 0 then
    s.spent = redis.call('INCRBY', KEYS[k + 4], cost)
    if ttl > 0 then redis.call('EXPIRE', KEYS[k + 4], ttl) end
  end
  out[#out + 1] = tostring(s.rt)
  out[#out + 1] = tostring(rpm_reset)
  out[#out + 1] = tostring(s.tt)
  out[#out + 1] = tostring(tpm_reset)
  out[#out + 1] = tostring(s.flight + 1)
  out[#out + 1] = tostring(s.spent)
end
return out
"""

SETTLE_LUA = """
local n = tonumber(ARGV[1])
local rid = ARGV[2]
local sec = ARGV[3]
local dtokens = tonumber(ARGV[4])
local dcost = tonumber(ARGV[5])
local applied = 0
for i = 0, n - 1 do
  local k, a = i * 3, 5 + i * 2
  if redis.call('ZREM', KEYS[k + 2], rid) == 1 then
    applied = applied + 1
    if ARGV[a + 1] == '1' and dtokens ~= 0 then
      local cur = redis.call('HGET', KEYS[k + 1], sec)
      if cur then
        local v = tonumber(cur) + dtokens
        if v <= 0 then redis.call('HDEL', KEYS[k + 1], sec) else redis.call('HSET', KEYS[k + 1], sec, v) end
      end
    end
    if ARGV[a + 2] == '1' and dcost ~= 0 and redis.call('EXISTS', KEYS[k + 3]) == 1 then
      local v = redis.call('INCRBY', KEYS[k + 3], dcost)
      if v < 0 then redis.call('SET', KEYS[k + 3], 0, 'KEEPTTL') end
    end
  end
end
return applied
"""

READ_LUA = _WINDOW_LUA + """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local out = {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local k = i * 4
  local rt, rb = window(KEYS[k + 1], sec)
  local tt, tb = window(KEYS[k + 2], sec)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
  local rr, tr = 0, 0
  if #rb > 0 then rr = reset_in(rb, rb[#rb][1], now) end
  if #tb > 0 then tr = reset_in(tb, tb[#tb][1], now) end
  out[#out + 1] = tostring(rt)
  out[#out + 1] = tostring(rr)
  out[#out + 1] = tostring(tt)
  out[#out + 1] = tostring(tr)
  out[#out + 1] = tostring(redis.call('ZCARD', KEYS[k + 3]))
  out[#out + 1] = redis.call('GET', KEYS[k + 4]) or '0'
end
return out
"""


def scope_keys(scope: Scope) -> tuple[str, str, str, str]:
    """The Redis keys of one scope: rpm, tpm, flight and (this period's) budget."""
    base = f"{KEY_PREFIX}{scope.scope}:{scope.name}:"
    period = scope.period[0] if scope.period is not None else "none"
    return base + "rpm", base + "tpm", base + "flight", base + "budget:" + period


class RedisLimits:
    """The Redis backend: one script per check-and-reserve, batched settles."""

    name = "redis"
    local = False

    def __init__(self, url: str, timeout: float = 0.25, lapse: float = 3700.0,
                 on_error: Any = None) -> None:
        import redis.asyncio as aioredis  # only a gateway with Redis limits pays for the import
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        # A pooled connection that died with a restarted Redis fails once; that one try is
        # repeated on a fresh connection (timeouts are not: every wait stays bounded).
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError], health_check_interval=0)
        self._reserve = self._client.register_script(RESERVE_LUA)
        self._settle = self._client.register_script(SETTLE_LUA)
        self._read = self._client.register_script(READ_LUA)
        self.lapse = lapse
        self._outage = RedisOutage("limits", "limits.on_backend_error applies until Redis answers again",
                                   on_error)
        self._pending: list[tuple[list[str], list[Any]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.dropped_settles = 0

    @property
    def available(self) -> bool:
        """False while Redis is considered down."""
        return self._outage.available

    async def reserve(self, scopes: tuple[Scope, ...], demand: Demand,
                      reservation_id: str) -> Reservation | Refusal:
        """Check and reserve in one script; :class:`LimitsUnavailable` when Redis cannot answer."""
        if not self.available:
            raise LimitsUnavailable("Redis is down")
        keys: list[str] = []
        args: list[Any] = [len(scopes), reservation_id, demand.tokens, demand.cost_units or 0,
                           round(self.lapse, 3)]
        for scope in scopes:
            keys.extend(scope_keys(scope))
            limits = scope.limits
            budget = limits.budget
            ttl = 0
            if budget is not None and scope.period is not None and scope.period[2] is not None:
                ttl = int(scope.period[2] - scope.period[1]) + 86400
            args.extend((_or_none(limits.rpm), _or_none(limits.tpm), _or_none(limits.max_parallel),
                         budget.units if budget is not None else -1, ttl))
        reply = await self._call(self._reserve, keys, args)
        if reply[0] != b"ok":
            index = int(reply[1])
            scope = scopes[index]
            limit = reply[0].decode()
            wait = float(reply[2])
            if limit == "budget":
                end = scope.period[2] if scope.period is not None else None
                retry = None if end is None else max(0.0, end - time.time())
            else:
                retry = None if wait < 0 else wait
            return Refusal(scope.scope, scope.name, limit, retry)
        second = int(reply[1])
        values = reply[2:]
        readings = [Reading(int(values[i]), float(values[i + 1]), int(values[i + 2]),
                            float(values[i + 3]), int(values[i + 4]), int(values[i + 5]))
                    for i in range(0, len(values), 6)]
        return Reservation(reservation_id, scopes, second, demand.tokens, demand.cost_units or 0, readings)

    def settle(self, reservation: Reservation, tokens: int, cost_units: int) -> None:
        """Queue the settle; a background task sends queued settles in one pipeline."""
        keys: list[str] = []
        args: list[Any] = [len(reservation.scopes), reservation.reservation_id, reservation.second,
                           tokens - reservation.tokens, cost_units - reservation.cost_units]
        for scope in reservation.scopes:
            rpm, tpm, flight, budget = scope_keys(scope)
            keys.extend((tpm, flight, budget))
            args.extend(("1" if scope.limits.tpm is not None else "0",
                         "1" if scope.period is not None else "0"))
        if len(self._pending) >= MAX_PENDING_SETTLES:
            self.dropped_settles += 1
            return
        self._pending.append((keys, args))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="limits-settle")
        self._wake.set()

    async def read(self, scopes: Iterable[Scope]) -> list[Reading]:
        """Each scope's counts now, changing nothing."""
        scopes = list(scopes)
        if not scopes:
            return []
        keys: list[str] = []
        for scope in scopes:
            keys.extend(scope_keys(scope))
        values = await self._call(self._read, keys, [len(scopes)])
        return [Reading(int(values[i]), float(values[i + 1]), int(values[i + 2]), float(values[i + 3]),
                        int(values[i + 4]), int(values[i + 5])) for i in range(0, len(values), 6)]

    async def flush(self) -> bool:
        """Send the queued settles now; False (and kept for the next try) when Redis fails."""
        while self._pending:
            batch = self._pending[:SETTLE_BATCH]
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for keys, args in batch:
                        await self._settle(keys=keys, args=args, client=pipe)
                    await pipe.execute()
            except Exception as exc:  # noqa: BLE001 - any Redis trouble: keep them, try later
                self._outage.failed(exc)
                return False
            self._outage.recovered()
            del self._pending[:len(batch)]
        return True

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.002)  # let the settles of the same moment join the batch
            if not await self.flush():
                await asyncio.sleep(RETRY_AFTER_FAILURE)
                self._wake.set()

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            reply = await script(keys=keys, args=args)
        except Exception as exc:  # noqa: BLE001 - every Redis failure is the same to the caller
            self._outage.failed(exc)
            raise LimitsUnavailable(type(exc).__name__) from exc
        self._outage.recovered()
        return reply

    async def close(self) -> None:
        """Send what is queued (for at most 2 s), stop the flusher and close the connections
        (for at most :data:`CLOSE_TIMEOUT` in all: a stop never waits on Redis for long)."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self._pending:
                    try:
                        await asyncio.wait_for(self.flush(), timeout=2.0)
                    except asyncio.TimeoutError:
                        pass
                if self._flusher is not None:
                    self._flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._flusher
                await self._client.aclose()
        except TimeoutError:
            log_event("limits_close_timeout", logging.WARNING, pending=len(self._pending))


def _or_none(value: int | None) -> int:
    return -1 if value is None else value
