"""``GET /v1/limits``'s answer: a caller's own limits and what is left of each."""

from __future__ import annotations

from typing import Any

from proxy.limits.demand import USD_UNITS
from proxy.limits.model import Reading, Scope
from proxy.limits.periods import format_utc

MONEY_DIGITS = 9


def limits_view(key: str | None, team: str | None, scopes: list[Scope] | tuple[Scope, ...],
                readings: list[Reading]) -> dict[str, Any]:
    """``{"key", "team", "limits": [...]}``, each scope with only the parts it sets."""
    return {"key": key, "team": team,
            "limits": [scope_view(scope, reading) for scope, reading in zip(scopes, readings)]}


def scope_view(scope: Scope, reading: Reading) -> dict[str, Any]:
    """One key's or team's limits and their state."""
    limits = scope.limits
    view: dict[str, Any] = {"scope": scope.scope, "name": scope.name}
    if limits.rpm is not None:
        view["rpm"] = {"limit": limits.rpm, "remaining": max(0, limits.rpm - reading.rpm_used),
                       "reset_seconds": round(reading.rpm_reset, 3)}
    if limits.tpm is not None:
        view["tpm"] = {"limit": limits.tpm, "remaining": max(0, limits.tpm - reading.tpm_used),
                       "reset_seconds": round(reading.tpm_reset, 3)}
    if limits.max_parallel is not None:
        view["max_parallel"] = {"limit": limits.max_parallel, "in_flight": reading.in_flight}
    if limits.budget is not None:
        spent = round(reading.spent_units / USD_UNITS, MONEY_DIGITS)
        end = scope.period[2] if scope.period is not None else None
        view["budget"] = {"usd": limits.budget.usd, "spent_usd": spent,
                          "remaining_usd": round(max(0.0, limits.budget.usd - spent), MONEY_DIGITS),
                          "period": limits.budget.period,
                          "resets_at": format_utc(end) if end is not None else None}
    if limits.models is not None:
        view["models"] = sorted(limits.models)
    return view
