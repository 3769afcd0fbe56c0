"""deploy/grafana/: the two dashboards and their provisioning, checked as Grafana would read them.

Grafana itself cannot run here, so these tests read the JSON: the uids and
titles that make the spec's URLs, the variables (each defined one used, each
used one defined), the panels' layout and datasource, the PromQL of every
target (parsed), and that the panels the issue asks for are there. Whether the
queries return data is tested against a real Prometheus in
``test_against_prometheus.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.files import (
    GRAFANA_BUILTINS,
    PROVISIONING_DIR,
    dashboards,
    grafana_to_promql,
    metric_names,
    panel_queries,
    panels,
    parse_label_values,
    query_variables,
    referenced_variables,
    variable_query,
    yaml_doc,
)

SPEC_URLS = {"llm-gateway.json": "/d/llm-gateway/llm-gateway-dashboard",
             "llm-gateway-cost.json": "/d/llm-gateway-cost/llm-gateway-cost-dashboard"}
TITLES = {"llm-gateway.json": "LLM Gateway Dashboard", "llm-gateway-cost.json": "LLM Gateway Cost Dashboard"}
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "state-timeline", "gauge"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARDS = dashboards()


def slug(title: str) -> str:
    """Grafana's URL slug: lower case, runs of other characters turned into ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def exprs(doc: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(doc) for target in panel["targets"]]


def promql(text: str) -> str:
    values = {name: ".*" for name in referenced_variables(text) - GRAFANA_BUILTINS.keys()}
    return grafana_to_promql(text, values)


def reads(doc: dict[str, Any]) -> set[str]:
    """The metric names a dashboard's panels read."""
    return {name for expr in exprs(doc) for name in metric_names(promql(expr))}


def test_both_dashboards_are_there() -> None:
    assert set(DASHBOARDS) == set(SPEC_URLS)


@pytest.mark.parametrize("name", sorted(SPEC_URLS))
def test_the_dashboard_opens_at_the_spec_s_url(name: str) -> None:
    doc = DASHBOARDS[name]
    assert doc["title"] == TITLES[name]
    assert f"/d/{doc['uid']}/{slug(doc['title'])}" == SPEC_URLS[name]
    assert doc.get("id") is None, "a provisioned dashboard is matched by uid; a fixed id can clash"


@pytest.mark.parametrize("name", sorted(SPEC_URLS))
def test_every_variable_is_defined_and_used(name: str) -> None:
    doc = DASHBOARDS[name]
    defined = {v["name"] for v in doc["templating"]["list"]}
    texts = exprs(doc) + [variable_query(v) for v in query_variables(doc)]
    used = {n for text in texts for n in referenced_variables(text)} | {"datasource"}
    assert used - GRAFANA_BUILTINS.keys() <= defined, used - defined
    panel_used = {n for text in exprs(doc) for n in referenced_variables(text)}
    assert {v["name"] for v in query_variables(doc)} <= panel_used, "a variable no panel uses"
    (source,) = [v for v in doc["templating"]["list"] if v["type"] == "datasource"]
    assert source["name"] == "datasource" and source["query"] == "prometheus"


def test_the_dashboards_filter_by_provider_model_and_caller() -> None:
    main, cost = DASHBOARDS["llm-gateway.json"], DASHBOARDS["llm-gateway-cost.json"]
    assert {"provider", "model"} <= {v["name"] for v in query_variables(main)}
    assert {"provider", "model", "caller", "team"} <= {v["name"] for v in query_variables(cost)}
    for doc in (main, cost):
        for variable in query_variables(doc):
            assert variable["includeAll"] and variable["allValue"] == ".*" and variable["multi"]
            match, label = parse_label_values(variable_query(variable))
            assert match and label == variable["name"]


@pytest.mark.parametrize("name", sorted(SPEC_URLS))
def test_every_panel_reads_the_datasource_variable(name: str) -> None:
    for panel in panels(DASHBOARDS[name]):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["title"] and panel.get("description"), panel
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


QUERIES = panel_queries()


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_every_query_is_valid_promql(query: Any) -> None:
    assert metric_names(promql(query.expr)), f"{query.id} reads no metric"


@pytest.mark.parametrize("name", sorted(SPEC_URLS))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    ids = []
    for panel in DASHBOARDS[name]["panels"]:
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    assert len(set(ids)) == len(ids), "two panels share an id"


def test_the_gateway_dashboard_shows_what_the_issue_lists() -> None:
    doc = DASHBOARDS["llm-gateway.json"]
    assert {"llm_gateway_requests_total", "llm_gateway_request_duration_seconds_bucket",
            "llm_gateway_time_to_first_token_seconds_bucket", "llm_gateway_overhead_seconds_bucket",
            "llm_gateway_errors_total", "llm_gateway_tokens_total", "llm_gateway_cache_hits_total",
            "llm_gateway_cache_misses_total", "llm_gateway_retries_total", "llm_gateway_fallbacks_total",
            "llm_gateway_circuit_breaker_state", "llm_gateway_requests_in_flight",
            "llm_gateway_limit_rejections_total", "llm_gateway_config_reloads_total"} <= reads(doc)
    texts = exprs(doc)
    assert any("by (status_class)" in e and "llm_gateway_requests_total" in e for e in texts)
    assert any("by (code)" in e and "llm_gateway_errors_total" in e for e in texts)
    assert any('code="gateway_overloaded"' in e for e in texts), "admission refusals"
    latency = [e for e in texts if "llm_gateway_request_duration_seconds_bucket" in e and "by (provider, model, le)" in e]
    assert {q for e in latency for q in re.findall(r"histogram_quantile\((0\.\d+)", e)} >= {"0.5", "0.95", "0.99"}


def test_the_cost_dashboard_shows_what_the_issue_lists() -> None:
    doc = DASHBOARDS["llm-gateway-cost.json"]
    assert {"llm_gateway_cost_usd_total", "llm_gateway_budget_spent_usd", "llm_gateway_budget_limit_usd",
            "llm_gateway_cache_saved_usd_total", "llm_gateway_unpriced_requests_total"} <= reads(doc)
    groupings = {tuple(label.strip() for label in match.split(","))
                 for e in exprs(doc) if "llm_gateway_cost_usd_total" in e
                 for match in re.findall(r"sum by \(([^)]*)\)", e)}
    for wanted in (("provider",), ("provider", "model"), ("task_type",), ("caller",), ("team",)):
        assert wanted in groupings, f"no spend by {wanted}"
    for e in exprs(doc):
        if "llm_gateway_cost_usd_total" in e:  # every spend panel follows every filter
            assert {"provider", "model", "caller", "team"} <= referenced_variables(e), e
    savings = [e for e in exprs(doc) if "llm_gateway_saved_usd_total" in e]
    assert savings and all("by (reason)" in e for e in savings), "no savings by reason"


def test_the_links_between_the_dashboards_use_the_spec_s_urls() -> None:
    main, cost = DASHBOARDS["llm-gateway.json"], DASHBOARDS["llm-gateway-cost.json"]
    assert SPEC_URLS["llm-gateway-cost.json"] in {link["url"] for link in main["links"]}
    assert SPEC_URLS["llm-gateway.json"] in {link["url"] for link in cost["links"]}


def test_provisioning_loads_a_prometheus_datasource_and_a_dashboard_folder() -> None:
    (source,) = yaml_doc(PROVISIONING_DIR / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    (provider,) = yaml_doc(PROVISIONING_DIR / "dashboards" / "llm-gateway.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
