"""Typed keys for what the gateway keeps on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from proxy.observers import RequestObserver
    from proxy.cache import ResponseCache
    from proxy.fallback import Resilience
    from proxy.lifecycle import Lifecycle
    from proxy.reload import ConfigWatcher
    from proxy.state import StateHolder
    from proxy.upstreams import UpstreamPool

STATE = web.AppKey("state", "StateHolder")
POOL = web.AppKey("pool", "UpstreamPool")
WATCHER = web.AppKey("watcher", "ConfigWatcher | None")
BIND_HOST = web.AppKey("bind_host", str)
OBSERVERS = web.AppKey("observers", "list[RequestObserver]")
RESILIENCE = web.AppKey("resilience", "Resilience")
RESPONSE_CACHE = web.AppKey("response_cache", "ResponseCache")
LIFECYCLE = web.AppKey("lifecycle", "Lifecycle")
