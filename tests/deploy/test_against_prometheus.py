"""Every dashboard query and alert expression, run on a real Prometheus that scraped a real gateway.

One gateway process (``python -m proxy``, the mock provider, a provider whose
upstream refuses connections, admission control, a cache, a SQLite ledger) and
one ``prometheus`` server (deploy/prometheus/prometheus.yml with a 1 s scrape
and evaluation interval, the real alerts.yml) run for the whole module. The
gateway gets two rounds of traffic (plain, streamed, embeddings, cache hits,
fallbacks, upstream errors, client errors, admission refusals, a refused config
reload), each round scraped before the next, so rates have two samples. Then:
each panel query (Grafana's variables set to ``.*``) and each alert's signal
(its expression without the threshold) returns series; each variable lists
values; every rule evaluates without error; the alerts the traffic caused are
active and the ones it did not stay quiet; and the dashboards and rules read
only metric names the gateway's own scrape exports.
"""

from __future__ import annotations

import concurrent.futures
import copy
import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.files import (
    ALERTS,
    GRAFANA_BUILTINS,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboards,
    grafana_to_promql,
    metric_names,
    panel_queries,
    parse_label_values,
    query_variables,
    referenced_variables,
    split_alert,
    variable_query,
)
from tests.deploy.prometheus_server import PrometheusServer
from tests.process import GatewayProcess, child_env, free_port, write_config

LIMITS_ENABLED = True
"""Give the ``limited`` key the limits of issue 13 (``auth.keys[].limits``: an rpm and a budget) and send it over its rpm.

When off, the gateway's config has no ``limits`` and the queries that read the
limits' metrics (:data:`LIMIT_METRICS`) are skipped, not run: the switch for a
gateway without issue 13's limits.
"""

LIMIT_METRICS = frozenset({"llm_gateway_limit_rejections_total", "llm_gateway_budget_spent_usd",
                           "llm_gateway_budget_limit_usd"})
ALL = ".*"
PROMETHEUS_SERIES = frozenset({"up"})
"""Series Prometheus makes itself for each target; the rules may read them."""

KEY, OTHER_KEY, LIMITED_KEY = "k-svc-0123456789", "k-other-0123456789", "k-limited-0123456789"
MAX_IN_FLIGHT = 3
BURST = 8  # concurrent requests to the slow model, more than MAX_IN_FLIGHT
RPM = 3
SCRAPE_WAIT = 20.0

# What the traffic makes happen (asserted on Prometheus' /api/v1/alerts), and what it must not.
CAUSED_ALERTS = {
    "LLMGatewayHighErrorRatio": {"provider": "broken", "model": "broken-solo"},
    "LLMGatewayCircuitBreakerOpen": {"provider": "broken", "model": "broken-gpt"},
    "LLMGatewayAdmissionRefusing": {"job": "llm-gateway"},
    "LLMGatewayConfigReloadFailed": {"job": "llm-gateway"},
}
QUIET_ALERTS = {"LLMGatewayDown", "LLMGatewayNoProviderCanServe", "LLMGatewayCacheBackendFailing",
                "LLMGatewayHighLatencyP95", "LLMGatewayHighTimeToFirstToken"}


# ----------------------------------------------------------------------------- the gateway


def gateway_config(metrics_port: int) -> dict[str, Any]:
    """A config with a model for each kind of traffic the dashboards show."""
    keys: list[dict[str, Any]] = [{"name": "svc", "key": KEY, "team": "data"},
                                  {"name": "other", "key": OTHER_KEY, "team": "sales"}]
    if LIMITS_ENABLED:
        keys.append({"name": "limited", "key": LIMITED_KEY, "team": "data",
                     "limits": {"rpm": RPM, "budget": {"usd": 5, "period": "day"}}})
    return {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 5, "shutdown_timeout": 2,
                "max_in_flight": MAX_IN_FLIGHT},
        "providers": {
            "mock": {"type": "mock", "mock": {"chunk_count": 4},
                     "models": {"mock-gpt": {"max_tokens": 1000, "pricing": {"input": 1000, "output": 2000}},
                                "mock-free": {}, "mock-embed": {}}},
            "slow": {"type": "mock", "mock": {"latency": 0.5}, "models": {"slow-gpt": {}}},
            # nothing listens on port 9 (discard): every attempt fails at once
            "broken": {"type": "openai_compatible", "api_key": "sk-unused", "base_url": "http://127.0.0.1:9/v1",
                       "models": {"broken-gpt": {}, "broken-solo": {}}},
        },
        "routing": {"default_provider": "mock", "default_model": "mock-gpt",
                    "routing_rules": [{"task_type": "summarization", "model": "mock-gpt"}]},
        "caching": {"enabled": True, "ttl": 600},
        "fallback": {"enabled": True, "max_retries": 1, "retry_delay": 0,
                     "fallback_map": {"broken/broken-gpt": ["mock/mock-gpt"]},
                     "circuit_breaker": {"failure_threshold": 2, "cooldown": 300}},
        "usage": {"database": "sqlite:///usage.db"},
        "monitoring": {"metrics_enabled": True, "prometheus_port": metrics_port},
        "auth": {"keys": keys},
    }


@dataclass
class Gateway:
    process: GatewayProcess
    config_path: Path
    config: dict[str, Any]
    metrics_port: int

    def request(self, path: str, body: Any, key: str | None = KEY) -> int:
        """POST ``body`` (a dict, or raw bytes) and read the whole answer; return its status."""
        conn = http.client.HTTPConnection("127.0.0.1", self.process.port, timeout=15)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            conn.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body), headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def chat(self, model: str, text: str, key: str | None = KEY, **extra: Any) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return self.request("/v1/chat/completions", body, key)

    def scrape(self) -> str:
        """The gateway's /metrics, read directly."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200
            return resp.read().decode()
        finally:
            conn.close()


def requests_answered(scrape: str) -> float:
    """``sum(llm_gateway_requests_total)`` in a scrape's text."""
    return sum(sample.value for family in text_string_to_metric_families(scrape)
               if family.name == "llm_gateway_requests"
               for sample in family.samples if sample.name == "llm_gateway_requests_total")


def send_round(gw: Gateway, n: int) -> dict[str, list[int]]:
    """One round of every kind of traffic; returns the statuses by kind."""
    statuses: dict[str, list[int]] = {}

    def record(kind: str, status: int) -> None:
        statuses.setdefault(kind, []).append(status)

    for i in range(3):
        record("plain", gw.chat("mock/mock-gpt", f"round {n} question {i}"))
    for _ in range(2):
        record("cached", gw.chat("mock/mock-gpt", "the same question every time"))
    record("task", gw.chat("mock-gpt", f"summarize round {n}", task_type="summarization"))
    record("other caller", gw.chat("mock/mock-gpt", f"round {n} from another team", key=OTHER_KEY))
    for i in range(2):
        record("stream", gw.chat("mock/mock-gpt", f"round {n} stream {i}", stream=True))
    record("embeddings", gw.request("/v1/embeddings", {"model": "mock/mock-embed", "input": f"round {n}"}))
    record("unpriced", gw.chat("mock/mock-free", f"round {n} free"))
    record("fallback", gw.chat("broken/broken-gpt", f"round {n} falls back"))
    for i in range(2):
        record("upstream error", gw.chat("broken/broken-solo", f"round {n} fails {i}"))
    record("invalid", gw.request("/v1/chat/completions", b'{"model": "mock/mock-gpt"}'))
    record("no key", gw.chat("mock/mock-gpt", "who am I", key=None))
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        for status in pool.map(lambda i: gw.chat("slow/slow-gpt", f"round {n} burst {i}"), range(BURST)):
            record("burst", status)
    if LIMITS_ENABLED:
        for i in range(RPM + 2):
            record("limited", gw.chat("mock/mock-gpt", f"round {n} limited {i}", key=LIMITED_KEY))
    return statuses


def refuse_a_reload(gw: Gateway) -> None:
    """Write an invalid config (the gateway refuses it), then put the valid one back."""
    gw.config_path.write_text('{"providers": {}, "routing": ')
    gw.process.wait_for("config_reload_failed", timeout=10)
    reloaded = len(gw.process.lines("config_reloaded"))
    write_config(gw.config_path, gw.config)
    gw.process.wait_for("config_reloaded", timeout=10, count=reloaded + 1)


# ----------------------------------------------------------------------------- Prometheus


def prometheus_config(path: Path, metrics_port: int) -> Path:
    """deploy/prometheus/prometheus.yml pointed at the test gateway, scraping and evaluating every second."""
    config = copy.deepcopy(yaml.safe_load(PROMETHEUS_CONFIG.read_text()))
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str((PROMETHEUS_CONFIG.parent / f).resolve()) for f in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Stack:
    gateway: Gateway
    prometheus: PrometheusServer
    statuses: list[dict[str, list[int]]]
    scrape: str


def wait_for_scrape_of(prom: PrometheusServer, gw: Gateway) -> None:
    """Block until Prometheus has scraped everything the gateway counted so far."""
    answered = requests_answered(gw.scrape())

    def caught_up() -> bool | None:
        result = prom.query("sum(llm_gateway_requests_total)")
        return True if result and float(result[0]["value"][1]) == answered else None

    prom.wait_until(caught_up, SCRAPE_WAIT, f"scrape showing {answered} requests")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    metrics_port = free_port()
    config = gateway_config(metrics_port)
    config_path = write_config(workdir / "gateway.json", config)
    process = GatewayProcess(["--config", str(config_path)], cwd=workdir, env=child_env())
    prom = PrometheusServer(prometheus_config(workdir / "prometheus.yml", metrics_port), workdir)
    try:
        process.wait_started()
        prom.wait_ready()
        gw = Gateway(process, config_path, config, metrics_port)
        statuses = [send_round(gw, 1)]
        refuse_a_reload(gw)
        wait_for_scrape_of(prom, gw)
        statuses.append(send_round(gw, 2))
        wait_for_scrape_of(prom, gw)
        yield Stack(gw, prom, statuses, gw.scrape())
    finally:
        prom.stop()
        process.kill()


def test_the_traffic_did_what_the_dashboards_show(stack: Stack) -> None:
    """The traffic itself: without these answers the queries below would prove nothing."""
    for statuses in stack.statuses:
        assert set(statuses["plain"]) == {200} and set(statuses["stream"]) == {200}
        assert set(statuses["fallback"]) == {200}
        assert all(s >= 500 for s in statuses["upstream error"])
        assert statuses["invalid"] == [400] and statuses["no key"] == [401]
        assert 503 in statuses["burst"] and 200 in statuses["burst"]
    if LIMITS_ENABLED:  # one sliding minute over both rounds: RPM pass, the rest get 429
        limited = [s for statuses in stack.statuses for s in statuses["limited"]]
        assert limited.count(200) == RPM and limited.count(429) == len(limited) - RPM, limited
    hits = [s for s in text_string_to_metric_families(stack.scrape) if s.name == "llm_gateway_cache_hits"]
    assert sum(sample.value for sample in hits[0].samples) >= 3


# ----------------------------------------------------------------------------- dashboards


def needs_limits(expr: str) -> bool:
    return bool(metric_names(expr) & LIMIT_METRICS)


def skip_unless_limits(expr: str) -> None:
    if needs_limits(expr) and not LIMITS_ENABLED:
        pytest.skip("reads the limits' metrics: set LIMITS_ENABLED once issue 13's limits are in the config")


def all_values(text: str) -> dict[str, str]:
    """Every dashboard variable ``text`` uses set to match anything (Grafana's "All")."""
    return {name: ALL for name in referenced_variables(text) - GRAFANA_BUILTINS.keys()}


QUERIES = panel_queries()


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_every_panel_query_returns_series(stack: Stack, query: Any) -> None:
    expr = grafana_to_promql(query.expr, all_values(query.expr))
    skip_unless_limits(expr)
    result = stack.prometheus.query(expr)
    assert result, f"{query.id}: no series for {expr}"


VARIABLES = [(doc["uid"], v) for doc in dashboards().values() for v in query_variables(doc)]


@pytest.mark.parametrize("uid, variable", VARIABLES, ids=[f"{uid}:{v['name']}" for uid, v in VARIABLES])
def test_every_variable_lists_the_gateways_values(stack: Stack, uid: str, variable: dict[str, Any]) -> None:
    query = variable_query(variable)
    match, label = parse_label_values(query)
    match = grafana_to_promql(match, all_values(match)) if match else None
    values = set(stack.prometheus.label_values(label, match))
    expected = {"provider": {"mock", "slow", "broken"}, "model": {"mock-gpt", "slow-gpt", "broken-solo"},
                "caller": {"svc", "other"}, "team": {"data", "sales"}}[variable["name"]]
    assert expected <= values, f"{uid} ${variable['name']}: {query} gave {sorted(values)}"


# ----------------------------------------------------------------------------- alerts


RULES = alert_rules()


@pytest.mark.parametrize("rule", RULES, ids=[r["alert"] for r in RULES])
def test_every_alert_signal_returns_series(stack: Stack, rule: dict[str, Any]) -> None:
    signal = split_alert(rule["expr"]).signal
    skip_unless_limits(signal)
    assert stack.prometheus.query(signal), f"{rule['alert']}: no series for {signal}"


def test_every_rule_evaluates_without_error(stack: Stack) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        rules = stack.prometheus.rules()
        return rules if rules and all(r["health"] != "unknown" for r in rules) else None

    rules = stack.prometheus.wait_until(evaluated, SCRAPE_WAIT, "evaluation of every rule")
    assert {r["name"] for r in rules} == {r["alert"] for r in RULES}, f"loaded from {ALERTS}"
    failing = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not failing


def active_alerts(stack: Stack) -> list[dict[str, Any]]:
    def caused() -> list[dict[str, Any]] | None:
        alerts = stack.prometheus.alerts()
        return alerts if all(any(_matches(a, name, labels) for a in alerts)
                             for name, labels in CAUSED_ALERTS.items()) else None

    try:
        return stack.prometheus.wait_until(caused, SCRAPE_WAIT, "the alerts the traffic caused")
    except AssertionError:
        return stack.prometheus.alerts()


def _matches(alert: dict[str, Any], name: str, labels: dict[str, str]) -> bool:
    return alert["labels"]["alertname"] == name and labels.items() <= alert["labels"].items()


def test_the_alerts_the_traffic_caused_are_active(stack: Stack) -> None:
    alerts = active_alerts(stack)
    active = {(a["labels"]["alertname"], a["labels"].get("provider"), a["labels"].get("model")) for a in alerts}
    for name, labels in CAUSED_ALERTS.items():
        assert any(_matches(a, name, labels) for a in alerts), f"{name} {labels} not active; active: {sorted(active)}"
    # a healthy model raises neither
    assert not any(a["labels"].get("provider") == "mock" for a in alerts), sorted(active)


def test_the_alerts_for_what_did_not_happen_stay_quiet(stack: Stack) -> None:
    active_alerts(stack)  # once the caused ones show, every rule has seen the same data
    names = {a["labels"]["alertname"] for a in stack.prometheus.alerts()}
    assert not names & QUIET_ALERTS, names & QUIET_ALERTS


# ----------------------------------------------------------------------------- metric names


def exported_names(scrape: str) -> set[str]:
    """Every series name the scrape has, and the names its empty families would have."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
                "summary": ("_sum", "_count", ""), "info": ("_info",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_dashboards_read_only_metrics_the_gateway_exports(stack: Stack) -> None:
    exported = exported_names(stack.scrape)
    for query in QUERIES:
        unknown = metric_names(grafana_to_promql(query.expr, all_values(query.expr))) - exported
        assert not unknown, f"{query.id} reads {sorted(unknown)}, which the gateway does not export"
    for uid, variable in VARIABLES:
        match, _ = parse_label_values(variable_query(variable))
        if match:
            assert not metric_names(grafana_to_promql(match, all_values(match))) - exported, (uid, variable["name"])


def test_alerts_read_only_metrics_the_gateway_exports(stack: Stack) -> None:
    exported = exported_names(stack.scrape) | PROMETHEUS_SERIES
    for rule in RULES:
        unknown = metric_names(rule["expr"]) - exported
        assert not unknown, f"{rule['alert']} reads {sorted(unknown)}, which the gateway does not export"
