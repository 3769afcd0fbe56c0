"""Serve a benchmark server on 127.0.0.1 until killed, announcing its port on stdout."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web


async def listen_forever(app: web.Application, port: int) -> None:
    """Listen on 127.0.0.1:``port`` (0 picks one), print ``{"event": "listening", "port": N}``, wait."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(orjson.dumps({"event": "listening", "port": runner.addresses[0][1]}).decode(), flush=True)
    await asyncio.Event().wait()
