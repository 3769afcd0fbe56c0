"""OpenAI-shaped errors: the gateway's error codes, one exception type, and the JSON body every error carries.

:class:`ErrorCode` is the one list of the codes the gateway itself produces:
the metrics' ``code`` label takes its values from it (any other code, such as
an upstream's own, is counted as ``other``), and a test checks that the
README's error table and every code raised in the code are on it.
"""

from __future__ import annotations

import enum
from typing import Mapping

import orjson
from aiohttp import web

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "api_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ErrorCode(enum.StrEnum):
    """Every error code the gateway produces (the ``code`` of ``{"error": {...}}``)."""

    # the caller's request
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    MAX_TOKENS_EXCEEDED = "max_tokens_exceeded"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    UNSUPPORTED_ENDPOINT = "unsupported_endpoint"
    INVALID_IMAGE_URL = "invalid_image_url"
    INVALID_TOOL_ARGUMENTS = "invalid_tool_arguments"
    REQUEST_TOO_LARGE = "request_too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    BAD_HTTP_REQUEST = "bad_http_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MODEL_NOT_FOUND = "model_not_found"
    # the caller's credentials
    MISSING_API_KEY = "missing_api_key"
    INVALID_API_KEY = "invalid_api_key"
    # limits
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    LIMITS_UNAVAILABLE = "limits_unavailable"
    GATEWAY_OVERLOADED = "gateway_overloaded"
    # upstreams
    UPSTREAM_AUTH_FAILED = "upstream_auth_failed"
    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_BAD_RESPONSE = "upstream_bad_response"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_STREAM_CUT = "upstream_stream_cut"
    PROVIDER_UNCONFIGURED = "provider_unconfigured"
    UPSTREAMS_EXHAUSTED = "upstreams_exhausted"
    NO_HEALTHY_UPSTREAM = "no_healthy_upstream"
    # the gateway itself
    INTERNAL_ERROR = "internal_error"
    GATEWAY_SHUTDOWN = "gateway_shutdown"
    CLIENT_DISCONNECTED = "client_disconnected"  # only in the log line and metrics (status 499)
    # the usage ledger
    USAGE_NOT_CONFIGURED = "usage_not_configured"
    USAGE_UNAVAILABLE = "usage_unavailable"


def error_type_for(status: int) -> str:
    """The OpenAI error ``type`` that goes with an HTTP status."""
    return _TYPE_BY_STATUS.get(status, "invalid_request_error" if status < 500 else "api_error")


class GatewayError(Exception):
    """A failure to report to the caller as ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or error_type_for(status)
        self.headers = dict(headers or {})

    def payload(self) -> dict[str, object]:
        """The ``{"error": {...}}`` document."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_response(self) -> web.Response:
        """An aiohttp response carrying this error."""
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.payload()),
            content_type="application/json",
            headers=self.headers,
        )


def from_http_exception(exc: web.HTTPException) -> GatewayError:
    """Turn aiohttp's own 404/405/413 exceptions into OpenAI-shaped errors."""
    status = exc.status
    if status == 404:
        return GatewayError(404, "Unknown path. The gateway serves /v1/chat/completions, "
                            "/v1/embeddings, /v1/messages, /v1/messages/count_tokens, /v1/models, "
                            "/v1/usage, /v1/limits and /health.", code=ErrorCode.NOT_FOUND)
    if status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        headers = {"Allow": allowed} if allowed else None
        return GatewayError(405, f"Method not allowed here; use {allowed or 'another method'}.",
                            code=ErrorCode.METHOD_NOT_ALLOWED, headers=headers)
    if status == 413:
        return GatewayError(413, "Request body is too large.", code=ErrorCode.REQUEST_TOO_LARGE)
    return GatewayError(status, exc.reason or "HTTP error", code=None)
