"""Retries and fallback: run a request's plan until one candidate answers.

A request has a *plan*: the routed deployment first, then its
``fallback_map`` entries, then the same model on other providers. Each
candidate gets up to ``1 + max_retries`` attempts, all inside one deadline
for the whole request (``api.timeout``). The work is split the way httpx
splits ``Client.send``, one function a level, each with a typed result:

- :func:`run_plan` tries the candidates in order and returns an
  :class:`Answered` or raises the error the caller should see;
- :func:`try_candidate` makes up to ``1 + max_retries`` attempts on one
  deployment and returns :class:`Answered` or :class:`NotAnswered`;
- one attempt: a call of the :class:`Attempt` with a ``deployment`` and an
  ``api_key``, bounded by the adapter's timeout, or by :func:`attempt_before`
  when the request's deadline comes sooner;
- :func:`after_failure` updates breakers and keys for a failed attempt and
  says what comes next (a :class:`NextStep`).

Rules: connection errors, timeouts, 408, 429, 500, 502, 503, 504 and 529 are
retried, with exponential backoff from ``retry_delay`` (jittered, capped at
``max_retry_delay``) or the upstream's ``Retry-After`` when it fits in the
time left. The caller's own mistakes (400, 404, 413, 422) are never retried
nor fallen back from. An upstream 401/403 means our key is bad: that provider
is marked down and the next candidate is tried. A candidate whose breaker is
open, whose provider is down or whose keys all rest is skipped without a
network call. When every candidate is spent the caller gets 503 with
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Generic, Protocol, Sequence, TypeVar

from proxy.config import FallbackConfig, ModelConfig, ProviderConfig
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.providers.base import UpstreamError
from proxy.upstream.attempt_feed import AttemptFeed
from proxy.upstream.breakers import CircuitBreaker
from proxy.upstream.health import UpstreamHealth
from proxy.upstream.keyring import KeyRing

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
_RNG = random.Random()


class Attempt(Protocol[T_co]):
    """One upstream call for a ``deployment`` with the upstream ``api_key`` picked for it."""

    def __call__(self, deployment: ModelConfig, api_key: str | None) -> Awaitable[T_co]: ...


class SkipReason(enum.StrEnum):
    """Why a candidate was passed over without a network call."""

    PROVIDER_DOWN = "provider_down"
    BREAKER_OPEN = "breaker_open"
    KEYS_RESTING = "keys_resting"


@dataclass(frozen=True, slots=True)
class Skip:
    """A candidate passed over, and when it could be tried again."""

    reason: SkipReason
    retry_in: float


@dataclass(slots=True)
class Answered(Generic[T]):
    """A candidate answered: the attempt's value and the deployment that gave it."""

    value: T
    deployment: ModelConfig


@dataclass(frozen=True, slots=True)
class NotAnswered:
    """A candidate did not answer: its last attempt's error, and why it stopped early, if it did."""

    error: GatewayError | None = None
    skip: Skip | None = None


class NextStep(enum.Enum):
    """What a failed attempt leads to."""

    RETRY = "retry"  # the same candidate again, after a backoff
    NEXT_CANDIDATE = "next_candidate"
    RAISE = "raise"  # the caller's own mistake: it goes back as it is


@dataclass(slots=True)
class PlanLimits:
    """How many attempts each candidate gets and when the whole request must end."""

    retries: int
    deadline: float
    skips: list[Skip] = field(default_factory=list)


def backoff_delay(fallback: FallbackConfig, retry: int, rng: random.Random = _RNG) -> float:
    """Exponential backoff with jitter: ``retry_delay * 2**retry``, capped, times 0.5..1."""
    base = min(fallback.max_retry_delay, fallback.retry_delay * (2 ** retry))
    return base * rng.uniform(0.5, 1.0)


async def run_plan(ctx: RequestContext, health: UpstreamHealth, plan: Sequence[ModelConfig],
                   attempt: Attempt[T]) -> Answered[T]:
    """Try ``plan``'s candidates in order until one answers; raise the caller's error otherwise."""
    config = ctx.state.config
    loop = asyncio.get_running_loop()
    elapsed = time.perf_counter() - ctx.started
    limits = PlanLimits(retries=config.fallback.max_retries if config.fallback.enabled else 0,
                        deadline=loop.time() + config.api.timeout - elapsed)
    last_error: GatewayError | None = None
    for index, deployment in enumerate(plan):
        result = await try_candidate(ctx, health, deployment, attempt, limits)
        if isinstance(result, Answered):
            if index:
                ctx.fallback_from = plan[0].qualified_name
            ctx.use_model(deployment)
            return result
        last_error = result.error or last_error
        if result.error is None and loop.time() >= limits.deadline:
            break
    raise final_error(ctx, config.fallback, last_error, limits.skips)


async def try_candidate(ctx: RequestContext, health: UpstreamHealth, deployment: ModelConfig,
                        attempt: Attempt[T], limits: PlanLimits) -> Answered[T] | NotAnswered:
    """Up to ``1 + retries`` attempts on one deployment."""
    provider = ctx.state.adapters[deployment.provider].config
    if not provider.configured:
        return NotAnswered(GatewayError(
            503, f"Provider '{deployment.provider}' has no API key configured, so "
            f"'{deployment.name}' cannot be served right now.", code=ErrorCode.PROVIDER_UNCONFIGURED))
    breaker = health.breakers.get(deployment.provider, deployment.name)
    ring = health.keyrings.for_provider(deployment.provider)
    loop = asyncio.get_running_loop()
    error: UpstreamError | None = None
    for retry in range(limits.retries + 1):
        skip = blocked(health, deployment, breaker)
        api_key = None
        if skip is None and provider.api_keys:
            api_key = ring.pick(provider.api_keys)
            if api_key is None:  # every key rests
                breaker.release()
                skip = Skip(SkipReason.KEYS_RESTING, ring.ready_in(provider.api_keys))
        if skip is not None:
            limits.skips.append(skip)
            return NotAnswered(error, skip)
        if loop.time() >= limits.deadline:
            breaker.release()
            return NotAnswered(error)
        started = loop.time()
        feed = AttemptFeed(health.stats, deployment.qualified_name, started)
        try:
            # A stream's adapter may wait one timeout for its headers and another for its first
            # event: only when twice that fits before the deadline is no timer of ours needed.
            if limits.deadline - started >= 2 * deployment.timeout_or(ctx.state.config.api.timeout):
                value = await attempt(deployment, api_key)
            else:
                value = await attempt_before(ctx, deployment, api_key, attempt, limits.deadline)
        except UpstreamError as exc:
            error = exc
        except TimeoutError:  # a timeout no adapter turned into an upstream error
            error = deadline_error(ctx, deployment)
        except asyncio.CancelledError:
            breaker.release()
            record_attempt(ctx, deployment, "cancelled", 499, started)  # the caller went away
            raise
        except BaseException:
            breaker.release()
            raise
        else:
            breaker.record_success()
            record_attempt(ctx, deployment, "ok", 200, started)
            feed.answered(ctx, loop.time())
            return Answered(value, deployment)
        finally:
            feed.end()
        record_attempt(ctx, deployment, error.code or error.type, error.status, started)
        step = after_failure(health, deployment, breaker, ring, api_key, error)
        if step is NextStep.RAISE:
            raise error
        if step is NextStep.NEXT_CANDIDATE or retry == limits.retries:
            break
        delay = retry_delay(ctx.state.config.fallback, retry, error, provider, ring, api_key)
        if loop.time() + delay >= limits.deadline:
            break
        await asyncio.sleep(delay)
    return NotAnswered(error)


def blocked(health: UpstreamHealth, deployment: ModelConfig, breaker: CircuitBreaker) -> Skip | None:
    """Why ``deployment``'s provider or breaker lets no attempt through now (claiming the breaker's
    probe when it does), or ``None``; resting keys are found when a key is picked."""
    breakers = health.breakers
    if breakers.provider_down(deployment.provider):
        return Skip(SkipReason.PROVIDER_DOWN, breakers.provider_retry_in(deployment.provider))
    if not breaker.allow():
        return Skip(SkipReason.BREAKER_OPEN, breaker.retry_in())
    return None


async def attempt_before(ctx: RequestContext, deployment: ModelConfig, api_key: str | None,
                         attempt: Attempt[T], deadline: float) -> T:
    """One call that must end by the request's deadline (sooner than the model's own timeout)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await attempt(deployment, api_key)
    except TimeoutError:
        raise deadline_error(ctx, deployment) from None


def deadline_error(ctx: RequestContext, deployment: ModelConfig) -> UpstreamError:
    """The error of an attempt cut by the request's deadline."""
    return UpstreamError(504, f"No answer from '{deployment.provider}' within the request's "
                         f"deadline of {ctx.state.config.api.timeout:g} s.",
                         code=ErrorCode.UPSTREAM_TIMEOUT, retryable=False)


def after_failure(health: UpstreamHealth, deployment: ModelConfig, breaker: CircuitBreaker, ring: KeyRing,
                  api_key: str | None, error: UpstreamError) -> NextStep:
    """Update breakers and keys for a failed attempt; say what comes next."""
    if error.code == ErrorCode.UPSTREAM_AUTH_FAILED:
        breaker.release()
        health.breakers.mark_provider_down(deployment.provider)
        return NextStep.NEXT_CANDIDATE
    if not error.retryable:
        breaker.release()
        # The request's deadline ran out (a gateway failure), or the caller's own mistake.
        return NextStep.NEXT_CANDIDATE if error.status >= 500 else NextStep.RAISE
    if error.status == 429:
        breaker.release()
        if api_key is not None and error.retry_after is not None:
            ring.rest(api_key, error.retry_after)
        return NextStep.RETRY
    breaker.record_failure()
    return NextStep.RETRY


def retry_delay(fallback: FallbackConfig, retry: int, error: UpstreamError, provider: ProviderConfig,
                ring: KeyRing, api_key: str | None) -> float:
    """How long to wait before the next attempt on the same candidate."""
    others = [key for key in provider.api_keys if key != api_key]
    if error.status == 429 and others and ring.ready_in(others) == 0:
        return 0.0  # another key is ready: switch keys at once
    if error.retry_after is not None:
        return error.retry_after
    return backoff_delay(fallback, retry)


def record_attempt(ctx: RequestContext, deployment: ModelConfig, outcome: str, status: int,
                   started: float) -> None:
    """Add one attempt to the request's record (log line, headers, metrics)."""
    ctx.attempts.append({
        "provider": deployment.provider,
        "model": deployment.name,
        "outcome": outcome,
        "status": status,
        "ms": round((asyncio.get_running_loop().time() - started) * 1000, 3),
    })
    if ctx.trace is not None:  # tracing on: the attempt's span ends now
        ctx.trace.attempt_ended()


def final_error(ctx: RequestContext, fallback: FallbackConfig, last: GatewayError | None,
                skips: list[Skip]) -> GatewayError:
    """What the caller sees when no candidate answered."""
    retry_after = str(max(1, math.ceil(min(s.retry_in for s in skips)))) if skips else "1"
    if last is None:
        if skips and all(s.reason is SkipReason.KEYS_RESTING for s in skips):
            return GatewayError(
                429, "Every upstream key for this model is rate-limited right now; retry after "
                f"{retry_after} s.", code=ErrorCode.RATE_LIMIT_EXCEEDED, headers={"Retry-After": retry_after})
        return GatewayError(
            503, "No healthy upstream can serve this model right now (circuit breakers open or "
            "provider keys refused); retry later.",
            code=ErrorCode.NO_HEALTHY_UPSTREAM, headers={"Retry-After": retry_after})
    if not ctx.attempts or not fallback.enabled:
        return last
    if isinstance(last, UpstreamError) and last.retry_after is not None:
        retry_after = str(max(1, math.ceil(last.retry_after)))
    return GatewayError(
        503, f"Every upstream for this request failed ({len(ctx.attempts)} attempts); "
        f"last: {last.message}", code=ErrorCode.UPSTREAMS_EXHAUSTED, headers={"Retry-After": retry_after})
