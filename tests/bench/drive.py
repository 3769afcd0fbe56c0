"""Plain-request load: wrk when present (and not disabled), else the asyncio generator.

Both paths take the same shape of request (JSON chat body, the caller's key,
a unique message per request for the cache-miss path, one fixed message for
the hit path) and return a :class:`~tests.bench.stats.LoadResult`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.bench import loadgen, wrk
from tests.bench.stats import LoadResult

SEGMENT_S = 10.0
PROBE_S = 2.0  # the first segment, which measures the rate


def combine(parts: list[LoadResult]) -> LoadResult:
    """Several consecutive runs as one: summed counts; latency percentiles of the slowest part."""
    requests = sum(p.requests for p in parts)
    seconds = sum(p.seconds for p in parts)
    p50s = [p.p50_ms for p in parts if p.p50_ms is not None]
    p99s = [p.p99_ms for p in parts if p.p99_ms is not None]
    return LoadResult(tool=parts[0].tool if parts else "wrk", concurrency=parts[0].concurrency if parts else 0,
                      requests=requests, seconds=seconds, rps=requests / seconds if seconds else 0.0,
                      p50_ms=max(p50s) if p50s else None, p99_ms=max(p99s) if p99s else None,
                      non2xx=sum(p.non2xx for p in parts), socket_errors=sum(p.socket_errors for p in parts))


@dataclass
class Driver:
    """How plain load is generated in this run."""

    workdir: Path
    key: str
    model: str
    use_wrk: bool
    wrk_threads: int = 1

    @property
    def tool(self) -> str:
        return "wrk" if self.use_wrk else "asyncio"

    def _bodies(self, unique: bool, model: str | None = None) -> loadgen.BodyFactory:
        if unique:
            return loadgen.unique_bodies(self.model if model is None else model)
        fixed = loadgen.chat_body("bench hit", self.model if model is None else model)
        return lambda: fixed

    def run(self, url: str, concurrency: int, seconds: float, unique: bool = True,
            warmup: float = 0.0, model: str | None = None,
            headers: dict[str, str] | None = None) -> LoadResult:
        """A warm-up (discarded) then a measured run of ``seconds`` at ``concurrency``.

        The body (``{"model", "max_tokens", "messages"}``, valid for Chat Completions and the
        Messages API alike) names ``model`` (default: the driver's) and goes to ``url``'s path.
        """
        if warmup > 0:
            self._run(url, concurrency, warmup, unique, model, headers)
        return self._run(url, concurrency, seconds, unique, model, headers)

    def _run(self, url: str, concurrency: int, seconds: float, unique: bool, model: str | None = None,
             headers: dict[str, str] | None = None) -> LoadResult:
        if self.use_wrk:
            script = wrk.write_script(self.workdir, self.key, self.model if model is None else model, unique,
                                      path=urlsplit(url).path,
                                      headers=headers)
            return wrk.run(url, script, concurrency, seconds, threads=self._threads(concurrency))
        return asyncio.run(loadgen.plain_load(url, self._bodies(unique, model), self.key, concurrency, seconds,
                                              extra_headers=headers))

    def count(self, url: str, concurrency: int, requests: int, max_seconds: float) -> LoadResult:
        """About ``requests`` unique requests (fewer if ``max_seconds`` runs out first).

        wrk runs for a duration, not a count, so it runs in segments: a
        ``PROBE_S`` probe, then segments of at most ``SEGMENT_S`` seconds, each
        sized from the rate of the one before; the total overshoots by less
        than about one second's worth of requests.
        """
        if not self.use_wrk:
            return asyncio.run(loadgen.plain_load(url, self._bodies(True), self.key, concurrency, max_seconds,
                                                  max_requests=requests))
        deadline = time.monotonic() + max_seconds
        parts: list[LoadResult] = []
        rate = 0.0
        while sum(p.requests for p in parts) < requests and time.monotonic() < deadline - 1:
            left = requests - sum(p.requests for p in parts)
            seconds = PROBE_S if rate <= 0 else min(SEGMENT_S, max(1.0, round(left / rate)))
            seconds = min(seconds, max(1.0, deadline - time.monotonic()))
            script = wrk.write_script(self.workdir, self.key, self.model, True)
            parts.append(wrk.run(url, script, concurrency, seconds, threads=self._threads(concurrency)))
            rate = parts[-1].rps
        return combine(parts)

    def _threads(self, concurrency: int) -> int:
        return 1 if concurrency == 1 else self.wrk_threads
