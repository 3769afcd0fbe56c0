"""Outermost stage: give each request its id and context, turn failures into
errors in the endpoint's own shape (OpenAI's, unless its handler declares
another: the Messages API endpoints answer in Anthropic's), and write the one
JSON log line per request.

The line's level says who has to act on how the request ended
(:func:`request_level`): ``ERROR`` for a 5xx answer and for a stream that
failed after it began (the caller got a broken answer: the operator's
concern), ``WARNING`` for a request cut by the gateway's own shutdown,
``INFO`` for everything else, 4xx included (the caller's own mistake, a
refusal by a limit, or a caller that went away: nothing for the operator to
fix). A line is written when its level passes ``monitoring.log_level``, so at
``WARNING`` only the failures are logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from aiohttp import web

from proxy.context import CONTEXT_KEY, RequestContext
from proxy.errors import ErrorCode, GatewayError, from_http_exception
from proxy.ids import new_request_id
from proxy.lifecycle import LIFECYCLE
from proxy.observability.logs import (
    error_summary,
    is_enabled,
    level_name,
    log_event,
    timestamp,
    write_line,
)
from proxy.observability.observers import OBSERVERS
from proxy.pipeline.attribution import agent_for
from proxy.state import STATE

REQUEST_ID_HEADER = "X-Request-Id"
_MAX_REQUEST_ID = 200
_PID = os.getpid()


def request_id_for(request: web.Request) -> str:
    """The caller's ``X-Request-Id`` if it is sane, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER)
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable() and given.isascii():
        return given
    return new_request_id()


@web.middleware
async def access_log_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Run the rest of the pipeline and account for how it ended."""
    ctx = RequestContext(request_id=request_id_for(request), state=request.app[STATE].current)
    ctx.endpoint = getattr(request.match_info.handler, "endpoint", None)
    ctx.agent = agent_for(request.headers)
    request[CONTEXT_KEY] = ctx
    for observer in request.app[OBSERVERS]:
        observer.request_started(ctx)
    lifecycle = request.app[LIFECYCLE]
    task = lifecycle.enter()
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = _error_response(request, ctx, exc)
    except web.HTTPException as exc:
        response = _error_response(request, ctx, from_http_exception(exc))
    except asyncio.CancelledError:
        if lifecycle.shutting_down:
            _cut_at_shutdown(request, ctx)
        else:
            _client_gone(request, ctx)
        raise
    except ConnectionResetError:
        _client_gone(request, ctx)
        raise
    except Exception as exc:
        log_event("internal_error", logging.ERROR, request_id=ctx.request_id, exception=error_summary(exc))
        response = _error_response(request, ctx, GatewayError(
            500, "The gateway failed while handling this request; it has been logged "
            f"under request id {ctx.request_id}.", code=ErrorCode.INTERNAL_ERROR))
    finally:
        lifecycle.leave(task)
    ctx.status = ctx.status or response.status
    if response.prepared:  # a stream, already written: account for it now
        _finish(request, ctx)
    else:  # aiohttp writes a plain answer once this returns: account for it just after
        asyncio.get_running_loop().call_soon(_finish, request, ctx)
    return response


def _cut_at_shutdown(request: web.Request, ctx: RequestContext) -> None:
    ctx.status = 200 if ctx.first_byte_at is not None else 503
    ctx.error = ErrorCode.GATEWAY_SHUTDOWN
    _finish(request, ctx)


def _client_gone(request: web.Request, ctx: RequestContext) -> None:
    ctx.status = 499
    ctx.error = ErrorCode.CLIENT_DISCONNECTED
    _finish(request, ctx)


def _error_response(request: web.Request, ctx: RequestContext, error: GatewayError) -> web.Response:
    """``error`` in the shape the request's handler declares (``error_response``), else OpenAI's."""
    ctx.error = error.code or error.type
    render = getattr(request.match_info.handler, "error_response", None)
    response = error.to_response() if render is None else render(error, ctx.request_id)
    ctx.status = response.status
    return response


def _finish(request: web.Request, ctx: RequestContext) -> None:
    for observer in request.app[OBSERVERS]:
        observer.request_finished(ctx)
    level = request_level(ctx)
    if is_enabled(level):
        write_line(request_line(request, ctx, level))


def request_level(ctx: RequestContext) -> int:
    """The level of a finished request's log line (see the module docstring)."""
    if ctx.error == ErrorCode.GATEWAY_SHUTDOWN:
        return logging.WARNING
    if ctx.status >= 500 or (ctx.error is not None and ctx.status < 400):  # 5xx, or a stream broken midway
        return logging.ERROR
    return logging.INFO


_OPTIONAL_FIELDS = ("provider", "model", "task_type", "caller", "user", "agent", "cache",
                    "prompt_tokens", "completion_tokens", "cost_usd", "error", "fallback_from",
                    "strategy", "skipped", "trimmed", "saved")
_NONZERO_FIELDS = ("cached_tokens", "cache_write_tokens", "saved_usd")


def request_line(request: web.Request, ctx: RequestContext, level: int = logging.INFO) -> dict[str, object]:
    """The per-request log line at ``level``; never a prompt, an answer or a key."""
    now = time.perf_counter()
    fields: dict[str, object] = {
        "time": timestamp(),
        "level": level_name(level),
        "event": "request",
        "request_id": ctx.request_id,
        "pid": _PID,
        "method": request.method,
        "path": request.path,
        "status": ctx.status,
        "latency_ms": round((now - ctx.started) * 1000, 3),
    }
    if ctx.first_byte_at is not None:
        fields["ttft_ms"] = round((ctx.first_byte_at - ctx.started) * 1000, 3)
    for name in _OPTIONAL_FIELDS:
        value = getattr(ctx, name)
        if value is not None:
            fields[name] = value
    for name in _NONZERO_FIELDS:
        value = getattr(ctx, name)
        if value:
            fields[name] = value
    if ctx.stream:
        fields["stream"] = True
    if ctx.attempts:
        fields["attempts"] = ctx.attempts
    if ctx.notes:
        fields["notes"] = ctx.notes
    return fields


async def add_gateway_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: every answer carries its id, and says who answered."""
    ctx = request.get(CONTEXT_KEY)
    if ctx is None:
        return
    headers = response.headers
    headers[REQUEST_ID_HEADER] = ctx.request_id
    if ctx.limit_headers is not None:
        headers.update(ctx.limit_headers)
    if ctx.cache is not None:
        headers["X-Cache"] = ctx.cache
    if ctx.strategy is not None:  # the routing plan (proxy/optimise/planner.py)
        headers["X-Gateway-Strategy"] = ctx.strategy
    if ctx.skipped is not None:
        headers["X-Gateway-Skipped"] = ctx.skipped
    if ctx.trimmed is not None:
        headers["X-Gateway-Trimmed"] = str(ctx.trimmed)
    if ctx.attempts:
        headers["X-Gateway-Attempts"] = str(len(ctx.attempts))
        if ctx.attempts[-1]["outcome"] == "ok":
            headers["X-Gateway-Provider"] = ctx.provider or ""
            headers["X-Gateway-Model"] = ctx.model or ""
        if ctx.fallback_from:
            headers["X-Gateway-Fallback"] = ctx.fallback_from
