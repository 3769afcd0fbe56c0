"""The floor: the least a Python/aiohttp pass-through proxy can do.

It reads the body, parses it with orjson, forwards it to the upstream with one
pooled ``ClientSession``, parses the answer and replies; for streams it relays
the bytes as they arrive. Nothing else: no auth, validation, routing, cache,
logs or metrics. The gateway's distance from this floor is its own cost.

Run: ``python -m tests.bench.floor --upstream http://127.0.0.1:N --port 0``;
prints ``{"event": "listening", "port": N}`` on stdout once it accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
import orjson
from aiohttp import web

from tests.bench.listen import listen_forever

SESSION = web.AppKey("session", aiohttp.ClientSession)
STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def make_app(upstream: str) -> web.Application:
    """The floor app forwarding ``POST /v1/chat/completions`` to ``upstream``."""
    url = upstream.rstrip("/") + "/v1/chat/completions"

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        session = request.app[SESSION]
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
            if not body.get("stream"):
                answer = orjson.loads(await resp.read())
                return web.Response(body=orjson.dumps(answer), status=resp.status,
                                    content_type="application/json")
            response = web.StreamResponse(status=resp.status, headers=STREAM_HEADERS)
            await response.prepare(request)
            async for piece in resp.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response

    async def open_session(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30))

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


async def serve(port: int, upstream: str) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    await listen_forever(make_app(upstream), port)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, e.g. http://127.0.0.1:9000")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.upstream))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
