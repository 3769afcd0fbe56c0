"""Result records shared by the load drivers, and percentile arithmetic."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile of ``values`` (nearest rank); ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LoadResult:
    """One closed-loop run of plain requests: throughput, latency and errors."""

    tool: str  # "wrk" or "asyncio"
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    non2xx: int = 0
    socket_errors: int = 0
    runs_rps: list[float] = field(default_factory=list)  # each run's rps, when this is a median of runs

    @property
    def errors(self) -> int:
        """Non-2xx answers plus socket errors."""
        return self.non2xx + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with ``errors``)."""
        return {**asdict(self), "errors": self.errors}


def median_of(parts: Sequence[LoadResult]) -> LoadResult:
    """Repeated runs of one measurement as one: the median rps, p50 and p99; summed counts."""
    def med(values: list[float | None]) -> float | None:
        present = sorted(v for v in values if v is not None)
        return present[len(present) // 2] if present else None

    return LoadResult(tool=parts[0].tool, concurrency=parts[0].concurrency,
                      requests=sum(p.requests for p in parts), seconds=sum(p.seconds for p in parts),
                      rps=med([p.rps for p in parts]) or 0.0, p50_ms=med([p.p50_ms for p in parts]),
                      p99_ms=med([p.p99_ms for p in parts]), non2xx=sum(p.non2xx for p in parts),
                      socket_errors=sum(p.socket_errors for p in parts),
                      runs_rps=[round(p.rps, 1) for p in parts])


@dataclass
class StreamResult:
    """Many streams opened together: time to first token, total time, failures."""

    streams: int
    ttft_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)  # one per round: open to last [DONE]
    completed: int = 0  # ended with data: [DONE]
    errors: int = 0  # non-200, error event, no [DONE], socket error or timeout
    error_kinds: dict[str, int] = field(default_factory=dict)

    def failed(self, kind: str) -> None:
        """Count one failed stream of this ``kind``."""
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """Summary figures (not the raw samples)."""
        return {
            "streams": self.streams, "completed": self.completed, "errors": self.errors,
            "error_kinds": self.error_kinds,
            "ttft_p50_ms": percentile(self.ttft_ms, 50), "ttft_p99_ms": percentile(self.ttft_ms, 99),
            "total_p50_ms": percentile(self.total_ms, 50), "total_p99_ms": percentile(self.total_ms, 99),
            "wall_s_mean": sum(self.wall_s) / len(self.wall_s) if self.wall_s else None,
        }
