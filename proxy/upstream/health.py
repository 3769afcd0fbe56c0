"""What the gateway learns about its upstreams, kept across requests and reloads.

:class:`UpstreamHealth` pairs the circuit breakers (one per provider and
model, :mod:`proxy.upstream.breakers`) with the key rings (one per provider,
:mod:`proxy.upstream.keyring`) and each deployment's in-flight count, moving
averages and rate-limit headroom (:mod:`proxy.optimise.deployment_stats`,
fed by :mod:`proxy.upstream.attempt_feed`). It lives on the application
(``UPSTREAM_HEALTH``), not in a config snapshot, so a reload keeps what it
learned. Each worker process has its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from proxy.config import FallbackConfig, ModelConfig
from proxy.optimise.deployment_stats import DeploymentStats
from proxy.upstream.breakers import BreakerBoard, BreakerSettings
from proxy.upstream.keyring import KeyRings

if TYPE_CHECKING:
    from proxy.state import GatewayState


class UpstreamHealth:
    """What the gateway learns about upstreams, kept across requests and reloads."""

    def __init__(self) -> None:
        self.breakers = BreakerBoard()
        self.keyrings = KeyRings()
        self.stats = DeploymentStats()

    def configure(self, fallback: FallbackConfig) -> None:
        """Take breaker settings from a (re)loaded config."""
        self.breakers.configure(BreakerSettings(fallback.failure_threshold, fallback.cooldown))

    def healthy(self, state: "GatewayState", model: ModelConfig) -> bool:
        """Could ``model`` be tried now (configured, provider up, breaker not open)?"""
        provider = state.adapters[model.provider].config
        return (provider.configured and not self.breakers.provider_down(model.provider)
                and self.breakers.get(model.provider, model.name).would_allow())

    def provider_status(self, state: "GatewayState", provider: str) -> str:
        """``available``, ``degraded``, ``unavailable`` or ``unconfigured``, for /health."""
        adapter = state.adapters[provider]
        if adapter.status() == "unconfigured":
            return "unconfigured"
        return self.breakers.provider_status(provider, adapter.config.models)


UPSTREAM_HEALTH = web.AppKey("upstream_health", UpstreamHealth)
