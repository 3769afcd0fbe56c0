"""The gateway's configuration: the frozen model (``model``), loading (``loader``), hot reload (``reload``).

The names most code needs are available from this package directly.
"""

from proxy.config.loader import load_config, parse_config
from proxy.config.model import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_RETRY_AFTER,
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
    with_api_overrides,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_RETRY_AFTER", "ApiConfig", "AuthConfig", "AuthKey", "Budget",
    "Limits", "LimitsConfig",
    "CachingConfig", "ConfigError", "FallbackConfig", "GatewayConfig", "MockSettings", "ModelConfig",
    "MonitoringConfig", "ProviderConfig", "RoutingConfig", "RoutingRule", "load_config", "parse_config",
    "with_api_overrides",
]
