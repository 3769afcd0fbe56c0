"""Errors in Anthropic's shape, for callers of the Messages API: pure, no I/O.

Anthropic's errors are ``{"type": "error", "error": {"type", "message"}}``
(with an optional top-level ``request_id``), plain or as a stream's ``error``
event. The error ``type`` follows the HTTP status as Anthropic documents it
(400 ``invalid_request_error``, 401 ``authentication_error``, 402
``billing_error``, 403 ``permission_error``, 404 ``not_found_error``, 408 and
504 ``timeout_error``, 409 ``conflict_error``, 413 ``request_too_large``, 429
``rate_limit_error``, 500 and 502 ``api_error``, 529 ``overloaded_error``;
other 4xx ``invalid_request_error``, other 5xx ``api_error``). Anthropic
documents no 503: the gateway's 503s (overloaded, no healthy upstream, the
upstream unavailable, shutting down) mean "temporarily unable, retry", which
is Anthropic's ``overloaded_error``, answered with Anthropic's status for it,
529 (:func:`status_for`), so the anthropic SDKs raise ``OverloadedError`` and
Claude Code treats it as the overload it is.

The gateway's own error code is not part of Anthropic's shape (the log line
and the metrics keep it); it only refines the type where the status alone
would mislead: ``gateway_overloaded`` and ``upstream_unavailable`` are
``overloaded_error`` whatever their status.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ErrorCode, GatewayError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's error ``type`` for each HTTP status it (or the gateway) answers with."""

OVERLOADED_CODES = frozenset({ErrorCode.GATEWAY_OVERLOADED, ErrorCode.UPSTREAM_UNAVAILABLE})
"""Gateway error codes that are ``overloaded_error`` whatever their status."""

CHAT_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "timeout_error": "timeout_error",
    "service_unavailable": "overloaded_error",
    "overloaded_error": "overloaded_error",
}
"""Anthropic's type for an OpenAI-style error ``type`` (of a mid-stream ``{"error": ...}`` chunk).

Any other type is ``api_error``.
"""

STREAM_FAILED = "The upstream failed during the stream."


def error_type_for(status: int, code: str | None = None) -> str:
    """Anthropic's error ``type`` for an HTTP ``status`` and the gateway's error ``code``."""
    if code in OVERLOADED_CODES:
        return "overloaded_error"
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


OVERLOADED_STATUS = 529
"""Anthropic's status for ``overloaded_error``."""


def status_for(status: int, code: str | None = None) -> int:
    """The status Anthropic would answer with: 529 for an ``overloaded_error``, else ``status``."""
    if 500 <= status < 600 and error_type_for(status, code) == "overloaded_error":
        return OVERLOADED_STATUS
    return status


def error_body(status: int, message: str, code: str | None = None,
               request_id: str | None = None) -> dict[str, Any]:
    """The ``{"type": "error", "error": {"type", "message"}}`` document (also a stream's ``error`` event)."""
    body: dict[str, Any] = {"type": "error",
                            "error": {"type": error_type_for(status, code), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_body_for(exc: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic-shaped document for a :class:`GatewayError`.

    Anthropic's shape has no ``param``: a field the message does not name yet
    goes in front of it, as Anthropic writes its own (``tools[0].type: ...``).
    """
    message = exc.message
    if exc.param and exc.param not in message:
        message = f"{exc.param}: {message}"
    return error_body(exc.status, message, exc.code, request_id)


def error_from_chat(error: Any) -> dict[str, Any]:
    """The ``error`` event for an OpenAI-style ``{"error": {...}}`` chunk met mid-stream.

    Read defensively: a message that is not a string gives a generic one, an
    unknown type ``api_error``.
    """
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    kind = error.get("type")
    return {"type": "error", "error": {
        "type": CHAT_ERROR_TYPES.get(kind, "api_error") if isinstance(kind, str) else "api_error",
        "message": message if isinstance(message, str) and message else STREAM_FAILED,
    }}
