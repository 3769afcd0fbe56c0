"""Run the whole benchmark: ``python -m tests.bench.run [--quick] [--json PATH]``.

Starts the upstream, the floor and the gateway as subprocesses (each in its
own process group), runs every phase, prints one table and the budget lines,
and always kills every child on the way out (``finally``, also on Ctrl-C, on
SIGTERM and when the whole run passes its deadline).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.bench import messages, phases, report, routing, servers, wrk
from tests.bench.drive import Driver
from tests.bench.plan import FULL, QUICK
from tests.bench.procs import Procs, raise_nofile_limit
from tests.bench.servers import (
    API_KEY,
    MODEL,
    check_layers,
    start_floor,
    start_gateway,
    start_upstream,
)


class Aborted(Exception):
    """SIGTERM, or the run's deadline passed."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run",
                                     description="Benchmark the gateway against a pass-through floor.")
    parser.add_argument("--quick", action="store_true", help="a ~1-2 minute smoke run with smaller phases")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio load generator even if wrk exists")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads above c=1 (default 1)")
    parser.add_argument("--measure", type=float, help="seconds per measured plain-load run (overrides the plan)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs) and print it")
    parser.add_argument("--no-ledger", action="store_true", help="run the gateway without the SQLite usage ledger")
    parser.add_argument("--routing", action="store_true",
                        help="add the routing phase: a two-candidate cheapest rule against a one-model rule")
    parser.add_argument("--tracing", action="store_true",
                        help="export OpenTelemetry traces (to a sink on the bench upstream)")
    parser.add_argument("--messages", action="store_true",
                        help="also measure POST /v1/messages (native and translated) against chat completions")
    parser.add_argument("--only-messages", action="store_true",
                        help="measure only the Messages phase (with the chat completions it compares to)")
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--no-limits", action="store_true", help="run the gateway's key without limits")
    limits.add_argument("--redis-limits", action="store_true",
                        help="count the key's limits in the Redis at 127.0.0.1:6379 instead of memory")
    return parser.parse_args(argv)


def _abort(signum: int, _frame: object) -> None:
    raise Aborted("deadline passed" if signum == signal.SIGALRM else f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run every phase and print the table; returns the exit code (130 when aborted)."""
    args = parse_args(argv)
    servers.WITH_LEDGER = not args.no_ledger
    servers.WITH_TRACING = args.tracing
    servers.LIMITS_BACKEND = None if args.no_limits else ("redis" if args.redis_limits else "memory")
    plan = QUICK if args.quick else FULL
    if args.measure:
        plan = replace(plan, measure_s=args.measure)
    nofile = raise_nofile_limit()
    workdir = Path(tempfile.mkdtemp(prefix="llm-gateway-bench-"))
    procs = Procs(workdir)
    signal.signal(signal.SIGTERM, _abort)
    signal.signal(signal.SIGALRM, _abort)
    signal.alarm(int(plan.deadline_s))
    started = time.monotonic()
    results: dict[str, Any] = {"meta": {"quick": args.quick, "plan": plan.as_dict(), "cpus": os.cpu_count(),
                              "nofile": nofile, "python": sys.version.split()[0],
                              "loadavg_before": os.getloadavg()[0], "ledger": servers.WITH_LEDGER,
                              "limits": servers.LIMITS_BACKEND, "tracing": servers.WITH_TRACING}}
    try:
        upstream = start_upstream(procs, plan.stream_chunks, plan.stream_delay_ms)
        floor = start_floor(procs, upstream)
        gateway = start_gateway(procs, upstream)
        problems = check_layers(gateway)
        if problems:
            raise RuntimeError("gateway layers not as configured: " + "; ".join(problems))
        driver = Driver(workdir, API_KEY, MODEL, use_wrk=wrk.available() and not args.no_wrk,
                        wrk_threads=args.wrk_threads)
        results["meta"]["load_tool"] = driver.tool
        bench = phases.Bench(plan, procs, driver, upstream, floor, gateway, results)
        bench.snapshot_rss("start")
        if not args.only_messages:
            phases.plain_phase(bench, "c1", 1, ("direct", "floor", "gateway"))
            phases.plain_phase(bench, "c32", plan.high_concurrency, ("direct", "floor", "gateway"))
        if args.messages or args.only_messages:
            messages.messages_phase(bench)
        if args.routing:
            routing.routing_phase(bench)
        if not args.only_messages:
            phases.streams_phase(bench)
            phases.cache_phase(bench)
            phases.leak_phase(bench)
            phases.big_streams_phase(bench)
            phases.workers_phase(bench)
            phases.admission_phase(bench)
        results["meta"]["seconds"] = round(time.monotonic() - started, 1)
        results["meta"]["loadavg_after"] = os.getloadavg()[0]
        print(report.table(results))
        print(report.budget_lines(results))
    except (Aborted, KeyboardInterrupt) as exc:
        print(f"bench aborted: {exc or type(exc).__name__}", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        procs.close()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        if args.keep:
            print(f"bench files kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
