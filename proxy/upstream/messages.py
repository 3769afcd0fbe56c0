"""Answer a Messages API request (``POST /v1/messages``) from any configured model.

The request runs through the same retry and fallback engine as a chat
completion (:func:`proxy.upstream.fallback.run_plan`); only its attempts
differ, one per deployment type:

* an ``anthropic`` deployment gets the request **natively**: the caller's body
  as sent, but for its ``model`` (the deployment's upstream model) and the
  gateway's ``metadata.task_type`` (already taken out before routing), with the
  caller's ``anthropic-*`` headers (``anthropic-version``, ``anthropic-beta``
  and any others: Claude Code's contract asks for them as an open list) and
  nothing else of the caller's (its key never); the answer's bytes come back
  untranslated, read once for their usage;
* any other deployment (``openai``, ``openrouter``, ``azure``,
  ``openai_compatible``, ``mock``) gets it **translated** to Chat Completions
  (:func:`proxy.formats.anthropic.inbound_request.to_chat_request`) through the
  chat attempts of :mod:`proxy.upstream.forwarding`, and its answer translated
  back (:mod:`proxy.formats.anthropic.inbound_response`; streams:
  :mod:`proxy.upstream.messages_stream`).

A plan may mix both: an Anthropic primary falling back to an OpenAI model, or
the reverse, answers in Messages format either way. The translation is made
once, when the first translated deployment is tried: a body the routed model
cannot take is a 400 naming the field before any upstream call; a body only a
fallback cannot take skips that fallback (``unsupported_parameter`` in its
attempt) and the plan goes on. Each translated deployment gets
``reasoning_effort`` only as its model takes it (:mod:`proxy.upstream.reasoning`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson
from aiohttp import web

from proxy.cache.stage import store_answer
from proxy.config import ModelConfig
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.formats.anthropic.inbound_request import to_chat_request
from proxy.formats.anthropic.inbound_response import to_messages_response
from proxy.formats.anthropic.response import to_openai_usage
from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.base import UpstreamCall, UpstreamError
from proxy.upstream.fallback import run_plan
from proxy.upstream.forwarding import (
    ChatAttempt,
    OpenedStream,
    StreamAttempt,
    check_max_tokens,
    first_batch,
    within_limits,
)
from proxy.upstream.health import UPSTREAM_HEALTH
from proxy.upstream.messages_stream import relay_native_stream, relay_translated_stream
from proxy.upstream.reasoning import fit_reasoning
from proxy.usage.costing import COST_HEADER, charge, cost_header

FORWARDED_PREFIX = "anthropic-"
"""A Messages caller's headers with this prefix reach an Anthropic upstream as they came."""


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's ``anthropic-*`` headers (repeated ones joined with commas), printable ASCII only."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if not lowered.startswith(FORWARDED_PREFIX) or not (value.isascii() and value.isprintable()):
            continue
        kept[lowered] = f"{kept[lowered]},{value}" if lowered in kept else value
    return kept


def beta_query(request: web.Request) -> str:
    """``?beta=true`` when the caller sent it (the anthropic SDKs' beta resources and Claude Code do)."""
    return "?beta=true" if request.query.get("beta") == "true" else ""


def is_native(ctx: RequestContext, deployment: ModelConfig) -> bool:
    """True when ``deployment``'s provider speaks the Messages API itself (type ``anthropic``)."""
    return isinstance(ctx.state.adapters[deployment.provider], AnthropicAdapter)


def native_call(ctx: RequestContext, deployment: ModelConfig, api_key: str | None,
                forward: Mapping[str, str]) -> UpstreamCall:
    """The upstream call that relays the caller's own Messages body to ``deployment``."""
    assert ctx.body is not None
    trace = ctx.trace
    return UpstreamCall(model=deployment, body=ctx.body, request_id=ctx.request_id, api_key=api_key,
                        trace_headers=None if trace is None else trace.attempt_started(deployment),
                        forward_headers=forward)


@dataclass(slots=True)
class MessagesAttempt:
    """A plain Messages answer from one deployment: ``(bytes, message)`` natively, else a ``chat.completion``."""

    ctx: RequestContext
    forward: Mapping[str, str]
    query: str = ""
    chat_body: dict[str, Any] | None = field(default=None, init=False)
    refusal: GatewayError | None = field(default=None, init=False)

    def translate_for(self, deployment: ModelConfig) -> None:
        """Translate the body now if ``deployment`` (the routed model) needs it: what it cannot take is a 400."""
        if not is_native(self.ctx, deployment):
            assert self.ctx.body is not None
            self.chat_body = to_chat_request(self.ctx.body)

    def chat_attempt(self, deployment: ModelConfig) -> ChatAttempt:
        """The chat attempt of a translated deployment (the body translated on first use)."""
        if self.chat_body is None and self.refusal is None:
            assert self.ctx.body is not None
            try:
                self.chat_body = to_chat_request(self.ctx.body)
            except GatewayError as exc:
                self.refusal = exc
        if self.chat_body is None:
            assert self.refusal is not None
            raise untranslatable(deployment, self.refusal)
        provider = self.ctx.state.adapters[deployment.provider].config.type
        body = fit_reasoning(self.chat_body, provider, deployment.upstream_model)
        return (StreamAttempt if self.ctx.stream else ChatAttempt)(self.ctx, body)

    async def __call__(self, deployment: ModelConfig, api_key: str | None) -> Any:
        adapter = self.ctx.state.adapters[deployment.provider]
        if isinstance(adapter, AnthropicAdapter):
            return await adapter.native_message(native_call(self.ctx, deployment, api_key, self.forward),
                                                self.query)
        return await self.chat_attempt(deployment)(deployment, api_key)


@dataclass(slots=True)
class MessagesStreamAttempt(MessagesAttempt):
    """A streamed Messages answer from one deployment, opened and read up to its first events or chunks."""

    async def __call__(self, deployment: ModelConfig, api_key: str | None) -> OpenedStream:
        adapter = self.ctx.state.adapters[deployment.provider]
        if not isinstance(adapter, AnthropicAdapter):
            return await self.chat_attempt(deployment)(deployment, api_key)  # type: ignore[no-any-return]
        stream = await adapter.native_stream(native_call(self.ctx, deployment, api_key, self.forward),
                                             self.query)
        try:
            return OpenedStream(stream, await first_batch(stream, deployment.provider))
        except BaseException:
            await stream.aclose()
            raise


def untranslatable(deployment: ModelConfig, refusal: GatewayError) -> UpstreamError:
    """The failed attempt of a fallback that cannot take the caller's body (the plan goes on)."""
    return UpstreamError(502, f"The request cannot be sent to the fallback '{deployment.qualified_name}': "
                         f"{refusal.message}", code=ErrorCode.UNSUPPORTED_PARAMETER, param=refusal.param,
                         retryable=False)


async def complete_messages(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    """Answer a Messages request, plain or streamed, with retries and fallback."""
    assert ctx.route is not None and ctx.body is not None
    check_max_tokens(ctx.body, ctx.route.model)  # the routed model's limit, checked once
    plan = within_limits(ctx.route.candidates, ctx.body)
    health = request.app[UPSTREAM_HEALTH]
    forward = forwarded_headers(request.headers)
    if ctx.stream:
        streams = MessagesStreamAttempt(ctx, forward, beta_query(request))
        streams.translate_for(plan[0])
        opened = await run_plan(ctx, health, plan, streams)
        if is_native(ctx, opened.deployment):
            return await relay_native_stream(request, ctx, opened.value)
        return await relay_translated_stream(request, ctx, opened.value)
    attempt = MessagesAttempt(ctx, forward, beta_query(request))
    attempt.translate_for(plan[0])
    answered = await run_plan(ctx, health, plan, attempt)
    if is_native(ctx, answered.deployment):
        raw, message = answered.value
        return message_response(request, ctx, raw, message)
    return translated_response(request, ctx, answered.value)


def message_response(request: web.Request, ctx: RequestContext, raw: bytes,
                     message: dict[str, Any]) -> web.Response:
    """An Anthropic upstream's answer as it came, priced from its usage; stored in the cache when asked."""
    cost = charge(ctx, to_openai_usage(message.get("usage")))
    store_answer(request, ctx, raw)
    headers = {COST_HEADER: cost_header(cost)} if cost is not None else None
    return web.Response(body=raw, content_type="application/json", headers=headers)


def translated_response(request: web.Request, ctx: RequestContext, answer: dict[str, Any]) -> web.Response:
    """An OpenAI-style answer as a Messages ``message``, priced from its usage; stored when asked."""
    cost = charge(ctx, answer.get("usage"))
    body = orjson.dumps(to_messages_response(answer))
    store_answer(request, ctx, body)
    headers = {COST_HEADER: cost_header(cost)} if cost is not None else None
    return web.Response(body=body, content_type="application/json", headers=headers)
