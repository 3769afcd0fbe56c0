"""The loaded configuration: immutable dataclasses, one per section.

:func:`proxy.config.loader.parse_config` builds a :class:`GatewayConfig`;
every later stage reads it and none changes it. A reload builds a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from proxy.optimise.capabilities import ALL as ALL_CAPABILITIES
from proxy.usage.pricing import ModelPrice

if TYPE_CHECKING:
    from proxy.optimise.model_limits import ModelLimits
    from proxy.tokens.counting import TokenCounter

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
class TrimSettings:
    """``trim``: how a conversation too long for the model is shortened (only ``oldest`` exists)."""

    strategy: str = "oldest"
    keep_system: bool = True


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
    provider_type: str = ""
    context_window: int | None = None  # as configured; ``limits`` holds what is known
    max_output_tokens: int | None = None  # as configured
    default_max_tokens: int | None = None  # asked for when a request sets no max_tokens
    prompt_caching: bool = False  # ``prompt_caching: "auto"`` (Anthropic only)
    trim: TrimSettings | None = None
    # Resolved when the config is loaded (proxy/config/optimise.py):
    limits: "ModelLimits | None" = None  # context window and largest output, if known
    capabilities: frozenset[str] = ALL_CAPABILITIES
    counter: "TokenCounter | None" = field(default=None, compare=False)  # only for a known window
    default_output: int = 0  # the output asked for when a request sets none (Anthropic always asks)
    qualified_name: str = field(init=False, repr=False, compare=False)
    """``provider/model``, the name fallback maps, logs and the routing stats use (made once)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "qualified_name", f"{self.provider}/{self.name}")

    @property
    def context_limit(self) -> int | None:
        """The context window (prompt plus output), if known."""
        limits = self.limits
        return None if limits is None else limits.context_window

    @property
    def output_limit(self) -> int | None:
        """The largest output, if known."""
        limits = self.limits
        return None if limits is None else limits.max_output_tokens

    def timeout_or(self, default: float) -> float:
        """The model's own timeout, else ``default``."""
        return self.timeout or default


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


STRATEGIES = ("cheapest", "fastest", "least_busy", "weighted")
"""How a rule with several candidates chooses (:class:`proxy.optimise.strategies.Strategy`)."""


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """A ``task_type``'s model, or its candidates and the strategy that chooses among them.

    ``candidates`` is ``(model,)`` for a single-model rule. When the rule sets
    ``default_max_tokens``, ``prompt_caching`` or ``trim``, every model it
    names, and every model a fallback can reach, comes in ``tuned``
    (``provider/model`` -> the model with the rule's settings), and
    ``model``/``candidates`` are already tuned.
    """

    task_type: str
    model: ModelConfig
    candidates: tuple[ModelConfig, ...] = ()
    strategy: str = "weighted"
    tuned: Mapping[str, ModelConfig] = field(default_factory=lambda: MappingProxyType({}))
    quick: Any = field(default=None, repr=False, compare=False)
    """The candidates precomputed for the routing stage's fast path (:mod:`proxy.pipeline.quick_route`)."""
    prices: tuple[ModelPrice | None, ...] = field(default=(), repr=False, compare=False)
    """The candidates' prices (for what routing saved)."""

    @property
    def multi(self) -> bool:
        """True when the rule chooses among several candidates."""
        return len(self.candidates) > 1

    def tune(self, model: ModelConfig) -> ModelConfig:
        """``model`` with this rule's settings (itself when the rule sets none)."""
        return self.tuned.get(model.qualified_name, model) if self.tuned else model


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
    quick_names: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)
    """Per model name served by several providers, its deployments precomputed for the routing stage's
    fast path (:mod:`proxy.pipeline.quick_route`)."""

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
