"""The printed output: one table of figures, then the budget lines with PASS/FAIL."""

from __future__ import annotations

from typing import Any

from tests.bench.messages import ADDED, PATHS

Row = tuple[str, Any, Any, Any, str]
HEADER: Row = ("metric", "direct", "floor", "gateway", "ratio / note")
WIDTHS = (44, 12, 12, 12)


def fmt(value: Any) -> str:
    """Numbers: ms-scale values with 3 decimals below 10, 1 below 1000, none above."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if abs(value) < 10:
        return f"{value:.3f}"
    if abs(value) < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _diff(a: Any, b: Any) -> float | None:
    return a - b if a is not None and b is not None else None


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if a is not None and b else None


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


TARGETS = ("direct", "floor", "gateway")


def _each(section: dict[str, Any], key: str) -> list[Any]:
    """``key`` of each target in ``section``."""
    return [_get(section, t, key) for t in TARGETS]


def rows(r: dict[str, Any]) -> list[Row]:
    """The table's rows, section by section."""
    c1, c32, st = r.get("c1", {}), r.get("c32", {}), r.get("streams", {})
    plan = _get(r, "meta", "plan") or {}
    out: list[Row] = [("-- plain, c=1 (unique messages: cache-miss path)", "", "", "", "")]
    for pct in ("p50", "p99"):
        out.append((f"latency {pct} (ms)", *_each(c1, f"{pct}_ms"), ""))
    for pct in ("p50", "p99"):
        d, f, g = _each(c1, f"{pct}_ms")
        out.append((f"added {pct} vs direct (ms)", None, _diff(f, d), _diff(g, d),
                    f"gateway-floor {fmt(_diff(g, f))} ms"))
    c = plan.get("high_concurrency", 32)
    out.append((f"-- plain, c={c} (unique messages)", "", "", "", ""))
    rps = _each(c32, "rps")
    out.append(("requests/s", *rps, f"gateway/floor {fmt(_ratio(rps[2], rps[1]))}"))
    out.append(("latency p99 (ms)", *_each(c32, "p99_ms"), ""))
    out.append((f"-- {plan.get('streams')} streams x {plan.get('stream_chunks')} chunks "
                f"{plan.get('stream_delay_ms')} ms apart", "", "", "", ""))
    ttft = _each(st, "ttft_p50_ms")
    out.append(("TTFT p50 (ms)", *ttft, f"gateway/floor {fmt(_ratio(ttft[2], ttft[1]))}"))
    out.append(("TTFT p99 (ms)", *_each(st, "ttft_p99_ms"), ""))
    out.append(("stream total p50 (ms)", *_each(st, "total_p50_ms"), ""))
    out.append(("all streams done, per round (s)", *_each(st, "wall_s_mean"), ""))
    out += _cache_rows(r, c) + _rss_error_rows(r) + _leak_rows(r) + _held_rows(r) + _workers_rows(r, c)
    out += _admission_rows(r) + _messages_rows(r, c) + _routing_rows(r, c)
    return out


def routing_figures(r: dict[str, Any]) -> dict[str, Any]:
    """The routing phase's comparison: what the cheapest rule adds over the one-model rule."""
    g = r.get("routing") or {}
    high = next((label for label in g if label != "c1"), "")
    return {"cpu_us": _diff(_get(g, high, "cheapest", "cpu_us"), _get(g, high, "single", "cpu_us")),
            "p50_ms": _diff(_get(g, "c1", "cheapest", "p50_ms"), _get(g, "c1", "single", "p50_ms"))}


def _routing_rows(r: dict[str, Any], c: int) -> list[Row]:
    g = r.get("routing")
    if not g:
        return []
    high = f"c{c}"
    figures = routing_figures(r)
    out: list[Row] = [("-- routing rules (plain, unique)", "c=1 p50", f"c={c} rps", "CPU us/req", "")]
    for name in ("single", "cheapest"):
        out.append((f"{name} rule", _get(g, "c1", name, "p50_ms"), _get(g, high, name, "rps"),
                    _get(g, high, name, "cpu_us"), ""))
    out.append(("cheapest over single", figures["p50_ms"], None, figures["cpu_us"], "us of CPU per request"))
    return out


def messages_figures(r: dict[str, Any]) -> dict[str, Any]:
    """The Messages phase's comparisons: per gateway path, added p50 at c=1 and requests/s over chat's."""
    m = r.get("messages") or {}
    high = next((label for label in m if label != "c1"), None)
    figures: dict[str, Any] = {}
    for path, direct in ADDED.items():
        added = _diff(_get(m, "c1", path, "p50_ms"), _get(m, "c1", direct, "p50_ms"))
        share = _ratio(_get(m, high or "", path, "rps"), _get(m, high or "", "gateway chat", "rps"))
        figures[path] = {"added_p50_ms": added, "rps_vs_chat": share}
    return figures


def _messages_rows(r: dict[str, Any], c: int) -> list[Row]:
    m = r.get("messages")
    if not m:
        return []
    figures = messages_figures(r)
    out: list[Row] = [("-- /v1/messages vs chat (plain, unique)", "c=1 p50", "added", f"c={c} rps", "")]
    high = f"c{c}"
    for path in PATHS:
        fig = figures.get(path, {})
        note = f"rps/chat {fmt(fig['rps_vs_chat'])}" if fig.get("rps_vs_chat") is not None else ""
        out.append((path, _get(m, "c1", path, "p50_ms"), fig.get("added_p50_ms"), _get(m, high, path, "rps"), note))
    return out


def _cache_rows(r: dict[str, Any], c: int) -> list[Row]:
    cache = r.get("cache", {})
    return [(f"-- response cache, gateway, c={c}", "", "", "", ""),
            ("requests/s, hit path (identical bodies)", None, None, _get(cache, "hit", "rps"),
             f"hit/miss {fmt(cache.get('ratio'))}"),
            ("requests/s, miss path (unique bodies)", None, None, _get(cache, "miss", "rps"), ""),
            ("latency p99 hit / miss (ms)", None, None,
             f"{fmt(_get(cache, 'hit', 'p99_ms'))}/{fmt(_get(cache, 'miss', 'p99_ms'))}", "")]


def _rss_error_rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = [("-- resident memory (VmRSS, MB) after each phase", "", "", "", "")]
    for phase, rss in (r.get("rss_mb") or {}).items():
        out.append((f"RSS after {phase}", None, rss.get("floor"), rss.get("gateway"), ""))
    out.append(("-- errors (non-2xx + socket errors / failed streams)", "", "", "", ""))
    for phase, counts in (r.get("errors") or {}).items():
        if set(counts) <= {"direct", "floor", "gateway"}:
            out.append((f"errors {phase}", counts.get("direct"), counts.get("floor"), counts.get("gateway"), ""))
        else:
            out.append((f"errors {phase}", None, None, sum(counts.values()),
                        ", ".join(f"{k} {v}" for k, v in counts.items())))
    return out


def _leak_rows(r: dict[str, Any]) -> list[Row]:
    leak = r.get("leak")
    if not leak:
        return []
    return [("-- leak check (gateway, unique bodies)", "", "", "", ""),
            (f"RSS after {leak['requests_first']} requests (MB)", None, None, leak["rss_first_mb"], ""),
            (f"RSS after {leak['requests_total']} requests (MB)", None, None, leak["rss_total_mb"],
             f"growth {leak['growth_pct']:+.1f}%")]


def _held_rows(r: dict[str, Any]) -> list[Row]:
    held = r.get("held_streams")
    if not held:
        return []
    plan = _get(r, "meta", "plan") or {}
    g, f = held.get("gateway", {}), held.get("floor", {})
    return [(f"-- {plan.get('big_streams')} streams held open ({plan.get('big_chunks')} chunks "
             f"{plan.get('big_delay_ms')} ms apart)", "", "", "", ""),
            ("completed with [DONE] / errors", None, f"{f.get('completed')}/{f.get('errors')}",
             f"{g.get('completed')}/{g.get('errors')}", _kinds(g)),
            ("peak RSS (MB)", None, f.get("peak_rss_mb"), g.get("peak_rss_mb"), ""),
            ("TTFT p50 / p99 (ms)", None, f"{fmt(f.get('ttft_p50_ms'))}/{fmt(f.get('ttft_p99_ms'))}",
             f"{fmt(g.get('ttft_p50_ms'))}/{fmt(g.get('ttft_p99_ms'))}", ""),
            ("all streams done (s)", None, f.get("wall_s_mean"), g.get("wall_s_mean"), "")]


def _kinds(result: dict[str, Any]) -> str:
    kinds = result.get("error_kinds") or {}
    return ", ".join(f"{k} {v}" for k, v in kinds.items())


def _workers_rows(r: dict[str, Any], c: int) -> list[Row]:
    w = r.get("workers2")
    if not w:
        return []
    return [(f"-- api.workers, gateway, c={c}", "", "", "", ""),
            ("requests/s, workers: 1 (same run)", None, None, w["rps_1_worker"], ""),
            ("requests/s, workers: 2", None, None, w["rps"], f"2/1 {fmt(w['ratio'])}"),
            ("latency p99, workers: 2 (ms)", None, None, w["p99_ms"],
             f"RSS all processes {w['rss_mb_all_processes']} MB")]


def _admission_rows(r: dict[str, Any]) -> list[Row]:
    adm = r.get("admission")
    if not adm:
        return []
    plan = _get(r, "meta", "plan") or {}
    lim, free = adm.get("limited", {}), adm.get("unlimited", {})
    return [(f"-- admission: bursts of {plan.get('admission_concurrency')}, upstream sleeps "
             f"{plan.get('admission_sleep_ms')} ms", "no limit", "", f"limit {lim.get('max_in_flight')}", ""),
            ("admitted (200) / requests", f"{free.get('admitted')}/{free.get('requests')}", None,
             f"{lim.get('admitted')}/{lim.get('requests')}", ""),
            ("503 / with Retry-After", f"{free.get('refused_503')}/{free.get('refused_with_retry_after')}", None,
             f"{lim.get('refused_503')}/{lim.get('refused_with_retry_after')}", ""),
            ("503 latency p50, client / gateway log (ms)", None, None,
             f"{fmt(lim.get('refused_p50_ms'))}/{fmt(lim.get('gateway_refused_p50_ms'))}", ""),
            ("admitted latency p50 (ms)", free.get("admitted_p50_ms"), None, lim.get("admitted_p50_ms"), ""),
            ("admitted latency p99 (ms)", free.get("admitted_p99_ms"), None, lim.get("admitted_p99_ms"), ""),
            ("admitted p99 in the gateway's log (ms)", free.get("gateway_admitted_p99_ms"), None,
             lim.get("gateway_admitted_p99_ms"), ""),
            ("other statuses / socket errors", free.get("other"), None, lim.get("other"), "")]


def table(results: dict[str, Any]) -> str:
    """The whole table as text."""
    lines = []
    meta = results.get("meta", {})
    kind = "quick" if meta.get("quick") else "full"
    lines.append(f"llm-gateway bench ({kind} run, load: {meta.get('load_tool')}, "
                 f"{meta.get('cpus')} CPUs, {meta.get('seconds')} s, 1-min load average "
                 f"{fmt(meta.get('loadavg_before'))} before / {fmt(meta.get('loadavg_after'))} after)")
    for row in [HEADER, *rows(results)]:
        label, *cells, note = row
        if label.startswith("-- "):
            text = label.ljust(WIDTHS[0]) + "".join(fmt(c).rjust(w) if c else " " * w
                                                    for c, w in zip(cells, WIDTHS[1:]))
            lines.append(text.rstrip())
            continue
        text = label.ljust(WIDTHS[0]) + "".join(fmt(c).rjust(w) for c, w in zip(cells, WIDTHS[1:]))
        lines.append((text + ("  " + note if note else "")).rstrip())
    return "\n".join(lines)


def budgets(r: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(budget, passed (None when not measured), measured value)."""
    c1 = r.get("c1", {})
    added50 = _diff(_get(c1, "gateway", "p50_ms"), _get(c1, "direct", "p50_ms"))
    added99 = _diff(_get(c1, "gateway", "p99_ms"), _get(c1, "direct", "p99_ms"))
    share = _ratio(_get(r, "c32", "gateway", "rps"), _get(r, "c32", "floor", "rps"))
    ttft = _ratio(_get(r, "streams", "gateway", "ttft_p50_ms"), _get(r, "streams", "floor", "ttft_p50_ms"))
    stream_errors = _get(r, "streams", "gateway", "errors")
    hit = _get(r, "cache", "ratio")
    rss = _get(r, "rss_mb", "streams", "gateway")
    growth = _get(r, "leak", "growth_pct")
    held = _get(r, "held_streams", "gateway") or {}
    leak = r.get("leak") or {}

    def check(value: Any, ok: bool) -> bool | None:
        return None if value is None else ok

    messages = messages_figures(r) if r.get("messages") else {}
    native, chat = messages.get("gateway native", {}), messages.get("gateway chat", {})
    native_added, chat_added = native.get("added_p50_ms"), chat.get("added_p50_ms")
    native_share = native.get("rps_vs_chat")
    extra = [] if not messages else [
        ("messages native added p50 <= chat's + 0.1 ms",
         check(native_added, native_added is not None and chat_added is not None
               and native_added <= chat_added + 0.1), f"{fmt(native_added)} vs {fmt(chat_added)} ms"),
        ("messages native requests/s >= 90% of chat's",
         check(native_share, native_share is not None and native_share >= 0.9),
         f"{native_share * 100:.0f}%" if native_share is not None else "-"),
    ]
    routed = routing_figures(r)["cpu_us"] if r.get("routing") else None
    if r.get("routing"):
        extra.append(("cheapest rule adds <= 20 us of CPU a request", check(routed, routed is not None
                      and routed <= 20), f"{fmt(routed)} us"))
    return [
        ("added latency p50 at c=1 <= 0.5 ms", check(added50, added50 is not None and added50 <= 0.5),
         f"{fmt(added50)} ms"),
        ("added latency p99 at c=1 <= 2 ms", check(added99, added99 is not None and added99 <= 2.0),
         f"{fmt(added99)} ms"),
        ("gateway requests/s >= 60% of floor's at c=32", check(share, share is not None and share >= 0.6),
         f"{share * 100:.0f}%" if share is not None else "-"),
        ("TTFT p50, 200 streams <= 1.3x floor's, no errors",
         check(ttft, ttft is not None and ttft <= 1.3 and stream_errors == 0),
         f"{fmt(ttft)}x, {stream_errors} errors"),
        ("cache-hit requests/s >= 1.5x miss", check(hit, hit is not None and hit >= 1.5), f"{fmt(hit)}x"),
        ("gateway RSS <= 80 MB after the stream phase", check(rss, rss is not None and rss <= 80),
         f"{fmt(rss)} MB"),
        (f"RSS growth < 10% from {leak.get('requests_first', '-')} to {leak.get('requests_total', '-')} requests",
         check(growth, growth is not None and growth < 10), f"{growth:+.1f}%" if growth is not None else "-"),
        (f"{held.get('streams', '-')} held streams without error",
         check(held or None,
               bool(held) and held.get("errors") == 0 and held.get("completed") == held.get("streams")),
         f"{held.get('completed', '-')} completed, {held.get('errors', '-')} errors"),
    ] + extra


def budget_lines(results: dict[str, Any]) -> str:
    """The budget lines, one per budget."""
    quick = " (quick run: smaller leak and stream phases)" if _get(results, "meta", "quick") else ""
    lines = ["budgets" + quick]
    for label, passed, value in budgets(results):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"  {verdict}  {label.ljust(52)} {value}")
    return "\n".join(lines)
