"""Errors on the Messages API endpoints: Anthropic's shape and statuses, headers kept, upstream documents relayed."""

from __future__ import annotations

import orjson
import pytest

from proxy.api.anthropic_errors import anthropic_error_response
from proxy.errors import ErrorCode, GatewayError
from proxy.providers.base import UpstreamError


def answer(error: GatewayError) -> tuple[int, dict, dict]:
    response = anthropic_error_response(error, "req_42")
    assert response.content_type == "application/json"
    return response.status, orjson.loads(response.body), dict(response.headers)


@pytest.mark.parametrize("error,status,kind", [
    (GatewayError(401, "Invalid API key.", code=ErrorCode.INVALID_API_KEY), 401, "authentication_error"),
    (GatewayError(400, "bad", code=ErrorCode.INVALID_REQUEST), 400, "invalid_request_error"),
    (GatewayError(403, "no", code=ErrorCode.MODEL_NOT_ALLOWED), 403, "permission_error"),
    (GatewayError(404, "no such model", code=ErrorCode.MODEL_NOT_FOUND), 404, "not_found_error"),
    (GatewayError(413, "too big", code=ErrorCode.REQUEST_TOO_LARGE), 413, "request_too_large"),
    (GatewayError(429, "slow down", code=ErrorCode.RATE_LIMIT_EXCEEDED), 429, "rate_limit_error"),
    (GatewayError(429, "spent", code=ErrorCode.BUDGET_EXCEEDED, type="insufficient_quota"), 429, "rate_limit_error"),
    (GatewayError(502, "upstream broke", code=ErrorCode.UPSTREAM_ERROR), 502, "api_error"),
    (GatewayError(504, "slow upstream", code=ErrorCode.UPSTREAM_TIMEOUT), 504, "timeout_error"),
    (GatewayError(503, "busy", code=ErrorCode.GATEWAY_OVERLOADED), 529, "overloaded_error"),
    (GatewayError(503, "nothing healthy", code=ErrorCode.NO_HEALTHY_UPSTREAM), 529, "overloaded_error"),
    (GatewayError(500, "bug", code=ErrorCode.INTERNAL_ERROR), 500, "api_error"),
])
def test_status_and_type_as_anthropic_answers_them(error: GatewayError, status: int, kind: str) -> None:
    got_status, body, _ = answer(error)
    assert got_status == status
    assert body == {"type": "error", "error": {"type": kind, "message": error.message}, "request_id": "req_42"}


def test_retry_after_and_rate_limit_headers_are_kept() -> None:
    headers = {"Retry-After": "7", "x-ratelimit-limit-requests": "1", "x-ratelimit-remaining-requests": "0"}
    _, _, got = answer(GatewayError(429, "slow down", code=ErrorCode.RATE_LIMIT_EXCEEDED, headers=headers))
    assert {name: got[name] for name in headers} == headers


def test_the_field_at_fault_is_named_in_the_message() -> None:
    _, body, _ = answer(GatewayError(400, "Tools of this type cannot be sent.", param="tools[0].type",
                                     code=ErrorCode.UNSUPPORTED_PARAMETER))
    assert body["error"]["message"] == "tools[0].type: Tools of this type cannot be sent."


def test_an_anthropic_upstreams_own_refusal_goes_out_as_it_came() -> None:
    document = b'{"type":"error","error":{"type":"invalid_request_error","message":"thinking.signature: bad"}}'
    error = UpstreamError(400, "thinking.signature: bad", retryable=False)
    error.document = document
    response = anthropic_error_response(error, "req_42")
    assert (response.status, response.body) == (400, document)
