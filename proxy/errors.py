"""OpenAI-shaped errors: one exception type and the JSON body every error carries."""

from __future__ import annotations

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
                            "/v1/embeddings, /v1/models and /health.", code="not_found")
    if status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        headers = {"Allow": allowed} if allowed else None
        return GatewayError(405, f"Method not allowed here; use {allowed or 'another method'}.",
                            code="method_not_allowed", headers=headers)
    if status == 413:
        return GatewayError(413, "Request body is too large.", code="request_too_large")
    return GatewayError(status, exc.reason or "HTTP error", code=None)
