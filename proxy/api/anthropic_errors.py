"""Error answers on the Messages API endpoints, in Anthropic's shape and with Anthropic's statuses.

``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` declare
:func:`anthropic_error_response` as their error format (see
:func:`proxy.api.handlers.endpoint`), so every failure on them, whichever
stage raised it (auth, validation, routing, limits, the upstream call), reaches
the caller as ``{"type": "error", "error": {"type", "message"}, "request_id"}``
(:mod:`proxy.formats.anthropic.errors` says which type goes with which status).
An ``overloaded_error`` is answered with 529, Anthropic's status for it. The
headers of the error (``Retry-After``, ``x-ratelimit-*``) are kept.

An Anthropic upstream's own refusal of the caller's request (a 4xx it answered
with its error document) is relayed as it came: Claude Code's automatic
recovery matches on the upstream's wording, and a gateway envelope would break it.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.errors import GatewayError
from proxy.formats.anthropic.errors import error_body_for, status_for


def anthropic_error_response(error: GatewayError, request_id: str) -> web.Response:
    """The answer that carries ``error`` to a Messages API caller."""
    document = getattr(error, "document", None)
    if document is not None:
        body = document
        status = error.status
    else:
        body = orjson.dumps(error_body_for(error, request_id))
        status = status_for(error.status, error.code)
    return web.Response(status=status, body=body, content_type="application/json", headers=error.headers)
