"""Pick the model that answers a request.

Precedence: the request's explicit ``model`` (a configured name, or
``provider/model``); else the rule for its ``task_type`` (body field or
``X-Task-Type`` header); else the configured default. ``task_type`` is the
gateway's own field and never goes upstream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from aiohttp import web

from proxy.config import GatewayConfig, ModelConfig
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.pipeline.header_values import header_text
from proxy.upstream.health import UPSTREAM_HEALTH

TASK_TYPE_HEADER = "X-Task-Type"
MAX_TASK_TYPE = 200
"""The longest ``X-Task-Type`` header value kept (the body's field is bounded by the body size)."""
_RNG = random.Random()
Healthy = Callable[[ModelConfig], bool]


def _always_healthy(model: ModelConfig) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Route:
    """The chosen model and why it was chosen (``explicit``, ``task_type`` or ``default``)."""

    model: ModelConfig
    reason: str
    candidates: tuple[ModelConfig, ...] = ()


def resolve_route(
    config: GatewayConfig,
    body: dict[str, Any],
    headers: Mapping[str, str],
    ctx: RequestContext,
    healthy: Healthy = _always_healthy,
) -> Route:
    """Choose the model for ``body`` and its fallback plan; removes ``task_type`` from it."""
    deployments, reason = _deployments(config, body, headers, ctx)
    primary = pick_weighted(deployments, healthy)
    return Route(primary, reason, fallback_plan(config, primary))


def _deployments(
    config: GatewayConfig, body: dict[str, Any], headers: Mapping[str, str], ctx: RequestContext
) -> tuple[tuple[ModelConfig, ...], str]:
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
        return deployments, "explicit"
    if task_type is not None:
        rule = config.routing.rules.get(task_type)
        if rule is not None:
            return (rule.model,), "task_type"
        ctx.notes.append(f"unknown task_type '{task_type[:64]}': used the default model")
    return (config.routing.default_model,), "default"


def pick_weighted(deployments: Sequence[ModelConfig], healthy: Healthy = _always_healthy,
                  rng: random.Random = _RNG) -> ModelConfig:
    """One deployment, chosen by ``weight`` among the healthy ones (among all if none is)."""
    if len(deployments) == 1:
        return deployments[0]
    pool = [d for d in deployments if healthy(d)] or list(deployments)
    return rng.choices(pool, weights=[d.weight for d in pool])[0]


def fallback_plan(config: GatewayConfig, primary: ModelConfig) -> tuple[ModelConfig, ...]:
    """``primary``, then its ``fallback_map`` entries, then the same model on other providers."""
    if not config.fallback.enabled:
        return (primary,)
    plan = [primary]
    for model in (*config.fallback.fallback_map.get(primary.qualified_name, ()),
                  *config.models_by_name.get(primary.name, ())):
        if model not in plan:
            plan.append(model)
    return tuple(plan)


def choose_route(request: web.Request, ctx: RequestContext) -> None:
    """Resolve the route of a request with a body; keep it on ``ctx``."""
    assert ctx.body is not None
    health = request.app[UPSTREAM_HEALTH]

    def healthy(model: ModelConfig) -> bool:
        return health.healthy(ctx.state, model)

    route = resolve_route(ctx.state.config, ctx.body, request.headers, ctx, healthy)
    ctx.route = route
    ctx.use_model(route.model)
