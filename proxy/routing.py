"""Pick the model that answers a request.

Precedence: the request's explicit ``model`` (a configured name, or
``provider/model``); else the rule for its ``task_type`` (body field or
``X-Task-Type`` header); else the configured default. ``task_type`` is the
gateway's own field and never goes upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from aiohttp import web

from proxy.config import GatewayConfig, ModelConfig
from proxy.context import CONTEXT_KEY, RequestContext
from proxy.errors import GatewayError

TASK_TYPE_HEADER = "X-Task-Type"


@dataclass(frozen=True, slots=True)
class Route:
    """The chosen model and why it was chosen (``explicit``, ``task_type`` or ``default``)."""

    model: ModelConfig
    reason: str
    candidates: tuple[ModelConfig, ...] = ()


def resolve_route(
    config: GatewayConfig, body: dict[str, Any], headers: Mapping[str, str], ctx: RequestContext
) -> Route:
    """Choose the model for ``body``; removes ``task_type`` from it."""
    task_type = body.pop("task_type", None) or headers.get(TASK_TYPE_HEADER) or None
    ctx.task_type = task_type
    requested = body.get("model")
    if requested:
        candidates = config.find_models(requested)
        if not candidates:
            raise GatewayError(
                404,
                f"The model '{requested}' does not exist on this gateway. "
                "GET /v1/models lists the models you can use.",
                code="model_not_found",
                param="model",
            )
        return Route(candidates[0], "explicit", candidates)
    if task_type is not None:
        rule = config.routing.rules.get(task_type)
        if rule is not None:
            return Route(rule.model, "task_type", (rule.model,))
        ctx.notes.append(f"unknown task_type '{task_type[:64]}': used the default model")
    default = config.routing.default_model
    return Route(default, "default", (default,))


@web.middleware
async def routing_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Resolve the route of requests that carry a body to route."""
    ctx = request[CONTEXT_KEY]
    if ctx.body is not None:
        route = resolve_route(ctx.state.config, ctx.body, request.headers, ctx)
        ctx.route = route
        ctx.provider = route.model.provider
        ctx.model = route.model.name
    return await handler(request)
