"""The Messages API phase (``--messages``): ``POST /v1/messages`` against ``/v1/chat/completions``.

Plain requests (unique messages: the cache-miss path), at c=1 and at the
plan's high concurrency, the targets taking turns as in the plain phases:

* ``direct chat`` / ``direct messages``: the bench client straight to the
  upstream's ``/v1/chat/completions`` and ``/v1/messages``;
* ``gateway chat``: ``/v1/chat/completions`` to the OpenAI-format provider;
* ``gateway native``: ``/v1/messages`` for the ``anthropic`` provider's model,
  relayed natively to the upstream's ``/v1/messages``;
* ``gateway translated``: ``/v1/messages`` for the OpenAI-format model,
  translated to a chat completion and back.

What each path adds is its gateway p50 less its direct p50 (the translated
path's upstream call is a chat completion, so it is measured against
``direct chat``); throughput is each path's requests/s over the gateway's
chat requests/s in the same run. The budget (issue 16): the native path adds
no more than chat does (within 0.1 ms) and keeps at least 90 % of its
requests/s; the translated path is reported.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.bench.phases import Bench
from tests.bench.servers import API_KEY, MESSAGES_MODEL, MODEL
from tests.bench.stats import LoadResult, median_of

PATHS = ("direct chat", "direct messages", "gateway chat", "gateway native", "gateway translated")
ADDED = {"gateway chat": "direct chat", "gateway native": "direct messages", "gateway translated": "direct chat"}
"""Each gateway path and the direct path its added latency is measured against."""


def targets(bench: Bench) -> dict[str, tuple[str, str]]:
    """``name: (url, model)`` of every path the phase measures."""
    up, gw = bench.upstream, bench.gateway
    return {"direct chat": (up.chat_url, MODEL), "direct messages": (up.messages_url, MESSAGES_MODEL),
            "gateway chat": (gw.chat_url, MODEL), "gateway native": (gw.messages_url, MESSAGES_MODEL),
            "gateway translated": (gw.messages_url, MODEL)}


def check_paths(bench: Bench) -> list[str]:
    """Problems with the paths (empty when each answers 200 with a Messages or chat answer)."""
    problems = []
    for name, (url, model) in targets(bench).items():
        body = json.dumps({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "check"}]})
        request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                doc = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        wanted = "message" if url.endswith("/v1/messages") else "chat.completion"
        if doc.get("type", doc.get("object")) != wanted:
            problems.append(f"{name}: answered {str(doc)[:120]}")
    return problems


def messages_phase(bench: Bench) -> None:
    """Plain load on every path at c=1 and at high concurrency; figures in ``results["messages"]``."""
    problems = check_paths(bench)
    if problems:
        raise RuntimeError("Messages phase paths not answering: " + "; ".join(problems))
    plan, paths, found = bench.plan, targets(bench), {}
    for label, concurrency in (("c1", 1), (f"c{plan.high_concurrency}", plan.high_concurrency)):
        runs: dict[str, list[LoadResult]] = {name: [] for name in paths}
        for rep in range(plan.repeats):
            for name, (url, model) in paths.items():
                bench.say(f"messages {label}: {name} for {plan.measure_s:g}s (run {rep + 1}/{plan.repeats})")
                runs[name].append(bench.driver.run(url, concurrency, plan.measure_s, unique=True,
                                                   warmup=plan.warmup_s if rep == 0 else 0, model=model))
        found[label] = {name: median_of(r).as_dict() for name, r in runs.items()}
    bench.results["messages"] = found
    bench.errors("messages", {name: sum(found[label][name]["errors"] for label in found) for name in paths})
    bench.snapshot_rss("messages")
