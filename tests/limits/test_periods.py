"""Budget periods in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from proxy.limits.periods import format_utc, period_bounds


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(("period", "now", "ident", "start", "end"), [
    ("day", "2026-12-02T13:45:00", "2026-12-02", "2026-12-02T00:00:00", "2026-12-03T00:00:00"),
    ("week", "2026-12-02T13:45:00", "2026-W49", "2026-11-30T00:00:00", "2026-12-07T00:00:00"),
    ("month", "2026-12-31T23:59:59", "2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("month", "2027-02-10T00:00:00", "2027-02", "2027-02-01T00:00:00", "2027-03-01T00:00:00"),
    ("week", "2027-01-01T08:00:00", "2026-W53", "2026-12-28T00:00:00", "2027-01-04T00:00:00"),
])
def test_period_bounds(period: str, now: str, ident: str, start: str, end: str) -> None:
    assert period_bounds(period, at(now)) == (ident, at(start), at(end))


def test_total_never_resets() -> None:
    assert period_bounds("total", at("2026-12-02T00:00:00")) == ("total", 0.0, None)


def test_unknown_period() -> None:
    with pytest.raises(ValueError):
        period_bounds("fortnight", 0.0)


def test_format_utc() -> None:
    assert format_utc(at("2026-12-03T00:00:00")) == "2026-12-03T00:00:00Z"
