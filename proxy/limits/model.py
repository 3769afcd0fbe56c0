"""What a limits backend is asked and answers: the scopes a request counts against, a refusal,
the readings the rate-limit headers are made from, and the reservation a request holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from proxy.config import Limits

KEY, TEAM = "key", "team"
"""The two scopes a request counts against: its caller key, and the key's team."""
LIMIT_NAMES = ("rpm", "tpm", "max_parallel", "budget", "models")
"""The ``limit`` label values of ``llm_gateway_limit_rejections_total``."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One key or team and its limits as configured now."""

    scope: str  # KEY or TEAM
    name: str
    limits: Limits
    period: tuple[str, float, float | None] | None = None  # the budget's (id, start, end) now

    @property
    def ident(self) -> tuple[str, str]:
        """``(scope, name)``: what its counts are kept under."""
        return (self.scope, self.name)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request may not go on: which scope, which limit, and when it could."""

    scope: str
    name: str
    limit: str  # one of LIMIT_NAMES
    retry_after: float | None  # seconds; None when waiting cannot help
    detail: str = ""


class Reading(NamedTuple):
    """A scope's counts right after a request was admitted (its own use included)."""

    rpm_used: int = 0
    rpm_reset: float = 0.0
    tpm_used: int = 0
    tpm_reset: float = 0.0
    in_flight: int = 0
    spent_units: int = 0


@dataclass(slots=True)
class Reservation:
    """What an admitted request holds until it is settled."""

    reservation_id: str
    scopes: tuple[Scope, ...]
    second: int  # the clock second its rpm and tpm use were counted in
    tokens: int
    cost_units: int
    readings: list[Reading] = field(default_factory=list)
    settled: bool = False


class LimitsUnavailable(Exception):
    """The limits' store (Redis) could not be asked; the stage applies ``limits.on_backend_error``."""
