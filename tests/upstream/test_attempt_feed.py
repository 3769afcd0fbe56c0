"""The attempt feed: in flight while an attempt (or the stream it opened) lasts, timed when answered,
and the rate-limit headers of whatever the upstream answered."""

from __future__ import annotations

import asyncio

from proxy.context import RequestContext
from proxy.optimise.deployment_stats import DeploymentStats
from proxy.upstream.attempt_feed import AttemptFeed, StreamEnds, headers_received

NAME = "openai/gpt-4o"
LIMITED = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "10s"}


def context(stream: bool = False) -> RequestContext:
    ctx = RequestContext(request_id="r", state=None)  # type: ignore[arg-type]
    ctx.stream = stream
    return ctx


async def test_a_plain_attempt_is_in_flight_until_it_ends_and_timed_when_answered() -> None:
    stats, loop = DeploymentStats(), asyncio.get_running_loop()
    feed = AttemptFeed(stats, NAME, loop.time() - 0.25)
    assert stats.state(NAME).in_flight == 1
    feed.answered(context(), loop.time())
    feed.end()
    state = stats.state(NAME)
    assert state.in_flight == 0 and state.latency is not None and state.latency >= 0.25 and state.ttft is None


async def test_a_failed_attempt_is_counted_but_not_timed() -> None:
    stats, loop = DeploymentStats(), asyncio.get_running_loop()
    feed = AttemptFeed(stats, NAME, loop.time())
    feed.end()
    assert (stats.state(NAME).in_flight, stats.state(NAME).latency) == (0, None)


async def test_an_opened_stream_stays_in_flight_until_its_request_ends() -> None:
    stats, loop = DeploymentStats(), asyncio.get_running_loop()
    ctx = context(stream=True)
    feed = AttemptFeed(stats, NAME, loop.time())
    feed.answered(ctx, loop.time())
    feed.end()
    state = stats.state(NAME)
    assert state.in_flight == 1 and state.ttft is not None and state.latency is None
    ends = StreamEnds(stats)
    ends.request_finished(ctx)
    assert state.in_flight == 0 and state.latency is not None
    ends.request_finished(ctx)  # settled once
    assert state.in_flight == 0


async def test_headers_reach_the_attempts_deployment_only_during_the_attempt() -> None:
    stats, loop = DeploymentStats(), asyncio.get_running_loop()
    headers_received(LIMITED)  # no attempt: nowhere to go
    assert stats.state(NAME).headroom is None
    feed = AttemptFeed(stats, NAME, loop.time())
    headers_received({"content-type": "application/json"})  # nothing about limits
    headers_received(LIMITED)
    feed.end()
    headers_received({"x-ratelimit-remaining-requests": "99"})  # after the attempt: ignored
    headroom = stats.state(NAME).headroom
    assert headroom is not None and headroom.exhausted(1, loop.time())
    assert not headroom.exhausted(1, loop.time() + 11)
