"""The limits stage: check and reserve before the upstream is called, settle when the request ends.

Runs for every route that reaches a model (``proxy/pipeline/middleware.py``), after
routing (the price and plan are known) and after the cache lookup (a hit uses no tokens
and no budget, but counts as a request). A caller with no limits pays one dict lookup.

Refusals: ``rpm``, ``tpm`` and ``max_parallel`` are 429 ``rate_limit_exceeded`` with
``Retry-After``; a spent budget is 429 ``budget_exceeded`` (type ``insufficient_quota``);
a model outside ``models`` is 403 ``model_not_allowed``. Answers to a limited caller carry
OpenAI's ``x-ratelimit-*`` headers. :class:`LimitsSettler` (a request observer) replaces
each reservation with what the request used once it has ended.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from aiohttp import web

from proxy.config import GatewayConfig, ModelConfig
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.limits.demand import Demand, request_demand, usd_to_units
from proxy.limits.limiter import LIMITER, Limiter
from proxy.limits.model import LimitsUnavailable, Reading, Refusal, Reservation, Scope

NO_DEMAND = Demand(0, 0)


def format_reset(seconds: float) -> str:
    """A reset as OpenAI writes it: ``20ms``, ``1s``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    total = math.ceil(seconds)
    text = _RESETS.get(total)
    if text is None:
        hours, rest = divmod(total, 3600)
        minutes, secs = divmod(rest, 60)
        text = f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s" if minutes else f"{secs}s"
        if total <= 3600:
            _RESETS[total] = text
    return text


_RESETS: dict[int, str] = {}


def allowed(model: ModelConfig, models: frozenset[str]) -> bool:
    """True when ``model`` is named in ``models`` (by its name or ``provider/model``)."""
    return model.name in models or model.qualified_name in models


async def enforce_limits(request: web.Request, ctx: RequestContext, hit: bool) -> None:
    """Refuse the request if a limit of its key or team says so; else reserve what it may use."""
    key = ctx.key
    if key is None:
        return
    config = ctx.state.config
    limiter = request.app[LIMITER]
    scopes = limiter.scopes_for(config, key)
    if not scopes:
        return
    _check_models(ctx, scopes)
    demand = NO_DEMAND if hit else _demand(ctx, config, scopes)
    backend = limiter.backend
    try:
        if backend.local:
            result = backend.reserve_now(scopes, demand, limiter.next_id())  # type: ignore[union-attr]
        else:
            result = await backend.reserve(scopes, demand, limiter.next_id())
    except LimitsUnavailable:
        if config.limits.on_backend_error == "deny":
            raise GatewayError(503, "Limits cannot be checked right now (their store is unreachable) "
                               "and this gateway refuses unchecked requests; retry shortly.",
                               code=ErrorCode.LIMITS_UNAVAILABLE, headers={"Retry-After": "1"}) from None
        ctx.notes.append("limits not checked: their store is unreachable")
        return
    if isinstance(result, Refusal):
        raise _refused(ctx, result, scopes, demand)
    ctx.reservation = result
    ctx.limit_headers = rate_limit_headers(scopes, result.readings)


def _check_models(ctx: RequestContext, scopes: tuple[Scope, ...]) -> None:
    route = ctx.route
    assert route is not None
    for scope in scopes:
        models = scope.limits.models
        if models is None:
            continue
        if not allowed(route.model, models):
            ctx.limited_by = (scope.scope, scope.name, "models")
            raise GatewayError(
                403, f"The {scope.scope} '{scope.name}' may not use the model '{route.model.name}'. "
                f"It may use: {', '.join(sorted(models))}.", code=ErrorCode.MODEL_NOT_ALLOWED, param="model")
        if route.candidates:
            kept = tuple(m for m in route.candidates if allowed(m, models))
            if kept != route.candidates:
                ctx.route = route = replace(route, candidates=kept)


def _demand(ctx: RequestContext, config: GatewayConfig, scopes: tuple[Scope, ...]) -> Demand:
    route = ctx.route
    assert route is not None and ctx.body is not None
    plan = route.candidates or (route.model,)
    demand = request_demand(ctx.body, ctx.body_bytes, plan, ctx.endpoint or "chat",
                            config.limits.reserve_output_tokens)
    if demand.cost_units is None:
        for scope in scopes:
            if scope.limits.budget is not None:
                unpriced = [m.qualified_name for m in plan if m.price is None]
                ctx.limited_by = (scope.scope, scope.name, "budget")
                raise GatewayError(
                    403, f"The {scope.scope} '{scope.name}' has a budget, and the model "
                    f"{', '.join(unpriced)} has no price, so its cost could not be counted; "
                    "ask the operator to give it a pricing.", code=ErrorCode.MODEL_NOT_ALLOWED,
                    param="model")
    return demand


def _refused(ctx: RequestContext, refusal: Refusal, scopes: tuple[Scope, ...], demand: Demand) -> GatewayError:
    ctx.limited_by = (refusal.scope, refusal.name, refusal.limit)
    scope = next(s for s in scopes if s.scope == refusal.scope and s.name == refusal.name)
    limits = scope.limits
    who = f"{refusal.scope} '{refusal.name}'"
    headers: dict[str, str] = {}
    wait = refusal.retry_after
    if wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    if refusal.limit == "budget":
        budget = limits.budget
        assert budget is not None
        period = "in total" if budget.period == "total" else f"per {budget.period} (UTC)"
        return GatewayError(
            429, f"The {who} has spent its budget of ${budget.usd:g} {period}, or this request "
            f"could cost more than what is left of it (up to ${demand.cost_units / 10**10:.6f} with "
            "its max_tokens); lower max_tokens, or wait for the next period.",
            code=ErrorCode.BUDGET_EXCEEDED, type="insufficient_quota", headers=headers)
    if refusal.limit == "max_parallel":
        headers["Retry-After"] = "1"
        message = (f"The {who} already has {limits.max_parallel} requests in flight, its max_parallel "
                   "limit; retry when one has finished.")
    elif refusal.limit == "rpm":
        headers.update(_refusal_headers("requests", limits.rpm, wait))
        message = f"Rate limit reached for the {who}: {limits.rpm} requests per minute (rpm)."
    elif wait is None:
        message = (f"This request may use up to {demand.tokens} tokens (its prompt, estimated, plus "
                   f"max_tokens), more than the {who}'s whole limit of {limits.tpm} tokens per minute; "
                   "lower max_tokens or send a shorter prompt.")
    else:
        headers.update(_refusal_headers("tokens", limits.tpm, wait))
        message = (f"Rate limit reached for the {who}: {limits.tpm} tokens per minute (tpm); this "
                   f"request may use up to {demand.tokens}.")
    if wait is not None:
        message += f" Retry after {headers['Retry-After']} s."
    return GatewayError(429, message, code=ErrorCode.RATE_LIMIT_EXCEEDED, headers=headers)


def _refusal_headers(kind: str, limit: int | None, wait: float | None) -> dict[str, str]:
    return {f"x-ratelimit-limit-{kind}": str(limit), f"x-ratelimit-remaining-{kind}": "0",
            f"x-ratelimit-reset-{kind}": format_reset(wait or 0.0)}


def rate_limit_headers(scopes: tuple[Scope, ...], readings: list[Reading]) -> dict[str, str] | None:
    """OpenAI's ``x-ratelimit-*`` headers from the tightest scope for requests and for tokens."""
    requests: tuple[int, int, float] | None = None
    tokens: tuple[int, int, float] | None = None
    for scope, reading in zip(scopes, readings):
        limits = scope.limits
        if limits.rpm is not None:
            left = limits.rpm - reading.rpm_used
            if requests is None or left < requests[1]:
                requests = (limits.rpm, left, reading.rpm_reset)
        if limits.tpm is not None:
            left = limits.tpm - reading.tpm_used
            if tokens is None or left < tokens[1]:
                tokens = (limits.tpm, left, reading.tpm_reset)
    if requests is None and tokens is None:
        return None
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests[0])
        headers["x-ratelimit-remaining-requests"] = str(max(0, requests[1]))
        headers["x-ratelimit-reset-requests"] = format_reset(requests[2])
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens[0])
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tokens[1]))
        headers["x-ratelimit-reset-tokens"] = format_reset(tokens[2])
    return headers


def settle(limiter: Limiter, reservation: Reservation, ctx: RequestContext) -> None:
    """Replace ``reservation`` with what the request used (its exact usage and cost; none if it failed)."""
    if reservation.settled:
        return
    reservation.settled = True
    tokens = (ctx.prompt_tokens or 0) + (ctx.completion_tokens or 0)
    cost = usd_to_units(ctx.cost_usd) if ctx.cache != "HIT" else 0
    limiter.backend.settle(reservation, tokens, cost)


class LimitsSettler:
    """A request observer that settles each finished request's reservation."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def request_started(self, ctx: RequestContext) -> None:
        """Nothing is held yet."""

    def request_finished(self, ctx: RequestContext) -> None:
        """Settle the request's reservation, if it holds one."""
        reservation = ctx.reservation
        if reservation is not None:
            settle(self.limiter, reservation, ctx)

    def config_reloaded(self, config: Any, ok: bool) -> None:
        """Limits are read from the config in force at each request; nothing to do."""
