"""``POST /v1/messages/count_tokens``: how many input tokens a Messages request holds.

When the routed model is an ``anthropic`` deployment, the request goes to its
upstream's own ``/v1/messages/count_tokens`` natively (the body as sent but
for the model, the caller's ``anthropic-*`` headers), through the retry and
fallback engine over the plan's Anthropic deployments, and its answer comes
back as it came.

For any other model the gateway counts: the request is translated to Chat
Completions as it would be sent (so what the model could not take is a 400
naming the field) and its prompt counted by :mod:`proxy.tokens.counting`, with
the model's own tokenizer for OpenAI's families and the documented estimate
otherwise. The answer is ``{"input_tokens": n}`` with the header
``X-Gateway-Token-Count``: ``exact`` when OpenAI's tokenizer counted a prompt
of text alone (messages, with no tools, tool calls, images or files, whose
renderings OpenAI does not publish), ``estimate`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import orjson
from aiohttp import web

from proxy.config import ModelConfig
from proxy.context import RequestContext
from proxy.formats.anthropic.inbound_request import to_chat_request
from proxy.providers.anthropic import AnthropicAdapter
from proxy.tokens.counting import TokenCounter, counter_for, prompt_tokens
from proxy.upstream.fallback import run_plan
from proxy.upstream.health import UPSTREAM_HEALTH
from proxy.upstream.messages import beta_query, forwarded_headers, is_native, native_call

TOKEN_COUNT_HEADER = "X-Gateway-Token-Count"
EXACT, ESTIMATE = "exact", "estimate"


@dataclass(slots=True)
class CountTokensAttempt:
    """One Anthropic deployment's own count of the caller's request (the answer's bytes)."""

    ctx: RequestContext
    forward: Mapping[str, str]
    query: str = ""

    async def __call__(self, deployment: ModelConfig, api_key: str | None) -> bytes:
        adapter = self.ctx.state.adapters[deployment.provider]
        assert isinstance(adapter, AnthropicAdapter)
        return await adapter.native_count_tokens(native_call(self.ctx, deployment, api_key, self.forward),
                                                 self.query)


async def count_message_tokens(request: web.Request, ctx: RequestContext) -> web.Response:
    """Answer a ``count_tokens`` request: the upstream's own count, or the gateway's."""
    assert ctx.route is not None and ctx.body is not None
    routed = ctx.route.model
    if is_native(ctx, routed):
        plan = tuple(m for m in ctx.route.candidates if is_native(ctx, m)) or (routed,)
        attempt = CountTokensAttempt(ctx, forwarded_headers(request.headers), beta_query(request))
        answered = await run_plan(ctx, request.app[UPSTREAM_HEALTH], plan, attempt)
        return web.Response(body=answered.value, content_type="application/json")
    tokens, method = local_count(ctx.body, routed)
    return web.Response(body=orjson.dumps({"input_tokens": tokens}), content_type="application/json",
                        headers={TOKEN_COUNT_HEADER: method})


def local_count(body: dict[str, Any], model: ModelConfig) -> tuple[int, str]:
    """The input tokens of a Messages ``body`` for ``model``, and ``exact`` or ``estimate``."""
    chat = to_chat_request({**body, "max_tokens": 1})  # the count needs no limit; the translation does
    counter = counter_for(model.upstream_model)
    return prompt_tokens(chat, counter).total, EXACT if counted_exactly(chat, counter) else ESTIMATE


def counted_exactly(chat: dict[str, Any], counter: TokenCounter) -> bool:
    """True when ``counter`` is a model's own tokenizer and the prompt is text alone."""
    if not counter.exact or chat.get("tools") or chat.get("response_format"):
        return False
    for message in chat["messages"]:
        if message.get("tool_calls") or message.get("role") == "tool":
            return False
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") != "text" for part in content):
            return False
    return True
