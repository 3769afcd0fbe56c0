"""Load the JSON config file: expand ``${VAR}``, validate, resolve references, freeze.

The result is an immutable :class:`~proxy.config.model.GatewayConfig`. What
each provider type needs (its default base URL, whether it needs a key, its
own checks) comes from the provider adapters (:mod:`proxy.providers`). Every error
raised while loading is a :class:`ConfigError` whose message names the JSON
path of the offending value and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import os
import re
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

import jsonschema
import orjson

from proxy.config.model import (
    ApiConfig,
    AuthConfig,
    AuthKey,
    Budget,
    CachingConfig,
    ConfigError,
    FallbackConfig,
    GatewayConfig,
    Limits,
    LimitsConfig,
    MockSettings,
    ModelConfig,
    MonitoringConfig,
    ProviderConfig,
    RoutingConfig,
    RoutingRule,
    TracingConfig,
    UsageConfig,
)
from proxy.config.optimise import check_cheapest, check_rule_tuning, model_fields, rule_overrides, tuned_models
from proxy.optimise.strategies import Strategy
from proxy.pipeline.quick_route import QuickChoice
from proxy.providers import ADAPTERS
from proxy.usage.pricing import model_price

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")



def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, expand, validate and freeze the configuration file at ``path``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(raw, environ=environ, source=str(path))


def parse_config(
    raw: bytes | str | Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
) -> GatewayConfig:
    """Build a :class:`GatewayConfig` from JSON text or an already parsed mapping."""
    if isinstance(raw, (bytes, str)):
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from None
    else:
        document = raw
    unset: dict[str, str] = {}
    document = _expand_env(document, os.environ if environ is None else environ, "$", unset)
    _validate_schema(document)
    return _build(document, unset, source)


def _expand_env(value: Any, environ: Mapping[str, str], path: str, unset: dict[str, str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string, recording unset names by path."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ and environ[name] != "":
                return environ[name]
            if default is not None:
                return default
            unset[path] = name
            return ""

        return _ENV_PATTERN.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, environ, f"{path}.{k}", unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, environ, f"{path}[{i}]", unset) for i, v in enumerate(value)]
    return value


def _schema() -> dict[str, Any]:
    text = resources.files("proxy").joinpath("schemas/config.schema.json").read_bytes()
    return orjson.loads(text)


_CONFIG_VALIDATOR = jsonschema.Draft202012Validator(_schema())


def _validate_schema(document: Any) -> None:
    errors = sorted(_CONFIG_VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = [f"{error.json_path}: {_describe(error)}" for error in errors[:10]]
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown field")
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        return "give exactly one of 'key' or 'key_sha256'"
    return error.message


def _build(doc: dict[str, Any], unset: dict[str, str], source: str | None) -> GatewayConfig:
    api = ApiConfig(**doc.get("api", {}))
    limits = _build_limits_section(doc.get("limits", {}))
    providers = MappingProxyType(
        {name: _build_provider(name, body, unset) for name, body in doc["providers"].items()}
    )
    _reject_unset(unset)
    models_by_name: dict[str, list[ModelConfig]] = {}
    for provider in providers.values():
        for model in provider.models.values():
            models_by_name.setdefault(model.name, []).append(model)
    frozen_index = MappingProxyType({k: tuple(v) for k, v in models_by_name.items()})
    partial = GatewayConfig(
        api=api,
        providers=providers,
        routing=RoutingConfig(default_model=ModelConfig("", "", ""), rules=MappingProxyType({})),
        caching=CachingConfig(**doc.get("caching", {})),
        fallback=FallbackConfig(),
        monitoring=_build_monitoring(doc.get("monitoring", {})),
        auth=_build_auth(doc.get("auth", {}), limits.default),
        models_by_name=frozen_index,
        source=source,
    )
    routing = _build_routing(doc["routing"], partial)
    fallback = _build_fallback(doc.get("fallback", {}), partial)
    config = GatewayConfig(
        api=api,
        providers=providers,
        routing=routing,
        caching=partial.caching,
        fallback=fallback,
        monitoring=partial.monitoring,
        auth=partial.auth,
        models_by_name=frozen_index,
        source=source,
        usage=_build_usage(doc.get("usage"), source),
        limits=limits,
        quick_names=MappingProxyType({name: QuickChoice(Strategy.WEIGHTED, models, _configured(partial))
                                      for name, models in frozen_index.items() if len(models) > 1}),
    )
    _check_limits(config)
    return config


def _build_usage(body: dict[str, Any] | None, source: str | None) -> UsageConfig | None:
    """The ledger's settings; relative SQLite paths are resolved against the config file's folder."""
    if body is None:
        return None
    config_dir = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    return UsageConfig(
        database=body["database"],
        config_dir=config_dir,
        retention_days=body.get("retention_days", 90.0),
        spool_path=body.get("spool_path"),
        max_queued=body.get("max_queued", 100_000),
    )


def _reject_unset(unset: dict[str, str]) -> None:
    """Only a provider's ``api_key`` may name an unset variable (the provider is then unconfigured)."""
    fatal = {p: v for p, v in unset.items()
             if not re.fullmatch(r"\$\.providers\.[^.]+\.(api_key|api_keys\[\d+\])", p)}
    if fatal:
        lines = [f"{p}: environment variable {v} is not set" for p, v in sorted(fatal.items())]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def _build_provider(name: str, body: dict[str, Any], unset: dict[str, str]) -> ProviderConfig:
    kind = body.get("type", name)
    path = f"$.providers.{name}"
    adapter = ADAPTERS.get(kind)
    if adapter is None:
        raise ConfigError(f"{path}.type: provider '{name}' needs a 'type' (one of {', '.join(ADAPTERS)})")
    problem = adapter.config_problem(body)
    if problem is not None:
        raise ConfigError(f"{path}.{problem}")
    base_url = body.get("base_url") or adapter.default_base_url
    if not base_url and adapter.needs_base_url:
        raise ConfigError(f"{path}.base_url: a provider of type '{kind}' needs a base_url")
    models = MappingProxyType(
        {
            model_name: ModelConfig(
                name=model_name,
                provider=name,
                upstream_model=settings.get("upstream_model", model_name),
                max_tokens=settings.get("max_tokens"),
                temperature=settings.get("temperature"),
                timeout=settings.get("timeout"),
                weight=settings.get("weight", 1.0),
                price=model_price(kind, settings.get("upstream_model", model_name), settings.get("pricing")),
                **model_fields(kind, settings.get("upstream_model", model_name), settings,
                               f"{path}.models.{model_name}"),
            )
            for model_name, settings in body["models"].items()
        }
    )
    return ProviderConfig(
        name=name,
        type=kind,
        base_url=(base_url or f"{kind}://").rstrip("/"),
        models=models,
        api_keys=tuple(k for k in [body.get("api_key"), *body.get("api_keys", [])] if k),
        headers=MappingProxyType(dict(body.get("headers", {}))),
        mock=MockSettings(**body.get("mock", {})),
        api_version=body.get("api_version"),
        http_referer=body.get("http_referer") or None,
        x_title=body.get("x_title") or None,
        requires_key=adapter.needs_key,
    )


def _resolve_reference(cfg: GatewayConfig, provider: str | None, model: str, path: str) -> ModelConfig:
    if provider is not None:
        if provider not in cfg.providers:
            raise ConfigError(f"{path}: provider '{provider}' is not configured")
        found = cfg.providers[provider].models.get(model)
        if found is None:
            raise ConfigError(f"{path}: provider '{provider}' has no model '{model}'")
        return found
    candidates = cfg.find_models(model)
    if not candidates:
        raise ConfigError(f"{path}: model '{model}' is not configured under any provider")
    return candidates[0]


def _build_routing(body: dict[str, Any], cfg: GatewayConfig) -> RoutingConfig:
    default = _resolve_reference(
        cfg, body.get("default_provider"), body["default_model"], "$.routing.default_model"
    )
    rules: dict[str, RoutingRule] = {}
    for i, rule in enumerate(body.get("routing_rules", [])):
        path = f"$.routing.routing_rules[{i}]"
        if rule["task_type"] in rules:
            raise ConfigError(f"{path}.task_type: '{rule['task_type']}' already has a rule")
        rules[rule["task_type"]] = _build_rule(rule, cfg, path)
    return RoutingConfig(default_model=default, rules=MappingProxyType(rules))


def _build_rule(rule: dict[str, Any], cfg: GatewayConfig, path: str) -> RoutingRule:
    """One routing rule: one ``model`` (with an optional ``provider``) or several ``models`` and a strategy."""
    if ("model" in rule) == ("models" in rule):
        raise ConfigError(f"{path}: give either 'model' (one model) or 'models' (candidates), not "
                          f"{'both' if 'model' in rule else 'neither'}")
    if "models" in rule:
        if "provider" in rule:
            raise ConfigError(f"{path}.provider: with 'models', name each candidate as 'provider/model'")
        candidates = tuple(_resolve_qualified(cfg, name, f"{path}.models[{j}]")
                           for j, name in enumerate(rule["models"]))
        seen: set[str] = set()
        for j, model in enumerate(candidates):
            if model.qualified_name in seen:
                raise ConfigError(f"{path}.models[{j}]: '{model.qualified_name}' is listed twice")
            seen.add(model.qualified_name)
    else:
        if "strategy" in rule:
            raise ConfigError(f"{path}.strategy: a strategy chooses among 'models'; this rule names one 'model'")
        candidates = (_resolve_reference(cfg, rule.get("provider"), rule["model"], f"{path}.model"),)
    strategy = rule.get("strategy", "weighted")
    if strategy == "cheapest":
        check_cheapest(candidates, f"{path}.models")
    overrides = rule_overrides(rule)
    tuned: dict[str, ModelConfig] = {}
    if overrides:
        check_rule_tuning(candidates, overrides, path)
        everything = [m for provider in cfg.providers.values() for m in provider.models.values()]
        tuned = tuned_models(candidates, everything, overrides, path)
        candidates = tuple(tuned[m.qualified_name] for m in candidates)
    return RoutingRule(rule["task_type"], candidates[0], candidates, strategy, MappingProxyType(tuned),
                       quick=QuickChoice(Strategy(strategy), candidates, _configured(cfg)) if len(candidates) > 1 else None,
                       prices=tuple(m.price for m in candidates))


def _configured(cfg: GatewayConfig) -> list[str]:
    """The providers that can be called (a key, or none needed)."""
    return [name for name, provider in cfg.providers.items() if provider.configured]


def _resolve_qualified(cfg: GatewayConfig, name: str, path: str) -> ModelConfig:
    provider, sep, model = name.partition("/")
    if sep and provider in cfg.providers and model in cfg.providers[provider].models:
        return cfg.providers[provider].models[model]
    candidates = cfg.models_by_name.get(name)
    if candidates:
        return candidates[0]
    raise ConfigError(f"{path}: '{name}' names no configured model (use 'provider/model')")


def _build_fallback(body: dict[str, Any], cfg: GatewayConfig) -> FallbackConfig:
    chains: dict[str, tuple[ModelConfig, ...]] = {}
    for name, targets in body.get("fallback_map", {}).items():
        path = f"$.fallback.fallback_map['{name}']"
        source = _resolve_qualified(cfg, name, path)
        chains[source.qualified_name] = tuple(
            _resolve_qualified(cfg, target, f"{path}[{i}]") for i, target in enumerate(targets)
        )
    breaker = body.get("circuit_breaker", {})
    return FallbackConfig(
        enabled=body.get("enabled", False),
        max_retries=body.get("max_retries", 0),
        retry_delay=body.get("retry_delay", 1.0),
        max_retry_delay=body.get("max_retry_delay", 10.0),
        failure_threshold=breaker.get("failure_threshold", 5),
        cooldown=breaker.get("cooldown", 30.0),
        fallback_map=MappingProxyType(chains),
    )


def _build_monitoring(body: dict[str, Any]) -> MonitoringConfig:
    settings = dict(body)
    if "log_level" in settings:
        settings["log_level"] = settings["log_level"].upper()
    tracing = settings.pop("tracing", None)
    if tracing and tracing.get("otlp_endpoint"):  # an empty endpoint (an unset ${VAR:-}) means off
        settings["tracing"] = TracingConfig(**tracing)
    return MonitoringConfig(**settings)


def _build_limits(body: dict[str, Any] | None, inherited: Limits = Limits()) -> Limits:
    """A ``limits`` object; fields it does not set come from ``inherited``."""
    if not body:
        return inherited
    budget = inherited.budget
    if "budget" in body:
        budget = Budget(usd=float(body["budget"]["usd"]), period=body["budget"]["period"])
    models = inherited.models
    if "models" in body:
        models = frozenset(body["models"])
    return Limits(
        rpm=body.get("rpm", inherited.rpm),
        tpm=body.get("tpm", inherited.tpm),
        max_parallel=body.get("max_parallel", inherited.max_parallel),
        budget=budget,
        models=models,
    )


def _build_limits_section(body: dict[str, Any]) -> LimitsConfig:
    settings = {k: v for k, v in body.items() if k != "default"}
    return LimitsConfig(default=_build_limits(body.get("default")), **settings)


def _check_limits(cfg: GatewayConfig) -> None:
    """Limits must name real models, and several workers need a shared (Redis) counter."""
    for path, limits in _all_limits(cfg):
        for name in sorted(limits.models or ()):
            if not cfg.find_models(name):
                raise ConfigError(f"{path}.models: '{name}' is not a configured model "
                                  "(use a model's name or provider/model)")
    if cfg.api.workers > 1 and cfg.auth.limited() and cfg.limits_redis_url is None:
        raise ConfigError(
            f"$.limits.redis_url: api.workers is {cfg.api.workers} but limits would be counted in "
            "each worker's memory, so every worker would allow the whole limit; set limits.redis_url "
            "(or caching.redis_url) so all workers share one count, or run one worker")


def _all_limits(cfg: GatewayConfig) -> list[tuple[str, Limits]]:
    found = [("$.limits.default", cfg.limits.default)]
    found += [(f"$.auth.keys[{i}].limits", key.limits) for i, key in enumerate(cfg.auth.keys)]
    found += [(f"$.auth.teams.{name}.limits", limits) for name, limits in cfg.auth.teams.items()]
    return found


def _build_auth(body: dict[str, Any], default_limits: Limits = Limits()) -> AuthConfig:
    keys: list[AuthKey] = []
    seen: set[str] = set()
    for i, entry in enumerate(body.get("keys", [])):
        path = f"$.auth.keys[{i}]"
        if entry["name"] in seen:
            raise ConfigError(f"{path}.name: key name '{entry['name']}' is used twice")
        seen.add(entry["name"])
        if "key_sha256" in entry:
            digest = bytes.fromhex(entry["key_sha256"])
        else:
            if not entry["key"]:
                raise ConfigError(f"{path}.key: the key is empty")
            digest = hashlib.sha256(entry["key"].encode()).digest()
        keys.append(AuthKey(entry["name"], digest, entry.get("team"), admin=entry.get("admin", False),
                            limits=_build_limits(entry.get("limits"), default_limits)))
    explicitly_disabled = body.get("enabled") is False
    enabled = not explicitly_disabled and bool(keys)
    if body.get("enabled") is True and not keys:
        raise ConfigError("$.auth.keys: auth is enabled but no keys are listed")
    teams = MappingProxyType({name: _build_limits(team.get("limits"))
                              for name, team in body.get("teams", {}).items()})
    return AuthConfig(enabled=enabled, explicitly_disabled=explicitly_disabled, keys=tuple(keys),
                      teams=teams)
