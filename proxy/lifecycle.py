"""Requests in flight, and draining them when the gateway stops.

The access-log stage registers each request's task here. On SIGTERM the
server stops accepting, and :meth:`Lifecycle.drain` gives the requests in
flight the grace period to finish; whatever is still running then is
cancelled (a stream gets the mid-stream error event, so its caller knows the
answer was cut, not complete).
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class Lifecycle:
    """The set of request tasks in flight and whether the gateway is shutting down."""

    __slots__ = ("in_flight", "admitted", "shutting_down")

    def __init__(self) -> None:
        self.in_flight: set[asyncio.Task[object]] = set()
        self.admitted = 0  # model requests in flight (see proxy/pipeline/admission.py)
        self.shutting_down = False

    def enter(self) -> asyncio.Task[object] | None:
        """Register the current request's task."""
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        """Forget a finished request's task."""
        self.in_flight.discard(task)  # type: ignore[arg-type]

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for requests in flight; cancel the rest. Returns how many were cut."""
        self.shutting_down = True
        tasks = set(self.in_flight)
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        return len(pending)


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
