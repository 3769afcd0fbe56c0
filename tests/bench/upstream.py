"""A fast local upstream speaking OpenAI's chat completions format, and Anthropic's Messages API.

``POST /v1/messages`` answers a small static Anthropic ``message`` with
``usage`` (plain only: the Messages phase measures plain requests).

``POST /v1/chat/completions``:

* plain: a small static JSON answer with ``usage``; a ``bench_sleep_ms`` body
  field makes it wait that long first (a slow upstream, for admission control);
* ``stream: true``: ``bench_chunks`` chunks (default ``--chunks``) sent
  ``bench_delay_ms`` apart (default ``--delay-ms``), then the usage chunk if
  ``stream_options.include_usage``, then ``data: [DONE]``.

Run: ``python -m tests.bench.upstream --port 0``; it prints one JSON line
``{"event": "listening", "port": N}`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from aiohttp import web

from tests.bench.listen import listen_forever

USAGE = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
PLAIN = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                 "finish_reason": "stop"}],
    "usage": USAGE,
})
_HEAD = b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model",'
ROLE_CHUNK = (b"data: " + _HEAD
              + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n')
TOKEN_CHUNK = b"data: " + _HEAD + b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n'
LAST_CHUNK = b"data: " + _HEAD + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE_CHUNK = b"data: " + _HEAD + b'"choices":[],"usage":' + orjson.dumps(USAGE) + b"}\n\n"
DONE = b"data: [DONE]\n\n"
MESSAGE = orjson.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench-claude",
    "content": [{"type": "text", "text": "Hello from the bench upstream."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 9},
})


def stream_chunks(count: int) -> list[bytes]:
    """The ``count`` content chunks of one stream: role first, finish last."""
    if count <= 1:
        return [LAST_CHUNK]
    return [ROLE_CHUNK, *([TOKEN_CHUNK] * (count - 2)), LAST_CHUNK]


def make_app(chunks: int, delay_ms: float) -> web.Application:
    """The upstream app; ``chunks`` and ``delay_ms`` are the stream defaults."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not body.get("stream"):
            sleep_ms = body.get("bench_sleep_ms")
            if sleep_ms:
                await asyncio.sleep(float(sleep_ms) / 1000)
            return web.Response(body=PLAIN, content_type="application/json")
        count = int(body.get("bench_chunks") or chunks)
        delay = float(body.get("bench_delay_ms") if body.get("bench_delay_ms") is not None else delay_ms) / 1000
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for index, chunk in enumerate(stream_chunks(count)):
            if index and delay > 0:
                await asyncio.sleep(delay)
            await response.write(chunk)
        await response.write((USAGE_CHUNK + DONE) if usage else DONE)
        await response.write_eof()
        return response

    async def messages(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=MESSAGE, content_type="application/json")

    app = web.Application()
    async def traces(request: web.Request) -> web.Response:
        await request.read()  # an OTLP/HTTP collector that keeps nothing (--tracing)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    return app


async def serve(port: int, chunks: int, delay_ms: float) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    await listen_forever(make_app(chunks, delay_ms), port)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=20, help="stream chunks when the body sets no bench_chunks")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="ms between stream chunks by default")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.chunks, args.delay_ms))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
