"""The image and Kubernetes files in deploy/: they parse, agree with each other and with the example config.

No container engine runs in tests, so the Dockerfile and the Kubernetes manifests are
checked by parsing them (and the manifests against Kubernetes' own schemas). The two probe
commands are run for real against a local HTTP server. The root docker-compose.yml, the
Prometheus rules and the Grafana dashboards are tested in tests/deploy/.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from typing import Any

import kubernetes_validate
import pytest
from dockerfile_parse import DockerfileParser

from proxy.config import parse_config
from proxy.pipeline.auth import unsafe_bind_reason
from tests.deploy.files import DEPLOY, ENV_VAR as VAR, EXAMPLE, K8S, ROOT, example, yaml_docs
from tests.deploy.probes import health_server, run_probe  # noqa: F401 (a fixture)

K8S_VERSION = "1.30"  # the oldest Kubernetes these manifests are meant for


# ----------------------------------------------------------------------------- helpers


def fake_environ(raw: str) -> dict[str, str]:
    """A value for every ${VAR} the config names (REDIS_URL left to its default)."""
    return {name: f"fake-{name.lower()}" for name, default in VAR.findall(raw) if not default}


def api_port() -> int:
    return example()["api"]["port"]


def metrics_port() -> int:
    return example()["monitoring"]["prometheus_port"]


def manifest(name: str) -> dict[str, Any]:
    (doc,) = yaml_docs(K8S / name)
    return doc


def dockerfile() -> DockerfileParser:
    return DockerfileParser(str(DEPLOY / "Dockerfile"))


def instructions(name: str, final_stage_only: bool = True) -> list[str]:
    structure = dockerfile().structure
    if final_stage_only:
        last_from = max(i for i, s in enumerate(structure) if s["instruction"] == "FROM")
        structure = structure[last_from:]
    return [s["value"] for s in structure if s["instruction"] == name]


def container() -> dict[str, Any]:
    (gateway,) = manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return gateway


def container_port(name_or_number: Any) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    return ports[name_or_number]


def image_config_path() -> str:
    return dockerfile().envs["LLM_GATEWAY_CONFIG"]


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("source", ["config.example.json", "kubernetes/configmap.yaml"])
def test_shipped_configs_pass_the_gateways_validation_and_bind_rule(source: str) -> None:
    if source.endswith(".json"):
        raw = EXAMPLE.read_text()
    else:
        raw = manifest("configmap.yaml")["data"]["config.json"]
    config = parse_config(raw, environ=fake_environ(raw), source=source)
    assert config.api.host == "0.0.0.0"
    assert config.api.workers == 2
    assert unsafe_bind_reason(config.auth, config.api.host) is None
    assert config.auth.enabled
    assert set(config.providers) == {"openai", "anthropic", "openrouter"}
    assert all(p.api_key.startswith("fake-") for p in config.providers.values())
    assert config.caching.enabled and config.caching.redis_url == "redis://redis:6379/0"
    # shared state for every replica: limits counted in the same Redis (a Service named redis),
    # the usage ledger in PostgreSQL (a Service named postgres)
    assert config.limits_redis_url == "redis://redis:6379/0"
    assert config.usage is not None and config.usage.database.startswith("postgresql://")
    assert config.usage.database.split("@")[1].split(":")[0] == "postgres"
    assert config.fallback.enabled and config.fallback.fallback_map
    assert config.monitoring.metrics_enabled and config.monitoring.prometheus_port == 8002


def test_example_config_without_caller_keys_is_refused() -> None:
    raw = EXAMPLE.read_text()
    environ = {k: v for k, v in fake_environ(raw).items() if not k.startswith("GATEWAY_KEY_")}
    with pytest.raises(ValueError, match=r"\$\.auth\.keys\[0\]\.key: environment variable GATEWAY_KEY_"):
        parse_config(raw, environ=environ)


def test_configmap_holds_the_example_config() -> None:
    embedded = json.loads(manifest("configmap.yaml")["data"]["config.json"])
    assert embedded == example(), "deploy/kubernetes/configmap.yaml drifted from deploy/config.example.json"


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    froms = instructions("FROM", final_stage_only=False)
    assert len(froms) >= 2
    assert all(f.split()[0] == "python:3.11-slim" for f in froms), froms


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    users = instructions("USER")
    assert users, "the final stage sets no USER, so the gateway would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "Kubernetes' runAsNonRoot can only verify a numeric UID"
    assert group == "" or (group.isdigit() and int(group) != 0)
    pod_security = manifest("deployment.yaml")["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == int(user)


def test_dockerfile_exposes_the_api_and_metrics_ports() -> None:
    exposed = {int(p.split("/")[0]) for value in instructions("EXPOSE") for p in value.split()}
    assert exposed == {api_port(), metrics_port()}


def test_dockerfile_starts_the_gateway_in_exec_form_and_drains_on_sigterm() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    command = json.loads(entrypoint)  # exec form is a JSON array; shell form would not parse
    assert command[0] == "llm-gateway"
    for cmd in instructions("CMD"):
        assert isinstance(json.loads(cmd), list)
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
    assert image_config_path() == "/etc/llm-gateway/config.json"


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    reincluded = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for value in instructions("COPY", final_stage_only=False):
        words = [w for w in shlex.split(value) if not w.startswith("--")]
        if value.startswith("--from"):
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository root"
            assert source in reincluded, f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_dockerfile_healthcheck_probes_health_and_fails_on_503(health_server: Any) -> None:
    handler, base = health_server
    (value,) = instructions("HEALTHCHECK")
    options, _, command = value.partition("CMD")
    argv = json.loads(command)
    url = f"http://127.0.0.1:{api_port()}/health"
    assert run_probe(argv, url, f"{base}/health") == 0
    handler.status = 503
    assert run_probe(argv, url, f"{base}/health") != 0
    assert run_probe(argv, url, "http://127.0.0.1:9/health") != 0  # nothing listening


# ----------------------------------------------------------------------------- YAML files


YAML_FILES = sorted(p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*.y*ml"))


def test_there_are_yaml_files_to_check() -> None:
    assert {"kubernetes/deployment.yaml", "kubernetes/service.yaml", "kubernetes/configmap.yaml",
            "kubernetes/secret.example.yaml", "kubernetes/hpa.yaml", "kubernetes/pdb.yaml",
            "prometheus/prometheus.yml", "prometheus/alerts.yml"} <= set(YAML_FILES)


@pytest.mark.parametrize("name", YAML_FILES)
def test_yaml_file_parses(name: str) -> None:
    assert yaml_docs(DEPLOY / name)


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_kubernetes_manifest_matches_the_api_schema(name: str) -> None:
    for doc in yaml_docs(K8S / name):
        # strict: an unknown or misspelled field is an error, not silently dropped
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{name}: {where}: {exc.message}", pytrace=False)


# ----------------------------------------------------------------------------- Kubernetes


def test_deployment_mounts_the_configmap_as_a_directory_without_subpath() -> None:
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    configmap = manifest("configmap.yaml")
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]]
    (mount,) = [m for m in container()["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount and "subPathExpr" not in mount, "a subPath mount never sees updates"
    assert "items" not in volume["configMap"]
    env = {e["name"]: e.get("value") for e in container().get("env", [])}
    path = env.get("LLM_GATEWAY_CONFIG", image_config_path())
    assert path == image_config_path()
    assert posixpath.join(mount["mountPath"], "config.json") == path
    assert "config.json" in configmap["data"]


def test_deployment_reads_the_secret_the_example_defines() -> None:
    secret = manifest("secret.example.yaml")
    refs = [e["secretRef"]["name"] for e in container()["envFrom"] if "secretRef" in e]
    assert refs == [secret["metadata"]["name"]]
    required = {name for name, default in VAR.findall(EXAMPLE.read_text()) if not default}
    assert required <= set(secret["stringData"]), required - set(secret["stringData"])


def test_deployment_ports_and_scrape_annotations_match_the_config() -> None:
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"http": api_port(), "metrics": metrics_port()}
    annotations = manifest("deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == metrics_port()
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_routes_to_the_configs_ports() -> None:
    service = manifest("service.yaml")
    labels = manifest("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    targets = {p["name"]: container_port(p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == {"http": api_port(), "metrics": metrics_port()}


def test_readiness_follows_the_listener_not_upstream_health() -> None:
    """An upstream outage must not empty the Service: readiness is the API port answering."""
    probe = container()["readinessProbe"]
    assert "httpGet" not in probe
    assert container_port(probe["tcpSocket"]["port"]) == api_port()


def test_liveness_probe_survives_upstream_outages(health_server: Any) -> None:
    """A 503 from /health (no provider can serve) must not restart the pod; no answer must."""
    handler, base = health_server
    probe = container()["livenessProbe"]
    assert "httpGet" not in probe, "an httpGet on /health fails on 503 and restarts pods in a loop"
    argv = probe["exec"]["command"]
    url = f"http://127.0.0.1:{api_port()}/health"
    assert run_probe(argv, url, f"{base}/health") == 0
    handler.status = 503
    assert run_probe(argv, url, f"{base}/health") == 0
    assert run_probe(argv, url, "http://127.0.0.1:9/health") != 0


def test_termination_grace_covers_prestop_and_the_drain() -> None:
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 5, "too short for endpoint removal to reach the proxies"
    shutdown_timeout = example()["api"]["shutdown_timeout"]
    assert pod["terminationGracePeriodSeconds"] > shutdown_timeout + pre_stop


def test_read_only_root_filesystem_has_a_writable_tmp() -> None:
    security = container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    if security.get("readOnlyRootFilesystem"):
        # api.workers > 1 keeps the metrics' multiprocess files in a temporary directory
        assert any(m["mountPath"] == "/tmp" for m in container()["volumeMounts"])


def test_the_usage_spool_is_on_a_writable_volume() -> None:
    """usage.spool_path must be writable on a read-only root: an emptyDir mounted above it."""
    spool = example()["usage"]["spool_path"]
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    holders = [m for m in container()["volumeMounts"]
               if spool == m["mountPath"] or spool.startswith(m["mountPath"].rstrip("/") + "/")]
    assert holders and not holders[-1].get("readOnly"), (spool, holders)
    (volume,) = [v for v in pod["volumes"] if v["name"] == holders[-1]["name"]]
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume
    assert any("/var/lib/llm-gateway" in value for value in instructions("RUN")), "the image must create it"


# ----------------------------------------------------------------------------- scaling


def pod_labels() -> dict[str, str]:
    return manifest("deployment.yaml")["spec"]["template"]["metadata"]["labels"]


def test_the_autoscaler_scales_the_gateway_deployment_on_cpu() -> None:
    hpa = manifest("hpa.yaml")
    deployment = manifest("deployment.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == \
        (deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in container()["resources"]["requests"], "utilisation is measured against the CPU request"


def test_the_deployment_leaves_the_replica_count_to_the_autoscaler() -> None:
    assert "replicas" not in manifest("deployment.yaml")["spec"], "kubectl apply would reset the HPA's count"


def test_the_disruption_budget_covers_the_pods_and_lets_a_drain_proceed() -> None:
    pdb = manifest("pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels().items()
    minimum = manifest("hpa.yaml")["spec"]["minReplicas"]
    if "maxUnavailable" in pdb["spec"]:
        allowed = int(pdb["spec"]["maxUnavailable"])
    else:
        allowed = minimum - int(pdb["spec"]["minAvailable"])
    assert 1 <= allowed < minimum, "a drain must be able to evict one pod and leave one serving"


def test_scale_down_waits_longer_than_a_pod_takes_to_drain() -> None:
    scale_down = manifest("hpa.yaml")["spec"]["behavior"]["scaleDown"]
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    assert scale_down["stabilizationWindowSeconds"] > pod["terminationGracePeriodSeconds"]
