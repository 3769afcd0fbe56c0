"""The cache stage of the pipeline.

It sits between validation and routing. Until a response cache is configured
it passes every request straight through; the cache issue fills it in.
"""

from __future__ import annotations

from aiohttp import web


@web.middleware
async def cache_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Pass the request on unchanged (no cache yet)."""
    return await handler(request)
