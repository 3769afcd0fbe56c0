"""The loaded configuration: immutable dataclasses, one per section.

:func:`proxy.config.loader.parse_config` builds a :class:`GatewayConfig`;
every later stage reads it and none changes it. A reload builds a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from proxy.usage.pricing import ModelPrice

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_RETRY_AFTER = 60.0
"""Seconds: the longest wait an upstream's ``Retry-After`` can impose (``api.max_retry_after``)."""


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
    price: ModelPrice | None = None  # from the config's ``pricing``, else the pricing dataset

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

    requires_key: bool = True

    @property
    def configured(self) -> bool:
        """True when the provider has what it needs to be called."""
        return bool(self.api_keys) or not self.requires_key


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
class TracingConfig:
    """``monitoring.tracing``: OpenTelemetry traces, sent over OTLP/HTTP (see proxy/observability/tracing.py)."""

    otlp_endpoint: str  # the collector's traces URL, e.g. http://collector:4318/v1/traces
    service_name: str = "llm-gateway"
    sample_ratio: float = 1.0  # of the traces the gateway starts; a caller's traceparent decides for its own


@dataclass(frozen=True, slots=True)
class MonitoringConfig:
    log_level: str = "INFO"
    metrics_enabled: bool = False
    prometheus_port: int = 8002
    tracing: TracingConfig | None = None  # None: no traces (the default)


@dataclass(frozen=True, slots=True)
class UsageConfig:
    """The usage ledger: where records go and how long they are kept."""

    database: str  # sqlite:///relative.db, sqlite:////absolute.db or postgresql://...
    config_dir: str  # the config file's folder: relative SQLite paths are resolved against it
    retention_days: float = 90.0
    spool_path: str | None = None  # None: the documented default beside the database
    max_queued: int = 100_000


BUDGET_PERIODS = ("day", "week", "month", "total")
"""A budget's period: a UTC calendar day, ISO week (from Monday), calendar month, or all time."""


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: str = "month"
    units: int = field(init=False, repr=False, compare=False)
    """``usd`` in budget units of 1e-10 USD (see ``proxy/limits/demand.py``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", round(self.usd * 10**10))
    units: int = field(init=False, repr=False, compare=False)
    """``usd`` in budget units of 1e-10 USD (see ``proxy/limits/demand.py``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", round(self.usd * 10**10))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one key or team may use; a field left ``None`` is not limited."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: Budget | None = None
    models: frozenset[str] | None = None

    @property
    def any(self) -> bool:
        """True when at least one limit is set."""
        return (self.rpm is not None or self.tpm is not None or self.max_parallel is not None
                or self.budget is not None or self.models is not None)


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """The ``limits`` section: defaults for keys, and where counters live."""

    default: Limits = field(default_factory=Limits)
    redis_url: str | None = None  # None: the cache's Redis if it has one, else memory
    on_backend_error: str = "allow"  # or "deny": what to do while Redis cannot be reached
    reserve_output_tokens: int = 4096  # reserved for output when neither request nor model bounds it
    redis_timeout: float = 0.25


@dataclass(frozen=True, slots=True)
class AuthKey:
    name: str
    sha256: bytes = field(repr=False)
    team: str | None = None
    admin: bool = False  # sees everyone's usage (GET /v1/usage), not only its own
    limits: Limits = field(default_factory=Limits)  # its own over ``limits.default``, field by field


@dataclass(frozen=True, slots=True)
class AuthConfig:
    enabled: bool
    explicitly_disabled: bool
    keys: tuple[AuthKey, ...] = ()
    teams: Mapping[str, Limits] = field(default_factory=lambda: MappingProxyType({}))

    def limited(self) -> bool:
        """True when some key or team has a limit."""
        return any(key.limits.any for key in self.keys) or any(t.any for t in self.teams.values())


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
    usage: UsageConfig | None = None
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    @property
    def limits_redis_url(self) -> str | None:
        """Where limits are counted: ``limits.redis_url``, else the cache's Redis, else memory (None)."""
        return self.limits.redis_url or self.caching.redis_url

    def unpriced_models(self) -> list[str]:
        """``provider/model`` of every configured model with no price (its requests cost ``null``)."""
        return [model.qualified_name for provider in self.providers.values()
                for model in provider.models.values() if model.price is None]

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
