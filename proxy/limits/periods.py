"""Budget periods in UTC: which period a moment falls in, when it began and when it ends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from proxy.config.model import BUDGET_PERIODS


def period_bounds(period: str, now: float) -> tuple[str, float, float | None]:
    """``(id, start, end)`` of the ``period`` holding Unix time ``now``; ``end`` is None for ``total``.

    Ids name the period (``2026-12-02``, ``2026-W49``, ``2026-12``, ``total``), so a
    count kept under one starts again from zero when the next period begins.
    """
    if period not in BUDGET_PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    if period == "total":
        return "total", 0.0, None
    moment = datetime.fromtimestamp(now, timezone.utc)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.strftime("%Y-%m-%d"), day.timestamp(), (day + timedelta(days=1)).timestamp()
    if period == "week":
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start.timestamp(), (start + timedelta(days=7)).timestamp()
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.strftime("%Y-%m"), start.timestamp(), end.timestamp()


def format_utc(seconds: float) -> str:
    """An ISO 8601 UTC time (``2026-12-03T00:00:00Z``)."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
