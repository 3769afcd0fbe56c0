"""Admission control: past ``api.max_in_flight`` model requests, refuse new ones at once.

A gateway that accepts everything under overload makes every caller slow and
then times them all out. Refusing the excess immediately with 503 and
``Retry-After`` keeps the admitted requests fast and tells the rest (and the
``openai`` SDK, which retries 503 after ``Retry-After``) when to come back.
Only chat and embeddings requests count and can be refused; ``/health`` and
``/v1/models`` are always answered.
"""

from __future__ import annotations

from aiohttp import web

from proxy.context import CONTEXT_KEY
from proxy.errors import GatewayError
from proxy.keys import LIFECYCLE

ADMITTED_ENDPOINTS = frozenset({"chat", "embeddings"})


@web.middleware
async def admission_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Count model requests in flight; refuse one that would pass the limit."""
    ctx = request[CONTEXT_KEY]
    if ctx.endpoint not in ADMITTED_ENDPOINTS:
        return await handler(request)
    lifecycle = request.app[LIFECYCLE]
    limit = ctx.state.config.api.max_in_flight
    if limit and lifecycle.admitted >= limit:
        raise GatewayError(
            503, f"The gateway is at its limit of {limit} requests in flight; retry shortly.",
            code="gateway_overloaded", headers={"Retry-After": "1"})
    lifecycle.admitted += 1
    try:
        return await handler(request)
    finally:
        lifecycle.admitted -= 1
