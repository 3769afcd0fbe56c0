"""Pick the model that answers a request.

Precedence: the request's explicit ``model`` (a configured name, or
``provider/model``); else the rule for its ``task_type`` (body field or
``X-Task-Type`` header); else the configured default. ``task_type`` is the
gateway's own field and never goes upstream.

A rule with several candidates (``models``), or a model name served by
several providers, is a choice: :mod:`proxy.optimise.planner` orders the
candidates that can serve by the rule's strategy (``weighted`` for a name)
and skips the others. Every plan drops the models whose context window
cannot hold the request, trims the conversation where that is on and nothing
fits, and a request no model can hold is refused (400
``context_length_exceeded``) before any upstream is called.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from aiohttp import web

from proxy.config import GatewayConfig, ModelConfig, RoutingRule
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.optimise.deployment_stats import DeploymentStats
from proxy.optimise.planner import Choice, Plan, plan_request, surely_fits
from proxy.optimise.strategies import Strategy
from proxy.pipeline.header_values import header_text
from proxy.pipeline.quick_route import quick_order
from proxy.upstream.breakers import BreakerBoard
from proxy.upstream.health import UPSTREAM_HEALTH

TASK_TYPE_HEADER = "X-Task-Type"
MAX_TASK_TYPE = 200
"""The longest ``X-Task-Type`` header value kept (the body's field is bounded by the body size)."""
Healthy = Callable[[ModelConfig], bool]


def _always_healthy(model: ModelConfig) -> bool:
    return True


@dataclass(slots=True)
class Route:
    """The chosen model and why it was chosen (``explicit``, ``task_type`` or ``default``).

    ``candidates`` is the plan (the chosen model first); ``strategy`` the
    strategy that chose among several, ``rule`` the rule that routed. Not
    changed once made (a stage that narrows the plan makes a new one with
    :func:`dataclasses.replace`); not frozen, which would cost every request
    a microsecond to build.
    """

    model: ModelConfig
    reason: str
    candidates: tuple[ModelConfig, ...] = ()
    strategy: str | None = None
    rule: RoutingRule | None = None


def resolve_route(
    config: GatewayConfig,
    body: dict[str, Any],
    headers: Mapping[str, str],
    ctx: RequestContext,
    healthy: Healthy = _always_healthy,
    stats: DeploymentStats | None = None,
    now: float = 0.0,
    board: BreakerBoard | None = None,
) -> Route:
    """Choose the model for ``body`` and its fallback plan; removes ``task_type`` from it.

    Also trims ``body``'s messages where that is on and needed, and keeps the
    strategy, the skipped models and the trim on ``ctx``. ``stats`` and ``now``
    (the event loop's clock) describe the deployments to a strategy; with the
    ``board`` of breakers too, the usual choice takes the fast path
    (:mod:`proxy.pipeline.quick_route`).
    """
    deployments, reason, rule = _deployments(config, body, headers, ctx)
    windows = ctx.endpoint == "chat"
    if rule is not None and rule.multi:
        quick = rule.quick
    elif len(deployments) > 1:
        quick = config.quick_names.get(deployments[0].name)
    else:  # no choice: one model, its fallbacks
        plan_models = fallback_plan(config, deployments[0], rule)
        if not windows or surely_fits(plan_models, body, ctx.body_bytes):
            return Route(plan_models[0], reason, plan_models, None, rule)
        quick = None
    if quick is not None and board is not None and stats is not None:
        order = quick_order(quick, body, ctx.body_bytes, windows, board, stats, now, _RNG)
        route = None if order is None else _quick_route(config, order, rule, reason, quick.strategy.value,
                                                        body, ctx.body_bytes, windows)
        if route is not None:
            ctx.strategy = route.strategy
            return route
    choice = _choice(config, deployments, rule, healthy)
    plan = plan_request(choice, body, ctx.body_bytes, windows=windows,
                        unavailable=lambda model: not healthy(model), stats=stats or _NO_STATS, now=now)
    _keep_on_context(ctx, plan)
    if plan.too_long is not None:
        raise GatewayError(400, plan.too_long, code=ErrorCode.CONTEXT_LENGTH_EXCEEDED, param="messages")
    return Route(plan.order[0], reason, plan.order, plan.strategy, rule)


_NO_STATS = DeploymentStats()
"""The stats of a resolution with none given (tests): nothing measured."""
_RNG = random.Random()


def _quick_route(config: GatewayConfig, order: list[ModelConfig], rule: RoutingRule | None, reason: str,
                 strategy: str, body: dict[str, Any], body_bytes: int, windows: bool) -> Route | None:
    """The route of a fast-path order: the candidates, then the chosen one's fallbacks when fallback is on
    (``None`` when a fallback's window might not hold the request: the planner looks closer)."""
    if not config.fallback.enabled:
        return Route(order[0], reason, (order[0],), strategy, rule)
    seen = {m.qualified_name for m in order}
    tail = [m for m in fallback_plan(config, order[0], rule)[1:] if m.qualified_name not in seen]
    if tail and windows and not surely_fits(tail, body, body_bytes):
        return None
    return Route(order[0], reason, (*order, *tail), strategy, rule)


def _choice(config: GatewayConfig, deployments: tuple[ModelConfig, ...], rule: RoutingRule | None,
            healthy: Healthy) -> Choice:
    """What the planner chooses from: a rule's candidates or a name's deployments, else one model."""
    keep = config.fallback.enabled
    if rule is not None and rule.multi:
        return Choice(rule.candidates, Strategy(rule.strategy), fallbacks_of=_fallbacks(config, rule),
                      keep_others=keep)
    if len(deployments) > 1:
        return Choice(deployments, Strategy.WEIGHTED, fallbacks_of=_fallbacks(config, None), keep_others=keep)
    return Choice(rest=fallback_plan(config, deployments[0], rule))


def _fallbacks(config: GatewayConfig, rule: RoutingRule | None) -> Callable[[ModelConfig], Sequence[ModelConfig]]:
    def fallbacks_of(chosen: ModelConfig) -> Sequence[ModelConfig]:
        return fallback_plan(config, chosen, rule)[1:]

    return fallbacks_of


def _keep_on_context(ctx: RequestContext, plan: Plan) -> None:
    """What the log line and the answer's headers say about the plan."""
    if plan.strategy is not None:
        ctx.strategy = plan.strategy
    if plan.skipped:
        ctx.skipped = plan.skipped_header()
    if plan.trimmed:
        ctx.trimmed, ctx.trimmed_tokens = plan.trimmed, plan.trimmed_tokens


def _deployments(
    config: GatewayConfig, body: dict[str, Any], headers: Mapping[str, str], ctx: RequestContext
) -> tuple[tuple[ModelConfig, ...], str, RoutingRule | None]:
    task_type = body.pop("task_type", None) or header_text(headers.get(TASK_TYPE_HEADER), MAX_TASK_TYPE)
    ctx.task_type = task_type
    requested = body.get("model")
    if requested:
        deployments = config.find_models(requested)
        if not deployments:
            raise GatewayError(
                404,
                f"The model '{requested}' does not exist on this gateway. "
                "GET /v1/models lists the models you can use.",
                code=ErrorCode.MODEL_NOT_FOUND,
                param="model",
            )
        return deployments, "explicit", None
    if task_type is not None:
        rule = config.routing.rules.get(task_type)
        if rule is not None:
            return (rule.model,), "task_type", rule
        ctx.notes.append(f"unknown task_type '{task_type[:64]}': used the default model")
    return (config.routing.default_model,), "default", None


def fallback_plan(config: GatewayConfig, primary: ModelConfig,
                  rule: RoutingRule | None = None) -> tuple[ModelConfig, ...]:
    """``primary``, then its ``fallback_map`` entries, then the same model on other providers.

    With a ``rule``, the fallbacks carry the rule's settings too.
    """
    if not config.fallback.enabled:
        return (primary,)
    plan = [primary]
    seen = {primary.qualified_name}
    for model in (*config.fallback.fallback_map.get(primary.qualified_name, ()),
                  *config.models_by_name.get(primary.name, ())):
        if model.qualified_name not in seen:
            seen.add(model.qualified_name)
            plan.append(rule.tune(model) if rule is not None else model)
    return tuple(plan)


def choose_route(request: web.Request, ctx: RequestContext) -> None:
    """Resolve the route of a request with a body; keep it on ``ctx``."""
    assert ctx.body is not None
    health = request.app[UPSTREAM_HEALTH]

    def healthy(model: ModelConfig) -> bool:
        return health.healthy(ctx.state, model)

    route = resolve_route(ctx.state.config, ctx.body, request.headers, ctx, healthy, health.stats,
                          asyncio.get_running_loop().time(), health.breakers)
    ctx.route = route
    ctx.use_model(route.model)
