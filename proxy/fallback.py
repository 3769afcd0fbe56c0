"""Retries, fallback and circuit breaking around one upstream call.

A request has a *plan*: the routed model first, then its ``fallback_map``
entries, then the same model on other providers. Each candidate gets up to
``1 + max_retries`` attempts, all inside one overall deadline (``api.timeout``).

- Retried: connection errors, timeouts, 408, 429, 500, 502, 503, 504, 529,
  with exponential backoff from ``retry_delay`` (jittered, capped at
  ``max_retry_delay``), or the upstream's ``Retry-After`` when it fits in the
  time left.
- Never retried or fallen back from: the caller's own mistakes (400, 404, 413,
  422): the upstream's answer goes straight back.
- An upstream 401/403 means our key is bad: that provider is marked down and
  the next candidate is tried.
- A candidate whose breaker is open, whose provider is down, or whose keys
  are all resting is skipped without a network call.

When every candidate is spent the caller gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence, TypeVar

from proxy.breakers import BreakerBoard, BreakerSettings
from proxy.config import FallbackConfig, ModelConfig
from proxy.context import RequestContext
from proxy.errors import GatewayError
from proxy.keyring import KeyRings
from proxy.providers.base import UpstreamError

if TYPE_CHECKING:
    from proxy.state import GatewayState

T = TypeVar("T")
Attempt = Callable[[ModelConfig, "str | None"], Awaitable[T]]


class Resilience:
    """What the gateway learns about upstreams, kept across requests and reloads."""

    def __init__(self) -> None:
        self.breakers = BreakerBoard()
        self.keyrings = KeyRings()

    def configure(self, fallback: FallbackConfig) -> None:
        """Take breaker settings from a (re)loaded config."""
        self.breakers.configure(BreakerSettings(fallback.failure_threshold, fallback.cooldown))

    def healthy(self, state: "GatewayState", model: ModelConfig) -> bool:
        """Could ``model`` be tried now (configured, provider up, breaker not open)?"""
        provider = state.adapters[model.provider].config
        return (provider.configured and not self.breakers.provider_down(model.provider)
                and self.breakers.get(model.provider, model.name).would_allow())

    def provider_status(self, state: "GatewayState", provider: str) -> str:
        """``available``, ``degraded``, ``unavailable`` or ``unconfigured``, for /health."""
        adapter = state.adapters[provider]
        if adapter.status() == "unconfigured":
            return "unconfigured"
        return self.breakers.provider_status(provider, adapter.config.models)


@dataclass(slots=True)
class _Budget:
    """How many attempts a candidate gets and when the whole request must end."""

    retries: int
    deadline: float


_RNG = random.Random()
PROVIDER_DOWN, BREAKER_OPEN, KEYS_RESTING = "provider_down", "breaker_open", "keys_resting"


def backoff_delay(fallback: FallbackConfig, retry: int, rng: random.Random = _RNG) -> float:
    """Exponential backoff with jitter: ``retry_delay * 2**retry``, capped, times 0.5..1."""
    base = min(fallback.max_retry_delay, fallback.retry_delay * (2 ** retry))
    return base * rng.uniform(0.5, 1.0)


async def call_with_fallback(
    ctx: RequestContext, resilience: Resilience, plan: Sequence[ModelConfig], attempt: Attempt[T]
) -> T:
    """Run ``attempt`` over ``plan`` until one succeeds; raise the caller's error otherwise."""
    config = ctx.state.config
    fallback = config.fallback
    loop = asyncio.get_running_loop()
    elapsed = time.perf_counter() - ctx.started
    budget = _Budget(fallback.max_retries if fallback.enabled else 0,
                     loop.time() + config.api.timeout - elapsed)
    waits: list[tuple[str, float]] = []
    last_error: GatewayError | None = None
    for index, model in enumerate(plan):
        outcome = await _try_candidate(ctx, resilience, model, attempt, budget, waits)
        if isinstance(outcome, GatewayError):
            last_error = outcome
            continue
        if outcome is not _SKIPPED:
            if index:
                ctx.fallback_from = plan[0].qualified_name
            ctx.provider, ctx.model = model.provider, model.name
            return outcome.value
        if loop.time() >= budget.deadline:
            break
    raise _final_error(ctx, fallback, last_error, waits)


class _Success:
    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


_SKIPPED = object()


async def _try_candidate(
    ctx: RequestContext,
    resilience: Resilience,
    model: ModelConfig,
    attempt: Attempt[T],
    budget: _Budget,
    waits: list[tuple[str, float]],
) -> object:
    """Up to ``1 + retries`` attempts on one candidate."""
    adapter = ctx.state.adapters[model.provider]
    provider = adapter.config
    if not provider.configured:
        return GatewayError(503, f"Provider '{model.provider}' has no API key configured, so "
                            f"'{model.name}' cannot be served right now.", code="provider_unconfigured")
    breakers = resilience.breakers
    breaker = breakers.get(model.provider, model.name)
    ring = resilience.keyrings.for_provider(model.provider)
    loop = asyncio.get_running_loop()
    error: GatewayError | None = None
    for retry in range(budget.retries + 1):
        if breakers.provider_down(model.provider):
            waits.append((PROVIDER_DOWN, breakers.provider_retry_in(model.provider)))
            break
        if not breaker.allow():
            waits.append((BREAKER_OPEN, breaker.retry_in()))
            break
        key = ring.pick(provider.api_keys) if provider.api_keys else None
        if provider.api_keys and key is None:
            breaker.release()
            waits.append((KEYS_RESTING, ring.ready_in(provider.api_keys)))
            break
        remaining = budget.deadline - loop.time()
        if remaining <= 0:
            breaker.release()
            break
        started = loop.time()
        # The adapter bounds the attempt by the model's timeout; a timer of our own is only
        # needed when the request's deadline comes sooner.
        deadline = budget.deadline if remaining < model.timeout_or(ctx.state.config.api.timeout) else None
        try:
            if deadline is None:
                value = await attempt(model, key)
            else:
                async with asyncio.timeout_at(deadline):
                    value = await attempt(model, key)
        except UpstreamError as exc:
            error = exc
        except TimeoutError:
            error = UpstreamError(504, f"No answer from '{model.provider}' within the request's "
                                  f"deadline of {ctx.state.config.api.timeout:g} s.",
                                  code="upstream_timeout", retryable=False)
        except asyncio.CancelledError:
            breaker.release()
            _record(ctx, model, "cancelled", 499, started, loop)  # the caller went away mid-attempt
            raise
        except BaseException:
            breaker.release()
            raise
        else:
            breaker.record_success()
            _record(ctx, model, "ok", 200, started, loop)
            return _Success(value)
        _record(ctx, model, error.code or error.type, error.status, started, loop)
        if not _note_failure(resilience, model, breaker, ring, key, error):
            raise error
        if error.code == "upstream_auth_failed" or retry == budget.retries:
            break
        if error.status == 429 and provider.api_keys and ring.ready_in(provider.api_keys) == 0:
            delay = 0.0  # another key is ready: switch keys at once
        else:
            delay = _retry_delay(ctx.state.config.fallback, retry, error)
        if loop.time() + delay >= budget.deadline:
            break
        await asyncio.sleep(delay)
    return error if error is not None else _SKIPPED


def _note_failure(resilience: Resilience, model: ModelConfig, breaker, ring, key: str | None,
                  error: UpstreamError) -> bool:
    """Update breakers and keys for a failed attempt; ``False`` if the caller must see it now."""
    if error.code == "upstream_auth_failed":
        breaker.release()
        resilience.breakers.mark_provider_down(model.provider)
        return True
    if not error.retryable:
        breaker.release()
        return error.status >= 500  # our deadline ran out: stop, but as a gateway failure
    if error.status == 429:
        breaker.release()
        if key is not None and error.retry_after is not None:
            ring.rest(key, error.retry_after)
        return True
    breaker.record_failure()
    return True


def _retry_delay(fallback: FallbackConfig, retry: int, error: UpstreamError) -> float:
    if error.retry_after is not None:
        return error.retry_after
    return backoff_delay(fallback, retry)


def _record(ctx: RequestContext, model: ModelConfig, outcome: str, status: int, started: float,
            loop: asyncio.AbstractEventLoop) -> None:
    ctx.attempts.append({
        "provider": model.provider,
        "model": model.name,
        "outcome": outcome,
        "status": status,
        "ms": round((loop.time() - started) * 1000, 3),
    })


def _final_error(ctx: RequestContext, fallback: FallbackConfig, last: GatewayError | None,
                 waits: list[tuple[str, float]]) -> GatewayError:
    """What the caller sees when no candidate answered."""
    retry_after = str(max(1, math.ceil(min(w for _, w in waits)))) if waits else "1"
    if last is None:
        if waits and all(reason == KEYS_RESTING for reason, _ in waits):
            return GatewayError(
                429, "Every upstream key for this model is rate-limited right now; retry after "
                f"{retry_after} s.", code="rate_limit_exceeded", headers={"Retry-After": retry_after})
        return GatewayError(
            503, "No healthy upstream can serve this model right now (circuit breakers open or "
            "provider keys refused); retry later.",
            code="no_healthy_upstream", headers={"Retry-After": retry_after})
    if not ctx.attempts or not fallback.enabled:
        return last
    if isinstance(last, UpstreamError) and last.retry_after is not None:
        retry_after = str(max(1, math.ceil(last.retry_after)))
    return GatewayError(
        503, f"Every upstream for this request failed ({len(ctx.attempts)} attempts); "
        f"last: {last.message}", code="upstreams_exhausted", headers={"Retry-After": retry_after})
