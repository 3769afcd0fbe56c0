"""Configuration: load the JSON file, expand ``${VAR}``, validate, freeze.

The loaded configuration is an immutable :class:`GatewayConfig`. Every error
raised while loading is a :class:`ConfigError` whose message names the JSON
path of the offending value and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

import jsonschema
import orjson

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "openrouter": "https://openrouter.ai/api/v1",
}
PROVIDER_TYPES = ("openai", "anthropic", "openrouter", "openai_compatible", "azure", "mock")
KEYLESS_TYPES = ("mock", "openai_compatible")
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_RETRY_AFTER = 60.0
"""Seconds: the longest wait an upstream's ``Retry-After`` can impose (``api.max_retry_after``)."""

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    workers: int = 1
    timeout: float = 120.0
    connect_timeout: float = 10.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    shutdown_timeout: float = 30.0
    max_in_flight: int = 4096
    event_loop: str = "uvloop"
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    max_stream_duration: float = 3600.0
    idle_timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    provider: str
    upstream_model: str
    max_tokens: int | None = None
    temperature: float | None = None
    timeout: float | None = None
    weight: float = 1.0

    def timeout_or(self, default: float) -> float:
        """The model's own timeout, else ``default``."""
        return self.timeout or default

    @property
    def qualified_name(self) -> str:
        """``provider/model``, the name fallback maps and logs use."""
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True, slots=True)
class MockSettings:
    latency: float = 0.0
    chunk_count: int = 8
    chunk_delay: float = 0.0
    embedding_dimensions: int = 16


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str
    models: Mapping[str, ModelConfig]
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    mock: MockSettings = field(default_factory=MockSettings)
    api_version: str | None = None
    http_referer: str | None = None
    x_title: str | None = None

    @property
    def api_key(self) -> str | None:
        """The first key (the one used when there is no rotation)."""
        return self.api_keys[0] if self.api_keys else None

    @property
    def configured(self) -> bool:
        """True when the provider has what it needs to be called."""
        return bool(self.api_keys) or self.type in KEYLESS_TYPES


@dataclass(frozen=True, slots=True)
class RoutingRule:
    task_type: str
    model: ModelConfig


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    default_model: ModelConfig
    rules: Mapping[str, RoutingRule]


@dataclass(frozen=True, slots=True)
class CachingConfig:
    enabled: bool = False
    ttl: float = 3600.0
    redis_url: str | None = None
    scope: str = "key"
    max_entries: int = 10000
    max_entry_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    enabled: bool = False
    max_retries: int = 0
    retry_delay: float = 1.0
    max_retry_delay: float = 10.0
    failure_threshold: int = 5
    cooldown: float = 30.0
    fallback_map: Mapping[str, tuple[ModelConfig, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True)
class MonitoringConfig:
    log_level: str = "INFO"
    metrics_enabled: bool = False
    prometheus_port: int = 8002


@dataclass(frozen=True, slots=True)
class AuthKey:
    name: str
    sha256: bytes = field(repr=False)
    team: str | None = None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    enabled: bool
    explicitly_disabled: bool
    keys: tuple[AuthKey, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    api: ApiConfig
    providers: Mapping[str, ProviderConfig]
    routing: RoutingConfig
    caching: CachingConfig
    fallback: FallbackConfig
    monitoring: MonitoringConfig
    auth: AuthConfig
    models_by_name: Mapping[str, tuple[ModelConfig, ...]]
    source: str | None = None

    def find_models(self, name: str) -> tuple[ModelConfig, ...]:
        """Every configured model a request's ``model`` value can mean.

        An exact configured name wins (OpenRouter ids contain slashes);
        otherwise ``provider/model`` names one provider's model.
        """
        found = self.models_by_name.get(name)
        if found:
            return found
        provider_name, sep, model_name = name.partition("/")
        if sep:
            provider = self.providers.get(provider_name)
            if provider is not None and model_name in provider.models:
                return (provider.models[model_name],)
        return ()


def with_api_overrides(config: GatewayConfig, overrides: Mapping[str, Any] | None) -> GatewayConfig:
    """``config`` with some ``api`` fields replaced (the command line's ``--host`` and the like)."""
    if not overrides:
        return config
    return replace(config, api=replace(config.api, **overrides))


# --------------------------------------------------------------------- loading


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
        auth=_build_auth(doc.get("auth", {})),
        models_by_name=frozen_index,
        source=source,
    )
    routing = _build_routing(doc["routing"], partial)
    fallback = _build_fallback(doc.get("fallback", {}), partial)
    return GatewayConfig(
        api=api,
        providers=providers,
        routing=routing,
        caching=partial.caching,
        fallback=fallback,
        monitoring=partial.monitoring,
        auth=partial.auth,
        models_by_name=frozen_index,
        source=source,
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
    if kind not in PROVIDER_TYPES:
        raise ConfigError(
            f"{path}.type: provider '{name}' needs a 'type' (one of {', '.join(PROVIDER_TYPES)})"
        )
    base_url = body.get("base_url") or DEFAULT_BASE_URLS.get(kind)
    if kind == "azure" and not body.get("api_version"):
        raise ConfigError(f"{path}.api_version: an azure provider needs an api_version (e.g. 2024-10-21)")
    if not base_url and kind not in ("mock",):
        raise ConfigError(f"{path}.base_url: a provider of type '{kind}' needs a base_url")
    if kind == "anthropic":
        for model_name, settings in body["models"].items():
            if settings.get("temperature", 0) > 1:
                raise ConfigError(f"{path}.models.{model_name}.temperature: Anthropic accepts 0 to 1, "
                                  f"not {settings['temperature']}")
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
            )
            for model_name, settings in body["models"].items()
        }
    )
    return ProviderConfig(
        name=name,
        type=kind,
        base_url=(base_url or "mock://").rstrip("/"),
        models=models,
        api_keys=tuple(k for k in [body.get("api_key"), *body.get("api_keys", [])] if k),
        headers=MappingProxyType(dict(body.get("headers", {}))),
        mock=MockSettings(**body.get("mock", {})),
        api_version=body.get("api_version"),
        http_referer=body.get("http_referer") or None,
        x_title=body.get("x_title") or None,
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
        model = _resolve_reference(cfg, rule.get("provider"), rule["model"], f"{path}.model")
        rules[rule["task_type"]] = RoutingRule(rule["task_type"], model)
    return RoutingConfig(default_model=default, rules=MappingProxyType(rules))


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
    return MonitoringConfig(**settings)


def _build_auth(body: dict[str, Any]) -> AuthConfig:
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
        keys.append(AuthKey(entry["name"], digest, entry.get("team")))
    explicitly_disabled = body.get("enabled") is False
    enabled = not explicitly_disabled and bool(keys)
    if body.get("enabled") is True and not keys:
        raise ConfigError("$.auth.keys: auth is enabled but no keys are listed")
    return AuthConfig(enabled=enabled, explicitly_disabled=explicitly_disabled, keys=tuple(keys))
