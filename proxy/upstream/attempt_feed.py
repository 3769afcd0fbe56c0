"""What every upstream attempt tells the deployment's stats: in flight, how fast, how much headroom.

:func:`proxy.upstream.fallback.try_candidate` opens an :class:`AttemptFeed`
around each attempt, whichever way the request was routed (a rule's strategy
or a model named by the caller):

* the deployment counts one more request in flight until the attempt ends,
  or, for a stream that opened, until the request ends (:class:`StreamEnds`,
  a request observer, settles it then and times the whole stream);
* an answered attempt's time goes into the moving averages: time to first
  token for a stream, latency for a plain answer;
* every upstream answer's rate-limit headers (429s included, which carry the
  headroom that matters most) reach :meth:`DeploymentStats.observe_headers`
  through :func:`headers_received`, which the HTTP adapters call as soon as
  an answer's status and headers arrive. The attempt is found through a
  context variable, so adapters need no reference to the stats.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Mapping

from proxy.optimise.deployment_stats import DeploymentStats
from proxy.optimise.headroom import has_rate_limits

if TYPE_CHECKING:
    from proxy.config import GatewayConfig
    from proxy.context import RequestContext

_CURRENT: ContextVar["AttemptFeed | None"] = ContextVar("upstream_attempt", default=None)


class AttemptFeed:
    """One attempt on one deployment, from its start to its end."""

    __slots__ = ("stats", "name", "started", "_token", "_kept")

    def __init__(self, stats: DeploymentStats, name: str, started: float) -> None:
        self.stats = stats
        self.name = name
        self.started = started
        self._kept = False
        stats.started(name)
        self._token: Token["AttemptFeed | None"] = _CURRENT.set(self)

    def answered(self, ctx: "RequestContext", now: float) -> None:
        """The attempt answered at ``now`` (the loop's clock): time it; a stream stays in flight."""
        elapsed = now - self.started
        if ctx.stream:
            self.stats.observe(self.name, ttft=elapsed)
            ctx.open_attempt = (self.name, self.started)
            self._kept = True
        else:
            self.stats.observe(self.name, latency=elapsed)

    def end(self) -> None:
        """The attempt is over (however it ended): no longer in flight, unless it opened a stream."""
        _CURRENT.reset(self._token)
        if not self._kept:
            self.stats.finished(self.name)


def headers_received(headers: Mapping[str, str]) -> None:
    """An upstream answered with ``headers`` (any status): keep their rate-limit headroom."""
    feed = _CURRENT.get()
    if feed is not None and has_rate_limits(headers):
        feed.stats.observe_headers(feed.name, headers, asyncio.get_running_loop().time(), time.time())


class StreamEnds:
    """A request observer: a stream's deployment is in flight until the request ends, then timed whole."""

    __slots__ = ("stats",)

    def __init__(self, stats: DeploymentStats) -> None:
        self.stats = stats

    def request_started(self, ctx: "RequestContext") -> None:
        """Nothing yet."""

    def request_finished(self, ctx: "RequestContext") -> None:
        """Settle the stream the request had open, if any."""
        opened = ctx.open_attempt
        if opened is None:
            return
        ctx.open_attempt = None
        name, started = opened
        self.stats.finished(name)
        if ctx.error is None:
            self.stats.observe(name, latency=asyncio.get_running_loop().time() - started)

    def config_reloaded(self, config: "GatewayConfig | None", ok: bool) -> None:
        """Stats are kept across reloads."""
