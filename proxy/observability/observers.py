"""The hook through which metrics (and anything else) watch requests.

An observer is told when a request starts and when it ends; at the end the
request's context holds everything the gateway learned about it. Observers
must be quick and must not raise: they run on the request path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from aiohttp import web

if TYPE_CHECKING:
    from proxy.config import GatewayConfig
    from proxy.context import RequestContext


class RequestObserver(Protocol):
    """Watches requests; see the module docstring."""

    def request_started(self, ctx: "RequestContext") -> None:
        """A request arrived (its endpoint is known, nothing else yet)."""

    def request_finished(self, ctx: "RequestContext") -> None:
        """A request ended, however it ended."""

    def config_reloaded(self, config: "GatewayConfig | None", ok: bool) -> None:
        """A reload was attempted: ``ok`` with the new config, or refused (``None``)."""


OBSERVERS = web.AppKey("observers", "list[RequestObserver]")
"""The observers told about every request (metrics among them)."""
