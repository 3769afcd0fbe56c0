"""Circuit breaker states: closed, open after the threshold, one probe when half-open."""

from __future__ import annotations

from proxy.upstream.breakers import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerBoard,
    BreakerSettings,
    CircuitBreaker,
)


def _breaker(threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(threshold, cooldown))


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = _breaker()
    for _ in range(2):
        breaker.record_failure(now=0)
    assert breaker.state == CLOSED and breaker.allow(now=0)
    breaker.record_failure(now=0)
    assert breaker.state == OPEN
    assert not breaker.allow(now=5)
    assert breaker.retry_in(now=4) == 6


def test_a_success_resets_the_count() -> None:
    breaker = _breaker()
    breaker.record_failure(now=0)
    breaker.record_failure(now=0)
    breaker.record_success()
    breaker.record_failure(now=0)
    assert breaker.state == CLOSED


def test_one_probe_after_cooldown_then_close_on_success() -> None:
    breaker = _breaker(threshold=1)
    breaker.record_failure(now=0)
    assert breaker.allow(now=10)  # the probe
    assert breaker.state == HALF_OPEN
    assert not breaker.allow(now=10)  # only one probe at a time
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow(now=10)


def test_failed_probe_opens_again() -> None:
    breaker = _breaker(threshold=5)
    for _ in range(5):
        breaker.record_failure(now=0)
    assert breaker.allow(now=11)
    breaker.record_failure(now=11)
    assert breaker.state == OPEN
    assert not breaker.allow(now=12)
    assert breaker.allow(now=21.5)


def test_released_probe_lets_another_through() -> None:
    breaker = _breaker(threshold=1)
    breaker.record_failure(now=0)
    assert breaker.allow(now=10)
    breaker.release()  # e.g. the caller went away mid-probe
    assert breaker.allow(now=10)


def test_would_allow_claims_nothing() -> None:
    breaker = _breaker(threshold=1)
    breaker.record_failure(now=0)
    assert breaker.would_allow(now=10)
    assert breaker.would_allow(now=10)
    assert breaker.state == OPEN


def test_board_reports_provider_status() -> None:
    board = BreakerBoard(BreakerSettings(1, 10))
    assert board.provider_status("p", ["a", "b"]) == "available"
    board.get("p", "a").record_failure()
    assert board.provider_status("p", ["a", "b"]) == "degraded"
    board.get("p", "b").record_failure()
    assert board.provider_status("p", ["a", "b"]) == "unavailable"


def test_provider_marked_down_for_one_cooldown() -> None:
    board = BreakerBoard(BreakerSettings(5, 10))
    board.mark_provider_down("p", now=0)
    assert board.provider_down("p", now=9)
    assert board.provider_retry_in("p", now=4) == 6
    assert not board.provider_down("p", now=10)


def test_configure_applies_to_existing_breakers() -> None:
    board = BreakerBoard(BreakerSettings(5, 10))
    breaker = board.get("p", "m")
    board.configure(BreakerSettings(1, 10))
    breaker.record_failure()
    assert breaker.state == OPEN
