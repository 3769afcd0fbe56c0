"""Upstream rate-limit headers read into headroom (``proxy/optimise/headroom.py``).

OpenAI's and Anthropic's headers as they send them; resets on the caller's
clock; garbage of any kind ignored, never raised on.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.optimise.headroom import (
    ASSUMED_RESET,
    MAX_RESET,
    Allowance,
    Headroom,
    duration_seconds,
    parse_headroom,
)

NOW = 1000.0  # the caller's monotonic clock
WALL = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC).timestamp()


def at(seconds: float) -> str:
    return (dt.datetime.fromtimestamp(WALL, dt.UTC) + dt.timedelta(seconds=seconds)).isoformat().replace(
        "+00:00", "Z")


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("250us", 0.00025),
    ("1.5", 1.5), ("17", 17.0),
])
def test_openai_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1s", "1x", "1s2", "25h", "1e3s", "١s", "9" * 70, None])
def test_durations_that_are_not_sane_are_ignored(text: str | None) -> None:
    assert duration_seconds(text) is None


def test_openai_headers() -> None:
    headers = CIMultiDict({"X-RateLimit-Remaining-Requests": "0", "X-RateLimit-Reset-Requests": "6m0s",
                           "X-RateLimit-Remaining-Tokens": "149984", "X-RateLimit-Reset-Tokens": "6ms"})
    assert parse_headroom(headers, NOW, WALL) == Headroom(
        requests=Allowance(0, NOW + 360.0), tokens=Allowance(149984, NOW + 0.006))


def test_anthropic_headers() -> None:
    headers = CIMultiDict({
        "anthropic-ratelimit-requests-remaining": "49", "anthropic-ratelimit-requests-reset": at(5),
        "anthropic-ratelimit-tokens-remaining": "1000", "anthropic-ratelimit-tokens-reset": at(30),
        "anthropic-ratelimit-input-tokens-remaining": "800", "anthropic-ratelimit-input-tokens-reset": at(30),
        "anthropic-ratelimit-output-tokens-remaining": "0", "anthropic-ratelimit-output-tokens-reset": at(-5),
    })
    headroom = parse_headroom(headers, NOW, WALL)
    assert headroom == Headroom(requests=Allowance(49, NOW + 5), tokens=Allowance(1000, NOW + 30),
                                input_tokens=Allowance(800, NOW + 30), output_tokens=Allowance(0, NOW))


def test_a_count_without_its_reset_is_assumed_to_reset_soon() -> None:
    headroom = parse_headroom({"x-ratelimit-remaining-requests": "0"}, NOW, WALL)  # Azure sends no reset
    assert headroom == Headroom(requests=Allowance(0, NOW + ASSUMED_RESET))


def test_answers_without_rate_limit_headers_have_no_headroom() -> None:
    assert parse_headroom({"content-type": "application/json"}, NOW, WALL) is None


@pytest.mark.parametrize("headers", [
    {"x-ratelimit-remaining-requests": "-1"}, {"x-ratelimit-remaining-requests": "ten"},
    {"x-ratelimit-remaining-requests": "1" * 16}, {"x-ratelimit-remaining-requests": "½"},
    {"anthropic-ratelimit-requests-remaining": "1.5"}, {"anthropic-ratelimit-requests-remaining": ""},
])
def test_counts_that_are_not_whole_numbers_are_ignored(headers: dict[str, str]) -> None:
    assert parse_headroom(headers, NOW, WALL) is None


@pytest.mark.parametrize("reset", ["2025-01-01T12:00:30", "tomorrow", at(MAX_RESET + 60), "9" * 80])
def test_anthropic_resets_without_a_zone_or_too_far_are_not_believed(reset: str) -> None:
    headroom = parse_headroom({"anthropic-ratelimit-requests-remaining": "0",
                               "anthropic-ratelimit-requests-reset": reset}, NOW, WALL)
    assert headroom == Headroom(requests=Allowance(0, NOW + ASSUMED_RESET))


@settings(max_examples=300, deadline=None, database=None)
@given(values=st.dictionaries(
    st.sampled_from(["x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
                     "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
                     "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"]),
    st.text(max_size=40)))
def test_any_header_values_give_bounded_headroom_or_none(values: dict[str, str]) -> None:
    headroom = parse_headroom(values, NOW, WALL)
    if headroom is None:
        return
    for allowance in (headroom.requests, headroom.tokens, headroom.input_tokens, headroom.output_tokens):
        if allowance is not None:
            assert 0 <= allowance.remaining < 10**15
            assert NOW <= allowance.reset_at <= NOW + MAX_RESET


def test_exhausted_until_the_reset() -> None:
    no_requests = Headroom(requests=Allowance(0, NOW + 10))
    assert no_requests.exhausted(100, NOW) and no_requests.exhausted(100, NOW + 9.9)
    assert not no_requests.exhausted(100, NOW + 10)
    assert no_requests.retry_in(NOW + 4) == pytest.approx(6)


def test_too_few_tokens_for_the_prompt_is_exhausted() -> None:
    tokens = Headroom(tokens=Allowance(500, NOW + 10))
    assert tokens.exhausted(501, NOW) and not tokens.exhausted(500, NOW)
    assert Headroom(input_tokens=Allowance(500, NOW + 10)).exhausted(501, NOW)
    assert Headroom(output_tokens=Allowance(0, NOW + 10)).exhausted(1, NOW)
    assert not Headroom(requests=Allowance(3, NOW + 10), tokens=Allowance(10**6, NOW + 10)).exhausted(10, NOW)
