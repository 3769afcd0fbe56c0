"""The HTTP server under the app: OpenAI-shaped errors for what aiohttp refuses before routing.

aiohttp's HTTP parser refuses some requests before any middleware runs:
header lines over 8 KiB, more than 128 headers, malformed request lines. It
answers them with a plain-text 400. :class:`GatewayRunner` serves the app
through a request handler that answers them in the gateway's own error shape
instead (``431 headers_too_large`` or ``400 bad_http_request``) and writes
their request log line, so every request, even an unparseable one, gets an
OpenAI-shaped answer and exactly one log line.

The wait for a request is bounded too: a connection that has not sent a
complete request within ``api.idle_timeout`` seconds (an idle keep-alive
connection, or a client that never finishes its headers) is closed.
"""

from __future__ import annotations

import os

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from proxy.errors import ErrorCode, GatewayError
from proxy.ids import new_request_id
from proxy.observability.logs import timestamp, write_line

_PID = os.getpid()


def refusal_for(status: int, exc: BaseException | None) -> GatewayError:
    """The gateway's error for a request that aiohttp could not parse (or failed to handle)."""
    if isinstance(exc, LineTooLong) or (isinstance(exc, BadHttpMessage) and "headers" in str(exc).lower()):
        return GatewayError(431, "The request's headers are too large (at most 128 headers of at "
                            "most 8190 bytes each); send fewer or smaller headers.",
                            code=ErrorCode.HEADERS_TOO_LARGE)
    if 400 <= status < 500:
        return GatewayError(status, "The request is not valid HTTP/1.1; check the request line "
                            "and the headers.", code=ErrorCode.BAD_HTTP_REQUEST)
    return GatewayError(500, "The gateway failed while reading this request.", code=ErrorCode.INTERNAL_ERROR)


class GatewayRequestHandler(RequestHandler):
    """aiohttp's request handler, answering its own refusals in the gateway's error shape."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Log as aiohttp does, then answer with an OpenAI-shaped error and one request log line."""
        super().handle_error(request, status, exc, message)  # logs; raises if an answer was already sent
        error = refusal_for(status, exc)
        response = error.to_response()
        response.force_close()
        write_line({
            "time": timestamp(), "level": "WARNING", "event": "request",
            "request_id": new_request_id(), "pid": _PID, "method": "", "path": "",
            "status": error.status, "latency_ms": 0.0, "error": error.code,
        })
        return response


class GatewayServer(web.Server):
    """aiohttp's low-level server, making :class:`GatewayRequestHandler` protocols."""

    def __call__(self) -> RequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections use :class:`GatewayRequestHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GatewayServer  # same state, our protocol factory
        return server


BIND_HOST = web.AppKey("bind_host", str)
"""The address the API listens on (the metrics listener binds the same one)."""
