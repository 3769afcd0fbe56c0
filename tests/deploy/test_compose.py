"""docker-compose.yml at the repository root: valid Compose, and agreeing with every file it mounts.

No container engine runs here, so the file is checked against the Compose
Specification's own JSON schema (``compose-spec.json`` beside this module:
``schema/compose-spec.json`` of github.com/compose-spec/compose-spec at commit
170098ba07d9, Apache-2.0), and each service is checked against the config it
mounts: the gateway's config (its ports, Redis, PostgreSQL, the spool), the
Prometheus config (its target, its rules), Grafana's provisioning (the
datasource, the dashboards folder) and each health check's port. The gateway's
health check runs for real against a local ``/health``.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from proxy.config import parse_config
from tests.deploy.files import (
    COMPOSE,
    DASHBOARDS_DIR,
    DEPLOY,
    ENV_VAR,
    EXAMPLE,
    PROMETHEUS_CONFIG,
    PROVISIONING_DIR,
    compose,
    container_path,
    environment,
    example,
    expand,
    host_path,
    mounts,
    published_ports,
    service,
    yaml_doc,
)
from tests.deploy.probes import health_server, run_probe  # noqa: F401 (a fixture)

SCHEMA = Path(__file__).with_name("compose-spec.json")
SERVICES = {"llm-gateway", "redis", "postgres", "prometheus", "grafana"}


def flags(svc: dict[str, Any]) -> dict[str, str]:
    """A service's ``--name=value`` command-line flags."""
    command = svc.get("command", [])
    words = shlex.split(command) if isinstance(command, str) else command
    return dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)


def health_command(svc: dict[str, Any]) -> list[str]:
    test = svc["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", "exec form: no shell needed in the image"
    return test[1:]


def gateway_environ() -> dict[str, str]:
    """The gateway container's environment: compose's values, a stand-in for each passed-through one."""
    env = environment(service("llm-gateway"))
    return {k: expand(v) if v is not None else f"fake-{k.lower()}" for k, v in env.items()}


@functools.cache
def gateway_config() -> Any:
    """The gateway's config as it loads inside the compose service."""
    env = gateway_environ()
    path = host_path(service("llm-gateway"), env["LLM_GATEWAY_CONFIG"])
    assert path is not None, "LLM_GATEWAY_CONFIG is not on a mount"
    return parse_config(path.read_text(), environ=env, source=str(path))


def prometheus_config() -> dict[str, Any]:
    return yaml_doc(PROMETHEUS_CONFIG)


def listen_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# ----------------------------------------------------------------------------- the file


def test_the_compose_file_is_at_the_root_and_deploy_has_no_other() -> None:
    assert COMPOSE.is_file()
    assert not (DEPLOY / "docker-compose.yml").exists(), "two compose files would drift apart"


def test_the_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_the_stack_has_the_issue_s_services_each_with_a_health_check() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        assert health_command(svc), name
        assert svc.get("restart") == "unless-stopped", name


def test_named_volumes_are_declared_and_every_bind_mount_exists() -> None:
    declared = set(compose().get("volumes") or {})
    for name, svc in compose()["services"].items():
        for mount in mounts(svc):
            if mount.is_bind:
                assert mount.host_path().exists(), f"{name}: {mount.source} does not exist"
                assert mount.read_only, f"{name}: {mount.source} should be mounted read-only"
            else:
                assert mount.source in declared, f"{name}: volume {mount.source} is not declared"


def test_the_spec_s_commands_name_a_service_whose_dependencies_exist() -> None:
    """`docker-compose up llm-gateway` starts the gateway with what it depends on."""
    gateway = service("llm-gateway")
    depends = gateway["depends_on"]
    assert {"redis", "postgres"} <= set(depends)
    assert all(depends[name]["condition"] == "service_healthy" for name in ("redis", "postgres"))


# ----------------------------------------------------------------------------- the gateway


def test_the_gateway_is_built_from_the_repository_s_dockerfile() -> None:
    build = service("llm-gateway")["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_the_gateway_reads_the_example_config_through_a_directory_mount() -> None:
    """A directory mount sees an editor's save-by-rename; a single-file mount pins the old inode."""
    gateway = service("llm-gateway")
    inside = gateway_environ()["LLM_GATEWAY_CONFIG"]
    assert host_path(gateway, inside) == EXAMPLE
    (mount,) = [m for m in mounts(gateway) if m.is_bind and inside.startswith(m.target.rstrip("/") + "/")]
    assert mount.host_path().is_dir() and mount.read_only


def test_the_gateway_passes_every_variable_the_config_reads() -> None:
    env = environment(service("llm-gateway"))
    needed = {name for name, _ in ENV_VAR.findall(EXAMPLE.read_text())}
    assert needed <= set(env), needed - set(env)
    assert env["GATEWAY_KEY_ADMIN"] is None, "caller keys come from the shell or .env, never the file"


def test_the_gateway_config_uses_the_stack_s_redis_and_postgres() -> None:
    config = gateway_config()
    redis = urlsplit(config.caching.redis_url)
    assert config.caching.enabled and redis.hostname == "redis" and (redis.port or 6379) == 6379
    assert config.limits_redis_url == config.caching.redis_url, "limits must be counted in the shared Redis"
    database = urlsplit(config.usage.database)
    assert database.scheme == "postgresql" and database.hostname == "postgres"
    postgres = {k: expand(v or "") for k, v in environment(service("postgres")).items()}
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert (database.port or 5432) == 5432


def test_the_usage_spool_is_on_a_writable_volume() -> None:
    gateway = service("llm-gateway")
    spool = gateway_config().usage.spool_path
    holders = [m for m in mounts(gateway) if spool == m.target or spool.startswith(m.target.rstrip("/") + "/")]
    assert holders and not holders[-1].is_bind and not holders[-1].read_only, (spool, holders)
    assert gateway.get("read_only") is True and "/tmp" in gateway.get("tmpfs", [])


def test_the_gateway_publishes_the_config_s_ports_with_metrics_kept_local() -> None:
    config = gateway_config()
    ports = published_ports(service("llm-gateway"))
    assert set(ports) == {config.api.port, config.monitoring.prometheus_port}
    assert ports[config.monitoring.prometheus_port].startswith("127.0.0.1:")
    assert config.monitoring.metrics_enabled


def test_the_gateway_health_check_probes_health_on_the_api_port(health_server: Any) -> None:
    handler, base = health_server
    url = f"http://127.0.0.1:{gateway_config().api.port}/health"
    argv = health_command(service("llm-gateway"))
    assert run_probe(argv, url, f"{base}/health") == 0
    handler.status = 503
    assert run_probe(argv, url, f"{base}/health") != 0
    assert run_probe(argv, url, "http://127.0.0.1:9/health") != 0


def test_the_gateway_gets_longer_than_its_drain_to_stop() -> None:
    grace = str(service("llm-gateway")["stop_grace_period"])
    assert int(grace.rstrip("s")) > example()["api"]["shutdown_timeout"], "compose would SIGKILL mid-drain"


# ----------------------------------------------------------------------------- state


def test_redis_is_7_and_its_health_check_asks_its_port() -> None:
    redis = service("redis")
    assert redis["image"].split(":")[1].split(".")[0] == "7"
    command = health_command(redis)
    assert command[0] == "redis-cli" and command[-1] == "ping"
    port = int(command[command.index("-p") + 1]) if "-p" in command else 6379
    assert port == (urlsplit(gateway_config().caching.redis_url).port or 6379)


def test_redis_keeps_the_limits_counters() -> None:
    """Budgets live in Redis: persisted, and never evicted to make room for cache entries."""
    command = service("redis")["command"]
    options = dict(zip(command[1::2], command[2::2]))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert any(m.target == "/data" and not m.is_bind for m in mounts(service("redis")))


def test_postgres_health_check_asks_for_the_gateway_s_database() -> None:
    postgres = service("postgres")
    command = health_command(postgres)
    assert command[0] == "pg_isready"
    options = dict(zip(command[1::2], command[2::2]))
    database = urlsplit(gateway_config().usage.database)
    assert options["-U"] == database.username and options["-d"] == database.path.lstrip("/")
    assert int(options["-p"]) == (database.port or 5432)
    assert any(m.target == "/var/lib/postgresql/data" and not m.is_bind for m in mounts(postgres))


# ----------------------------------------------------------------------------- Prometheus


def test_prometheus_reads_the_repository_s_config_and_rules() -> None:
    prom = service("prometheus")
    config_inside = flags(prom)["config.file"]
    assert host_path(prom, config_inside) == PROMETHEUS_CONFIG
    for rule_file in prometheus_config()["rule_files"]:
        inside = str(Path(config_inside).parent / rule_file)
        found = host_path(prom, inside)
        assert found is not None and found.is_file(), f"{rule_file}: not mounted next to the config"


def test_prometheus_scrapes_the_gateway_s_metrics_port() -> None:
    (job,) = prometheus_config()["scrape_configs"]
    assert job["job_name"] == "llm-gateway", "alerts.yml's LLMGatewayDown selects this job"
    (targets,) = [c["targets"] for c in job["static_configs"]]
    host, port = targets[0].rsplit(":", 1)
    assert host in compose()["services"]
    assert int(port) == gateway_config().monitoring.prometheus_port
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_health_check_and_port_follow_its_listen_address() -> None:
    prom = service("prometheus")
    port = listen_port(flags(prom)["web.listen-address"])
    assert port in published_ports(prom)
    command = health_command(prom)
    assert command[0] == "wget" and f"http://127.0.0.1:{port}/-/ready" in command


# ----------------------------------------------------------------------------- Grafana


def grafana_port() -> int:
    return int(environment(service("grafana"))["GF_SERVER_HTTP_PORT"])


def test_grafana_mounts_the_provisioning_and_the_dashboards_it_names() -> None:
    grafana = service("grafana")
    assert container_path(grafana, PROVISIONING_DIR) == "/etc/grafana/provisioning"
    (provider,) = yaml_doc(PROVISIONING_DIR / "dashboards" / "llm-gateway.yml")["providers"]
    assert host_path(grafana, provider["options"]["path"]) == DASHBOARDS_DIR
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home and (host_path(grafana, home) or Path("/nonexistent")).is_file()


def test_grafana_s_datasource_is_the_stack_s_prometheus() -> None:
    (source,) = yaml_doc(PROVISIONING_DIR / "datasources" / "prometheus.yml")["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == listen_port(flags(service("prometheus"))["web.listen-address"])
    assert source["jsonData"]["timeInterval"] == prometheus_config()["global"]["scrape_interval"]


def test_grafana_serves_the_spec_s_dashboard_urls_on_port_3000() -> None:
    """The spec's links are http://localhost:3000/d/..."""
    grafana = service("grafana")
    assert grafana_port() == 3000 and 3000 in published_ports(grafana)
    assert f"http://127.0.0.1:{grafana_port()}/api/health" in health_command(grafana)


def test_the_compose_file_parses_as_plain_yaml_too() -> None:
    assert yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned_to_a_version(name: str) -> None:
    image = service(name)["image"]
    assert ":" in image and not image.endswith(":latest"), image
