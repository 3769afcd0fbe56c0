"""deploy/prometheus/: the alert rules, their unit tests and the scrape config, checked by promtool.

promtool (Debian's ``prometheus`` package) validates the rules and the config
and runs alerts.test.yml; these tests also check that every alert fires in at
least one unit-test case and stays quiet in another, and that the cases pin each
threshold: with any one alert's threshold moved out of reach, promtool's run fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import (
    ALERT_TESTS,
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_rules,
    split_alert,
    yaml_doc,
)
from tests.deploy.prometheus_server import tool

RULES = alert_rules()
NAMES = [rule["alert"] for rule in RULES]
UNREACHABLE = {">": 1e12, ">=": 1e12, "<": -1e12, "<=": -1e12, "==": 12345.0, "!=": None}
"""A threshold no test series reaches, by comparison (``!=`` has none: such an alert is refused)."""


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, stdin=subprocess.DEVNULL)


def name_of(rule: dict[str, Any]) -> str:
    return rule["alert"]


def unit_cases() -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of alerts.test.yml."""
    return [case for test in yaml_doc(ALERT_TESTS)["tests"] for case in test.get("alert_rule_test", [])]


def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in done.stdout


def test_promtool_accepts_the_scrape_config_and_the_rules_it_names() -> None:
    done = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_the_alert_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_issue_s_alerts_are_all_there() -> None:
    assert len(set(NAMES)) == len(NAMES), "an alert name is used twice"
    wanted = {"LLMGatewayHighErrorRatio", "LLMGatewayHighLatencyP95", "LLMGatewayHighTimeToFirstToken",
              "LLMGatewayCircuitBreakerOpen", "LLMGatewayNoProviderCanServe", "LLMGatewayAdmissionRefusing",
              "LLMGatewayCacheBackendFailing", "LLMGatewayUsageLedgerFailing", "LLMGatewayBudgetNearlySpent",
              "LLMGatewayBudgetExhausted", "LLMGatewayConfigReloadFailed"}
    assert wanted <= set(NAMES), wanted - set(NAMES)


@pytest.mark.parametrize("rule", RULES, ids=NAMES)
def test_an_alert_is_a_signal_against_one_threshold_with_a_severity_and_text(rule: dict[str, Any]) -> None:
    split = split_alert(rule["expr"])
    assert split.op != "!="
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    # the summary names what the alert is about: the model, the target or the budget it groups by
    grouped_by = {"by (provider, model": ("provider", "model"), "by (job, instance)": ("instance",),
                  "by (scope, name)": ("scope", "name"), 'up{job=': ("instance",)}
    named = [label for marker, labels in grouped_by.items() if marker in split.signal for label in labels]
    assert named, f"{name_of(rule)}: groups by nothing the test knows"
    for label in named:
        assert f"$labels.{label}" in rule["annotations"]["summary"], (name_of(rule), label)


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_fires_in_a_unit_test_and_stays_quiet_in_another(name: str) -> None:
    cases = [case for case in unit_cases() if case["alertname"] == name]
    assert any(case["exp_alerts"] for case in cases), f"{name} never fires in {ALERT_TESTS.name}"
    assert any(not case["exp_alerts"] for case in cases), f"{name} is never shown quiet in {ALERT_TESTS.name}"


@pytest.mark.parametrize("name", NAMES)
def test_the_unit_tests_pin_each_threshold(name: str, tmp_path: Path) -> None:
    """Move one alert's threshold out of reach: the case in which it fires must then fail."""
    rules = yaml_doc(ALERTS)
    (rule,) = [r for group in rules["groups"] for r in group["rules"] if r.get("alert") == name]
    split = split_alert(rule["expr"])
    rule["expr"] = f"{split.signal} {split.op} {UNREACHABLE[split.op]:g}"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = yaml_doc(ALERT_TESTS)
    tests["tests"] = [{**test, "alert_rule_test": [c for c in test["alert_rule_test"] if c["alertname"] == name]}
                      for test in tests["tests"] if any(c["alertname"] == name for c in test["alert_rule_test"])]
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert done.returncode != 0, f"{name} with threshold {UNREACHABLE[split.op]:g} still passes every case"
    assert name in done.stdout + done.stderr
