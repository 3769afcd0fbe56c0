"""What a request cost: its exact usage priced at the price of the deployment that answered it.

The same function prices plain answers, finished streams and cache hits, so a
streamed request costs exactly what the same usage costs in a plain one.
"""

from __future__ import annotations

import logging
from typing import Any

from proxy.config import GatewayConfig
from proxy.context import RequestContext
from proxy.observability.logs import log_event
from proxy.optimise.request_savings import settle
from proxy.usage.pricing import TokenUsage, cost_usd

COST_HEADER = "X-Gateway-Cost"
"""The response header that carries a plain answer's cost in USD."""


def charge(ctx: RequestContext, usage: dict[str, Any] | None) -> float | None:
    """Keep ``usage``'s counts on ``ctx`` and price them; ``None`` when the model has no price.

    What the answer saved (routing, prompt cache, trimming) is kept on ``ctx`` too.

    Without a reported usage the request costs nothing it can be charged for:
    counts stay unknown and the cost is ``None``.
    """
    if not isinstance(usage, dict):
        return ctx.cost_usd
    tokens = TokenUsage.from_openai(usage)
    ctx.prompt_tokens, ctx.completion_tokens = tokens.prompt_tokens, tokens.completion_tokens
    ctx.cached_tokens, ctx.cache_write_tokens = tokens.cached_tokens, tokens.cache_write_tokens
    price = ctx.deployment.price if ctx.deployment is not None else None
    ctx.cost_usd = cost_usd(price, tokens) if price is not None else None
    settle(ctx, tokens, price)
    return ctx.cost_usd


def price_of_cached(ctx: RequestContext, usage: dict[str, Any] | None) -> float:
    """What the upstream would charge today for a cached answer's usage (0 when unpriced)."""
    price = ctx.deployment.price if ctx.deployment is not None else None
    if price is None or not isinstance(usage, dict):
        return 0.0
    return cost_usd(price, TokenUsage.from_openai(usage))


def cost_header(cost: float) -> str:
    """``X-Gateway-Cost``'s value: USD as a plain decimal, no exponent (``0.000123``)."""
    text = f"{cost:.10f}".rstrip("0").rstrip(".")
    return text or "0"


def warn_unpriced(config: GatewayConfig, reason: str) -> None:
    """One warning naming every model with no price (at start and on each reload)."""
    unpriced = config.unpriced_models()
    if unpriced:
        log_event("models_unpriced", logging.WARNING, reason=reason, models=unpriced,
                  note="no pricing in the config and none in the pricing dataset: their requests "
                  "get cost null and are counted in llm_gateway_unpriced_requests_total")
