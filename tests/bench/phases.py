"""The benchmark's phases. Each fills its part of ``bench.results`` and is bounded in time.

Phases run against the same upstream, floor and gateway, in order: c=1
latency, c=32 throughput, 200 streams, cache hit vs miss, the leak check,
1,000 streams held open; then extra gateways for ``workers: 2`` and for
admission control, each stopped when its phase ends.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tests.bench import loadgen
from tests.bench.drive import Driver
from tests.bench.plan import Plan
from tests.bench.procs import Procs
from tests.bench.servers import API_KEY, MODEL, Server, start_gateway
from tests.bench.stats import LoadResult, median_of, percentile


@dataclass
class Bench:
    """Everything a phase needs, and the results so far."""

    plan: Plan
    procs: Procs
    driver: Driver
    upstream: Server
    floor: Server
    gateway: Server
    results: dict[str, Any] = field(default_factory=dict)

    def targets(self) -> dict[str, Server]:
        return {"direct": self.upstream, "floor": self.floor, "gateway": self.gateway}

    def say(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def snapshot_rss(self, phase: str) -> None:
        """RSS of the gateway and the floor after ``phase``."""
        self.results.setdefault("rss_mb", {})[phase] = {
            "gateway": round(self.gateway.rss_mb(), 1), "floor": round(self.floor.rss_mb(), 1)}

    def errors(self, phase: str, counts: dict[str, int]) -> None:
        self.results.setdefault("errors", {})[phase] = counts


def take_turns(bench: Bench, label: str, concurrency: int,
               runs_of: dict[str, tuple[str, bool]]) -> dict[str, LoadResult]:
    """Plain load on each ``name: (url, unique bodies?)`` in turn, ``plan.repeats`` times.

    Each figure is the median of its runs, so a burst of outside load (the
    machine may be shared) skews no single target. Only the first run of
    each target has a warm-up.
    """
    plan, runs = bench.plan, {name: [] for name in runs_of}
    for rep in range(plan.repeats):
        for name, (url, unique) in runs_of.items():
            bench.say(f"{label}: {name} at c={concurrency} for {plan.measure_s:g}s "
                      f"({bench.driver.tool}, run {rep + 1}/{plan.repeats})")
            runs[name].append(bench.driver.run(url, concurrency, plan.measure_s, unique=unique,
                                               warmup=plan.warmup_s if rep == 0 else 0))
    return {name: median_of(r) for name, r in runs.items()}


def plain_phase(bench: Bench, name: str, concurrency: int, targets: tuple[str, ...]) -> None:
    """Closed-loop plain requests (unique messages) at ``concurrency`` against each target."""
    servers = bench.targets()
    found = take_turns(bench, name, concurrency, {t: (servers[t].chat_url, True) for t in targets})
    bench.results[name] = {t: r.as_dict() for t, r in found.items()}
    bench.errors(name, {t: r.errors for t, r in found.items()})
    bench.snapshot_rss(name)


def stream_bodies(chunks: int, delay_ms: int) -> loadgen.BodyFactory:
    return loadgen.unique_bodies(MODEL, stream=True, bench_chunks=chunks, bench_delay_ms=delay_ms)


def streams_phase(bench: Bench) -> None:
    """``plan.streams`` streams opened together, the targets taking turns round by round (asyncio client)."""
    plan = bench.plan
    bench.say(f"streams: {plan.streams} x {plan.stream_chunks} chunks {plan.stream_delay_ms}ms apart, "
              f"{plan.stream_rounds} rounds on each of direct, floor, gateway")
    results = asyncio.run(loadgen.stream_rounds(
        {t: s.chat_url for t, s in bench.targets().items()},
        stream_bodies(plan.stream_chunks, plan.stream_delay_ms), API_KEY, plan.streams,
        rounds=plan.stream_rounds, warmup_rounds=1, timeout_s=60))
    found = {t: r.as_dict() for t, r in results.items()}
    bench.results["streams"] = found
    bench.errors("streams", {t: r["errors"] for t, r in found.items()})
    bench.snapshot_rss("streams")


def cache_phase(bench: Bench) -> None:
    """Gateway at high concurrency: identical bodies (hits) vs unique bodies (misses)."""
    url, c = bench.gateway.chat_url, bench.plan.high_concurrency
    found = take_turns(bench, "cache", c, {"hit": (url, False), "miss": (url, True)})
    hit, miss = found["hit"], found["miss"]
    bench.results["cache"] = {"hit": hit.as_dict(), "miss": miss.as_dict(),
                              "ratio": hit.rps / miss.rps if miss.rps else None}
    bench.errors("cache", {"hit": hit.errors, "miss": miss.errors})
    bench.snapshot_rss("cache")


def leak_phase(bench: Bench) -> None:
    """Gateway RSS after ``leak_first`` and after ``leak_total`` unique requests."""
    plan, url, c = bench.plan, bench.gateway.chat_url, bench.plan.high_concurrency
    bench.say(f"leak: {plan.leak_first} requests at c={c}")
    first = bench.driver.count(url, c, plan.leak_first, plan.leak_max_s)
    time.sleep(1.0)
    rss_first = bench.gateway.rss_mb()
    rest = plan.leak_total - first.requests
    bench.say(f"leak: {rest} more requests (RSS now {rss_first:.1f} MB)")
    second = bench.driver.count(url, c, rest, plan.leak_max_s)
    time.sleep(1.0)
    rss_total = bench.gateway.rss_mb()
    bench.results["leak"] = {
        "requests_first": first.requests, "requests_total": first.requests + second.requests,
        "rss_first_mb": round(rss_first, 1), "rss_total_mb": round(rss_total, 1),
        "growth_pct": (rss_total - rss_first) / rss_first * 100, "rps": second.rps,
        "errors": first.errors + second.errors}
    bench.errors("leak", {"gateway": first.errors + second.errors})
    bench.snapshot_rss("leak")


def big_streams_phase(bench: Bench) -> None:
    """``plan.big_streams`` slow streams opened together; every one must end with [DONE]."""
    plan, found = bench.plan, {}
    for target in ("gateway", "floor"):
        server = bench.targets()[target]
        bench.say(f"held streams: {plan.big_streams} x {plan.big_chunks} chunks {plan.big_delay_ms}ms apart "
                  f"-> {target}")

        async def run() -> tuple[Any, float]:
            async with loadgen.RssSampler(server.rss_mb) as sampler:
                result = await loadgen.open_streams(
                    server.chat_url, stream_bodies(plan.big_chunks, plan.big_delay_ms), API_KEY,
                    plan.big_streams, timeout_s=120)
            return result, sampler.peak_mb

        result, peak = asyncio.run(run())
        found[target] = {**result.as_dict(), "peak_rss_mb": round(peak, 1)}
    bench.results["held_streams"] = found
    bench.errors("held_streams", {t: r["errors"] for t, r in found.items()})
    bench.snapshot_rss("held_streams")


def workers_phase(bench: Bench) -> None:
    """A second gateway with ``workers: 2`` beside the first (1 worker), taking turns; unique bodies."""
    c = bench.plan.high_concurrency
    bench.say("workers: starting a gateway with workers: 2")
    gateway2 = start_gateway(bench.procs, bench.upstream, name="gateway-workers2", workers=2)
    try:
        found = take_turns(bench, "workers", c, {"workers: 1": (bench.gateway.chat_url, True),
                                                 "workers: 2": (gateway2.chat_url, True)})
        rss = gateway2.rss_mb()
    finally:
        bench.procs.stop(gateway2.child)
    one, two = found["workers: 1"], found["workers: 2"]
    bench.results["workers2"] = {**two.as_dict(), "rss_mb_all_processes": round(rss, 1),
                                 "rps_1_worker": one.rps, "p99_ms_1_worker": one.p99_ms,
                                 "runs_rps_1_worker": one.runs_rps,
                                 "ratio": two.rps / one.rps if one.rps else None}
    bench.errors("workers2", {"workers: 1": one.errors, "workers: 2": two.errors})


def admission_phase(bench: Bench) -> None:
    """Bursts of requests to a slow upstream: ``max_in_flight`` set vs no limit (fresh gateways).

    Latencies are seen by the client (which fires the whole burst from one
    event loop, so they include its own queueing) and, from the gateway's
    request log lines, by the gateway itself (``latency_ms``).
    """
    plan, found = bench.plan, {}
    bodies = loadgen.unique_bodies(MODEL, bench_sleep_ms=plan.admission_sleep_ms)
    for label, limit in (("limited", plan.admission_limit), ("unlimited", 0)):
        bench.say(f"admission: {plan.admission_rounds} bursts of {plan.admission_concurrency} "
                  f"(upstream sleeps {plan.admission_sleep_ms}ms), max_in_flight={limit}")
        server = start_gateway(bench.procs, bench.upstream, name=f"gateway-admission-{label}",
                               max_in_flight=limit)
        warm = plan.admission_concurrency  # one warm-up burst, left out of the figures
        try:
            answers = asyncio.run(loadgen.burst(
                server.chat_url, bodies, API_KEY, plan.admission_concurrency, plan.admission_rounds,
                warmup_rounds=1, after_warmup=lambda: _logged_requests(server, warm)))
            logged = _logged_requests(server, warm + len(answers))[warm:]
        finally:
            bench.procs.stop(server.child)
        refused = [a for a in answers if a.status == 503]
        admitted = [a for a in answers if a.status == 200]
        found[label] = {
            "max_in_flight": limit, "requests": len(answers), "admitted": len(admitted),
            "refused_503": len(refused), "refused_with_retry_after": sum(1 for a in refused if a.retry_after),
            "refused_p50_ms": percentile([a.ms for a in refused], 50),
            "admitted_p50_ms": percentile([a.ms for a in admitted], 50),
            "admitted_p99_ms": percentile([a.ms for a in admitted], 99),
            "gateway_refused_p50_ms": percentile([x["latency_ms"] for x in logged if x.get("status") == 503], 50),
            "gateway_admitted_p99_ms": percentile([x["latency_ms"] for x in logged if x.get("status") == 200], 99),
            "other": len(answers) - len(refused) - len(admitted)}
    bench.results["admission"] = found
    bench.errors("admission", {t: r["other"] for t, r in found.items()})


def _logged_requests(server: Server, at_least: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The gateway's chat request log lines, once ``at_least`` are written (a thread writes them)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in server.child.lines()
                 if x.get("event") == "request" and x.get("path") == "/v1/chat/completions"]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
