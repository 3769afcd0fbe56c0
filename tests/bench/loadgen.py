"""The benchmark's own asyncio load generator (aiohttp client, in the driver process).

* :func:`plain_load`: ``concurrency`` closed-loop clients for ``seconds`` (or
  ``max_requests``), used instead of wrk when wrk is absent;
* :func:`open_streams`: many streams opened together, timing the first token
  (first ``data:`` bytes) and the end (``data: [DONE]``) of each;
* :func:`burst`: requests fired together, each answer's status, latency and
  ``Retry-After`` kept (admission control).

Every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import aiohttp
import orjson

from tests.bench.stats import LoadResult, StreamResult, percentile

BodyFactory = Callable[[], bytes]


def chat_body(content: str, model: str, **extra: object) -> bytes:
    """A chat completion request body."""
    body: dict[str, object] = {"model": model} if model else {}  # no model: routed by its task type
    return orjson.dumps({**body, "max_tokens": 64, "messages": [{"role": "user", "content": content}], **extra})


def unique_bodies(model: str, **extra: object) -> BodyFactory:
    """A factory of bodies with a unique message each (the cache-miss path)."""
    nonce = uuid.uuid4().hex[:12]
    counter = itertools.count(1)
    return lambda: chat_body(f"bench {nonce}-{next(counter)}", model, **extra)


def headers_for(key: str) -> dict[str, str]:
    """Request headers: JSON and the caller's key."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}


def _session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=timeout_s))


async def plain_load(url: str, bodies: BodyFactory, key: str, concurrency: int, seconds: float,
                     max_requests: int = 10_000_000, timeout_s: float = 10.0,
                     extra_headers: dict[str, str] | None = None) -> LoadResult:
    """``concurrency`` clients posting back to back until ``seconds`` pass or ``max_requests`` are sent."""
    latencies: list[float] = []
    counts = {"sent": 0, "non2xx": 0, "socket": 0}
    headers = {**headers_for(key), **(extra_headers or {})}
    async with _session(concurrency, timeout_s) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            while time.perf_counter() < deadline and counts["sent"] < max_requests:
                counts["sent"] += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=bodies(), headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    counts["socket"] += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                if not 200 <= status < 400:
                    counts["non2xx"] += 1

        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))),
                               seconds + timeout_s + 5)
        elapsed = time.perf_counter() - started
    return LoadResult(tool="asyncio", concurrency=concurrency, requests=len(latencies), seconds=elapsed,
                      rps=len(latencies) / elapsed if elapsed else 0.0, p50_ms=percentile(latencies, 50),
                      p99_ms=percentile(latencies, 99), non2xx=counts["non2xx"], socket_errors=counts["socket"])


async def _one_stream(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
                      gate: asyncio.Event, result: StreamResult) -> None:
    await gate.wait()
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                await resp.read()
                result.failed(f"status_{resp.status}")
                return
            first: float | None = None
            tail = b""
            async for piece in resp.content.iter_any():
                if first is None and b"data:" in piece:
                    first = time.perf_counter()
                window = tail[-16:] + piece
                tail = window[-256:]
                if b'data: {"error"' in window:
                    result.failed("error_event")
                    return
            end = time.perf_counter()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        result.failed(type(exc).__name__)
        return
    if first is None or not tail.rstrip().endswith(b"data: [DONE]"):
        result.failed("no_done")
        return
    result.completed += 1
    result.ttft_ms.append((first - t0) * 1000)
    result.total_ms.append((end - t0) * 1000)


async def _stream_round(session: aiohttp.ClientSession, url: str, bodies: BodyFactory,
                        headers: dict[str, str], count: int, result: StreamResult, timeout_s: float) -> None:
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_one_stream(session, url, bodies(), headers, gate, result)) for _ in range(count)]
    await asyncio.sleep(0)
    started = time.perf_counter()
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout_s + 10)
    result.wall_s.append(time.perf_counter() - started)


async def stream_rounds(urls: dict[str, str], bodies: BodyFactory, key: str, count: int, rounds: int = 1,
                        warmup_rounds: int = 0, timeout_s: float = 120.0) -> dict[str, StreamResult]:
    """Open ``count`` streams together on each target in turn, ``rounds`` times; read each to its end.

    Each target keeps its own client session, so connections stay alive
    between rounds; the targets take turns round by round, so outside load
    skews none in particular. Warm-up rounds are not counted.
    """
    headers = headers_for(key)
    results = {name: StreamResult(streams=count * rounds) for name in urls}
    sessions = {name: _session(0, timeout_s) for name in urls}
    try:
        for index in range(warmup_rounds + rounds):
            for name, url in urls.items():
                target = results[name] if index >= warmup_rounds else StreamResult(streams=count)
                await _stream_round(sessions[name], url, bodies, headers, count, target, timeout_s)
    finally:
        for session in sessions.values():
            await session.close()
    return results


async def open_streams(url: str, bodies: BodyFactory, key: str, count: int,
                       timeout_s: float = 120.0) -> StreamResult:
    """Open ``count`` streams together on one target once and read each to its end."""
    return (await stream_rounds({"target": url}, bodies, key, count, timeout_s=timeout_s))["target"]


@dataclass
class BurstAnswer:
    """One request of a burst: how it ended and how long it took."""

    status: int  # 0 for a socket error or timeout
    ms: float
    retry_after: str | None


async def burst(url: str, bodies: BodyFactory, key: str, count: int, rounds: int, warmup_rounds: int = 0,
                timeout_s: float = 30.0, after_warmup: Callable[[], None] | None = None) -> list[BurstAnswer]:
    """``rounds`` times, fire ``count`` requests together and wait for all their answers.

    Answers of the first ``warmup_rounds`` rounds (which open the connections)
    are not returned; ``after_warmup`` is called once they are done.
    """
    answers: list[BurstAnswer] = []
    headers = headers_for(key)

    async def one(session: aiohttp.ClientSession, gate: asyncio.Event) -> None:
        await gate.wait()
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=bodies(), headers=headers) as resp:
                await resp.read()
                answers.append(BurstAnswer(resp.status, (time.perf_counter() - t0) * 1000,
                                           resp.headers.get("Retry-After")))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            answers.append(BurstAnswer(0, (time.perf_counter() - t0) * 1000, None))

    async with _session(0, timeout_s) as session:
        for index in range(warmup_rounds + rounds):
            if index == warmup_rounds:
                answers.clear()
                if after_warmup is not None:
                    after_warmup()
            gate = asyncio.Event()
            tasks = [asyncio.create_task(one(session, gate)) for _ in range(count)]
            await asyncio.sleep(0)
            gate.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout_s + 10)
    return answers


class RssSampler:
    """Samples a server's RSS every ``interval`` seconds in the background; keeps the peak."""

    def __init__(self, read_mb: Callable[[], float], interval: float = 0.05) -> None:
        self.read_mb = read_mb
        self.interval = interval
        self.peak_mb = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self.read_mb())
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> "RssSampler":
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.peak_mb = max(self.peak_mb, self.read_mb())
