"""The snapshot a request works with: one config and the adapters built from it.

A reload builds a new :class:`GatewayState` and swaps it in whole. A request
takes the current snapshot once, when it arrives, and keeps it to the end, so
a reload never changes the rules under a request already in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from aiohttp import web

from proxy.config import GatewayConfig
from proxy.providers import build_adapter
from proxy.providers.base import ProviderAdapter
from proxy.upstream.pool import UpstreamPool
from proxy.upstream.redaction import Redactor, header_secrets


@dataclass(frozen=True, slots=True)
class GatewayState:
    """An immutable pairing of a config and its provider adapters."""

    config: GatewayConfig
    adapters: Mapping[str, ProviderAdapter]
    generation: int = 0


def build_state(config: GatewayConfig, pool: UpstreamPool, generation: int = 0) -> GatewayState:
    """Adapters for every provider, each on the pooled session of its upstream."""
    redactor = upstream_secrets(config)
    adapters = {}
    for name, provider in config.providers.items():
        session = None if provider.type == "mock" else pool.session_for(provider.base_url)
        adapters[name] = build_adapter(provider, config.api, session, redactor)
    return GatewayState(config=config, adapters=MappingProxyType(adapters), generation=generation)


def upstream_secrets(config: GatewayConfig) -> Redactor:
    """A redactor for every configured upstream secret: all providers' keys and credential headers."""
    secrets: list[str] = []
    for provider in config.providers.values():
        secrets.extend(provider.api_keys)
        secrets.extend(header_secrets(provider.headers))
    return Redactor(secrets)


class StateHolder:
    """Holds the current snapshot; :meth:`replace` swaps it atomically."""

    __slots__ = ("current",)

    def __init__(self, state: GatewayState) -> None:
        self.current = state

    def replace(self, state: GatewayState) -> None:
        """Make ``state`` the snapshot new requests get."""
        self.current = state


STATE = web.AppKey("state", StateHolder)
"""The application's current snapshot holder."""
