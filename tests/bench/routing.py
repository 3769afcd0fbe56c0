"""The routing phase (``--routing``): a two-candidate ``cheapest`` rule against a one-model rule.

Both rules route to the same bench upstream (``bench-single``: the bench model alone;
``bench-cheapest``: the bench model and a dearer one, ``strategy: cheapest``), picked by
``X-Task-Type``, plain requests with unique messages (the cache-miss path), the rules
taking turns. Microseconds are lost in a latency's noise, so the figure that carries the
budget is the gateway process's CPU time per request (user + system, from
``/proc/<pid>/stat``) at high concurrency; c=1 p50s are reported beside it. The budget
(issue 15): the ``cheapest`` rule adds at most 20 µs a request.
"""

from __future__ import annotations

import json
import os
import statistics
import urllib.request
from typing import Any

from tests.bench.phases import Bench
from tests.bench.servers import API_KEY

RULES = {"single": "bench-single", "cheapest": "bench-cheapest"}
"""Each measured rule and the task type that picks it."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chosen_by(url: str, task: str) -> str | None:
    """The ``X-Gateway-Strategy`` of one request routed by ``task`` (None when no strategy chose)."""
    body = json.dumps({"max_tokens": 16, "messages": [{"role": "user", "content": "check"}]})  # no model
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}", "X-Task-Type": task})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.headers.get("X-Gateway-Strategy")


def routing_phase(bench: Bench) -> None:
    """Both rules at c=1 (p50) and at high concurrency (CPU per request); figures in ``results["routing"]``."""
    plan, gateway = bench.plan, bench.gateway
    strategies = {name: chosen_by(gateway.chat_url, task) for name, task in RULES.items()}
    if strategies != {"single": None, "cheapest": "cheapest"}:
        raise RuntimeError(f"routing phase: the rules did not route as configured: {strategies}")
    found: dict[str, Any] = {}
    high = plan.high_concurrency
    for label, concurrency in (("c1", 1), (f"c{high}", high)):
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in RULES}
        for rep in range(max(plan.repeats, 3)):
            for name, task in RULES.items():
                bench.say(f"routing {label}: {name} rule for {plan.measure_s:g}s (run {rep + 1})")
                before = cpu_seconds(gateway.child.pid)
                result = bench.driver.run(gateway.chat_url, concurrency, plan.measure_s, unique=True,
                                          warmup=plan.warmup_s if rep == 0 else 0, model="",
                                          headers={"X-Task-Type": task})
                used = cpu_seconds(gateway.child.pid) - before
                runs[name].append({"p50_ms": result.p50_ms or 0.0, "rps": result.rps,
                                   "cpu_us": 1e6 * used / result.requests if result.requests else 0.0,
                                   "errors": result.errors})
        found[label] = {name: {key: statistics.median(run[key] for run in r) for key in r[0]}
                        for name, r in runs.items()}
    bench.results["routing"] = found
    bench.errors("routing", {name: sum(found[label][name]["errors"] for label in found) for name in RULES})
