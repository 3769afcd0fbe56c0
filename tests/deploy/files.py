"""What the deployment files hold, read for tests: paths, the compose file, dashboards, alert rules.

Also the PromQL helpers the tests share: the metric names an expression reads
(:func:`metric_names`, from promql-parser's syntax tree), an alert split into
its signal and threshold (:func:`split_alert`), and a dashboard query with
Grafana's variables filled in (:func:`grafana_to_promql`).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
EXAMPLE = DEPLOY / "config.example.json"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"

ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
"""``${VAR}`` or ``${VAR:-default}``, as the gateway's config and Compose write them."""

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
"""Grafana's own variables, replaced by fixed windows when a query is run outside Grafana."""


# ----------------------------------------------------------------------------- files


def yaml_docs(path: Path) -> list[Any]:
    """Every non-empty YAML document in ``path``."""
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def yaml_doc(path: Path) -> Any:
    """The one YAML document in ``path``."""
    (doc,) = yaml_docs(path)
    return doc


def example() -> dict[str, Any]:
    """deploy/config.example.json, parsed."""
    return json.loads(EXAMPLE.read_text())


def expand(value: str, environ: dict[str, str] | None = None) -> str:
    """``value`` with each ``${VAR}`` / ``${VAR:-default}`` replaced (from ``environ``, else the default)."""
    environ = environ or {}
    return ENV_VAR.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ":-")[2:], value)


def compose() -> dict[str, Any]:
    """The root docker-compose.yml."""
    return yaml_doc(COMPOSE)


def service(name: str) -> dict[str, Any]:
    """One service of the compose file."""
    return compose()["services"][name]


def environment(svc: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a dict (``None`` for a name passed through from the shell)."""
    env = svc.get("environment", {})
    if isinstance(env, dict):
        return {k: None if v is None else str(v) for k, v in env.items()}
    pairs = (item.split("=", 1) for item in env)
    return {p[0]: (p[1] if len(p) == 2 else None) for p in pairs}


@dataclass(frozen=True)
class Mount:
    """A bind mount or named volume of a compose service (short syntax)."""

    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))

    def host_path(self) -> Path:
        """The bind mount's path on the host (relative ones are relative to the compose file)."""
        return (COMPOSE.parent / self.source).resolve()


def mounts(svc: dict[str, Any]) -> list[Mount]:
    """A service's volumes."""
    found = []
    for item in svc.get("volumes", []):
        source, target, *mode = item.split(":")
        found.append(Mount(source, target, "ro" in (mode[0].split(",") if mode else [])))
    return found


def container_path(svc: dict[str, Any], host: Path) -> str:
    """Where the host file or folder ``host`` appears inside the service's container."""
    host = host.resolve()
    for mount in mounts(svc):
        if not mount.is_bind:
            continue
        root = mount.host_path()
        if host == root:
            return mount.target
        if root in host.parents:
            return posixpath.join(mount.target, host.relative_to(root).as_posix())
    raise AssertionError(f"{host} is not mounted in the service")


def host_path(svc: dict[str, Any], inside: str) -> Path | None:
    """The host path behind ``inside`` (a path in the container), if a bind mount provides it."""
    for mount in mounts(svc):
        target = mount.target.rstrip("/")
        if mount.is_bind and (inside == target or inside.startswith(target + "/")):
            return mount.host_path() / inside[len(target):].lstrip("/")
    return None


def published_ports(svc: dict[str, Any]) -> dict[int, str]:
    """Container port -> host binding (``"127.0.0.1:8002"`` or ``"8001"``) of a service."""
    ports = {}
    for item in svc.get("ports", []):
        text = str(item)
        binding, _, container = text.rpartition(":")
        ports[int(container)] = binding
    return ports


# ----------------------------------------------------------------------------- rules


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    return [rule for group in yaml_doc(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


@dataclass(frozen=True)
class SplitAlert:
    """An alert expression ``SIGNAL OP THRESHOLD``."""

    signal: str
    op: str
    threshold: float


def split_alert(expr: str) -> SplitAlert:
    """Split an alert's expression at its last top-level comparison with a number.

    Raises ``AssertionError`` when the expression does not have that form.
    """
    tree = promql_parser.parse(expr)
    assert isinstance(tree, promql_parser.BinaryExpr), f"not SIGNAL OP THRESHOLD: {expr}"
    op = str(tree.op)
    assert op in COMPARISONS, f"top-level operator {op} is not a comparison: {expr}"
    assert isinstance(tree.rhs, promql_parser.NumberLiteral), f"threshold is not a number: {expr}"
    match = re.fullmatch(r"(?s)(.*\S)\s*(==|!=|>=|<=|>|<)\s*(\S+)\s*", expr)
    assert match, expr
    signal, text_op, number = match.groups()
    assert text_op == op and float(number) == float(str(tree.rhs)), expr
    assert str(promql_parser.parse(signal)) == str(tree.lhs), f"the signal is not the left side: {expr}"
    return SplitAlert(signal, op, float(number))


def metric_names(expr: str) -> set[str]:
    """The metric names every selector of ``expr`` reads."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# ----------------------------------------------------------------------------- dashboards


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON under deploy/grafana/dashboards/, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard that is not a row (including panels inside collapsed rows)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref_id}"


def panel_queries() -> list[PanelQuery]:
    """Every panel target of every dashboard."""
    return [PanelQuery(doc["uid"], panel["title"], target["refId"], target["expr"])
            for doc in dashboards().values() for panel in panels(doc) for target in panel["targets"]]


def query_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's query variables (provider, model, ...), not the datasource one."""
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def variable_query(variable: dict[str, Any]) -> str:
    """The ``label_values(...)`` text of a query variable, whichever form Grafana stored."""
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query


VARIABLE_REFERENCE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def referenced_variables(text: str) -> set[str]:
    """The ``$name`` / ``${name}`` variables ``text`` uses."""
    return {a or b for a, b in VARIABLE_REFERENCE.findall(text)}


def grafana_to_promql(text: str, values: dict[str, str]) -> str:
    """``text`` with Grafana's variables replaced: built-ins by fixed windows, the rest from ``values``."""
    table = {**GRAFANA_BUILTINS, **values}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in table, f"no value for ${name} in {text}"
        return table[name]

    return VARIABLE_REFERENCE.sub(replace, text)


LABEL_VALUES = re.compile(r"\s*label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)\s*")


def parse_label_values(query: str) -> tuple[str | None, str]:
    """``label_values(selector, label)`` -> (selector or None, label)."""
    match = LABEL_VALUES.fullmatch(query)
    assert match, f"not a label_values() query: {query}"
    return match.group("match"), match.group("label")
