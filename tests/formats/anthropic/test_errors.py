"""Errors in Anthropic's shape: the type for each status, the gateway's codes, mid-stream errors."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types.shared import ErrorResponse

from proxy.errors import ErrorCode, GatewayError
from proxy.formats.anthropic.errors import (
    STREAM_FAILED,
    error_body,
    error_body_for,
    error_from_chat,
    error_type_for,
    status_for,
)

STATUS_TYPES = [
    (400, "invalid_request_error"),
    (401, "authentication_error"),
    (402, "billing_error"),
    (403, "permission_error"),
    (404, "not_found_error"),
    (405, "invalid_request_error"),
    (408, "timeout_error"),
    (409, "conflict_error"),
    (413, "request_too_large"),
    (422, "invalid_request_error"),
    (429, "rate_limit_error"),
    (431, "invalid_request_error"),
    (500, "api_error"),
    (502, "api_error"),
    (503, "overloaded_error"),
    (504, "timeout_error"),
    (529, "overloaded_error"),
    (599, "api_error"),
]


@pytest.mark.parametrize("status,kind", STATUS_TYPES)
def test_the_type_follows_the_status(status: int, kind: str) -> None:
    assert error_type_for(status) == kind
    assert error_body(status, "Nope.") == {"type": "error", "error": {"type": kind, "message": "Nope."}}


@pytest.mark.parametrize("status,kind", [
    row for row in STATUS_TYPES if row[1] not in ("request_too_large", "conflict_error")])
def test_the_sdk_reads_the_body(status: int, kind: str) -> None:
    """The SDK's error object union lists neither ``request_too_large`` (Anthropic's documented
    type for 413) nor ``conflict_error`` (in its own list of error types)."""
    parsed = ErrorResponse.model_validate(error_body(status, "Nope.", request_id="req_1"))
    assert (parsed.error.type, parsed.error.message, parsed.request_id) == (kind, "Nope.", "req_1")


@pytest.mark.parametrize("status,code", [
    (503, ErrorCode.GATEWAY_OVERLOADED), (429, ErrorCode.GATEWAY_OVERLOADED),
    (502, ErrorCode.UPSTREAM_UNAVAILABLE), (503, ErrorCode.UPSTREAM_UNAVAILABLE),
])
def test_overload_codes_are_overloaded_whatever_the_status(status: int, code: str) -> None:
    assert error_type_for(status, code) == "overloaded_error"


@pytest.mark.parametrize("status,code,kind", [
    (429, ErrorCode.RATE_LIMIT_EXCEEDED, "rate_limit_error"),
    (400, ErrorCode.UNSUPPORTED_PARAMETER, "invalid_request_error"),
    (401, ErrorCode.INVALID_API_KEY, "authentication_error"),
    (404, ErrorCode.MODEL_NOT_FOUND, "not_found_error"),
    (504, ErrorCode.UPSTREAM_TIMEOUT, "timeout_error"),
])
def test_other_codes_keep_the_status_type(status: int, code: str, kind: str) -> None:
    assert error_type_for(status, code) == kind


def test_a_gateway_error_keeps_its_message_and_only_adds_a_request_id_when_given() -> None:
    exc = GatewayError(400, "messages[0].content must not be an empty list.",
                       code=ErrorCode.INVALID_REQUEST, param="messages[0].content")
    assert error_body_for(exc) == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages[0].content must not be an empty list."}}
    assert error_body_for(exc, "req_7")["request_id"] == "req_7"


@pytest.mark.parametrize("error,expected", [
    ({"message": "Rate limited.", "type": "rate_limit_error"}, ("rate_limit_error", "Rate limited.")),
    ({"message": "Busy.", "type": "service_unavailable"}, ("overloaded_error", "Busy.")),
    ({"message": "Boom.", "type": "server_error", "code": 500}, ("api_error", "Boom.")),
    ({"message": "", "type": ["odd"]}, ("api_error", STREAM_FAILED)),
    ("a string", ("api_error", STREAM_FAILED)),
    (None, ("api_error", STREAM_FAILED)),
])
def test_a_chat_error_chunk_becomes_an_error_event(error: Any, expected: tuple[str, str]) -> None:
    event = error_from_chat(error)
    assert (event["type"], event["error"]["type"], event["error"]["message"]) == ("error", *expected)


@pytest.mark.parametrize("status,code,expected", [
    (503, None, 529), (503, ErrorCode.NO_HEALTHY_UPSTREAM, 529), (502, ErrorCode.UPSTREAM_UNAVAILABLE, 529),
    (529, None, 529), (502, ErrorCode.UPSTREAM_ERROR, 502), (500, None, 500), (504, None, 504),
    (429, ErrorCode.GATEWAY_OVERLOADED, 429), (400, None, 400),
])
def test_overloaded_errors_get_anthropics_529(status: int, code: str | None, expected: int) -> None:
    assert status_for(status, code) == expected


def test_the_field_a_message_does_not_name_goes_in_front_of_it() -> None:
    exc = GatewayError(400, "Tools of this type cannot be sent to this model.", param="tools[0].type",
                       code=ErrorCode.UNSUPPORTED_PARAMETER)
    assert error_body_for(exc)["error"]["message"] == "tools[0].type: Tools of this type cannot be sent to this model."
