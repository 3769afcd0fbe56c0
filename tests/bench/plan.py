"""How long and how hard each phase runs: the full run and the ``--quick`` smoke run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Plan:
    """Every phase's size. All phases are bounded by these counts and by time."""

    warmup_s: float = 2.0
    measure_s: float = 5.0  # one measured plain-load run
    repeats: int = 3  # plain-load runs per target, taking turns; the median is reported
    high_concurrency: int = 32
    streams: int = 200  # streams opened together in the stream phase
    stream_chunks: int = 20
    stream_delay_ms: int = 10
    stream_rounds: int = 5  # measured rounds per target, in turns (after one warm-up round)
    leak_first: int = 50_000  # requests before the first RSS reading of the leak check
    leak_total: int = 200_000  # requests before the second
    leak_max_s: float = 240.0  # bound on each leak run
    big_streams: int = 1000
    big_chunks: int = 100
    big_delay_ms: int = 50
    admission_limit: int = 50
    admission_concurrency: int = 200
    admission_sleep_ms: int = 200
    admission_rounds: int = 10
    deadline_s: float = 1200.0  # the whole run is aborted (and every child killed) past this

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan()
QUICK = replace(FULL, warmup_s=1.0, measure_s=3.0, repeats=1, stream_rounds=2, leak_first=5_000,
                leak_total=20_000, leak_max_s=60.0, big_chunks=20, admission_rounds=3, deadline_s=400.0)
