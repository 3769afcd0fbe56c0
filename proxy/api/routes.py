"""The route table: every path the gateway serves, its method and its handler."""

from __future__ import annotations

from aiohttp import web

from proxy.api import handlers

ROUTES: tuple[tuple[str, str, handlers.Handler], ...] = (
    ("POST", "/v1/chat/completions", handlers.chat_completions),
    ("POST", "/v1/embeddings", handlers.embeddings),
    ("POST", "/v1/messages", handlers.messages),
    ("POST", "/v1/messages/count_tokens", handlers.count_tokens),
    ("GET", "/v1/models", handlers.list_models),
    ("GET", "/v1/usage", handlers.usage),
    ("GET", "/v1/limits", handlers.limits),
    ("GET", "/health", handlers.health),
)


def add_routes(app: web.Application) -> None:
    """Register :data:`ROUTES` on ``app``."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
