"""Anthropic's Messages API (``type: anthropic``): the HTTP adapter.

Callers speak OpenAI Chat Completions; this adapter sends each request to
``POST {base_url}/v1/messages`` with the provider's ``x-api-key`` (never the
caller's credentials) and hands the answer back in OpenAI's shape. The
translation itself lives in :mod:`proxy.formats.anthropic` as pure functions
(request, answer and stream event mappings, documented there).

Anthropic has no embeddings endpoint: embeddings requests get a 400.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson
from multidict import CIMultiDict

from proxy.errors import ErrorCode, GatewayError
from proxy.formats.anthropic.request import to_anthropic_request
from proxy.formats.anthropic.response import to_openai_response
from proxy.formats.anthropic.stream import StreamTranslator
from proxy.formats.sse import Event
from proxy.providers.base import (
    ChatStream,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
)
from proxy.providers.http import HttpAdapter

ANTHROPIC_VERSION = "2023-06-01"

# The HTTP status Anthropic uses for each error type, for errors that arrive
# inside a 200 answer (a stream's ``error`` event).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicAdapter(HttpAdapter):
    """Adapter for Anthropic's Messages API."""

    type_name = "anthropic"
    default_base_url = "https://api.anthropic.com"

    @classmethod
    def config_problem(cls, body: Mapping[str, Any]) -> str | None:
        """Anthropic accepts a temperature from 0 to 1 only."""
        for name, settings in body.get("models", {}).items():
            temperature = settings.get("temperature", 0)
            if temperature > 1:
                return f"models.{name}.temperature: Anthropic accepts 0 to 1, not {temperature}"
        return None

    def request_headers(self, call: UpstreamCall) -> CIMultiDict[str]:
        """Headers for Anthropic: our key, never the caller's; configured headers win."""
        headers: CIMultiDict[str] = CIMultiDict({
            "content-type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            "X-Request-Id": call.request_id,
        })
        key = self.key_for(call)
        if key:
            headers["x-api-key"] = key
        for name, value in self.config.headers.items():
            headers[name] = value
        return headers

    def messages_url(self) -> str:
        """Where messages go (a base URL already ending in ``/v1`` is accepted too)."""
        base = self.config.base_url
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    async def embeddings(self, call: UpstreamCall) -> dict[str, Any]:
        """Anthropic has no embeddings endpoint: always a 400."""
        raise GatewayError(
            400,
            f"Provider '{self.name}' is Anthropic, which has no embeddings endpoint; "
            "choose an embeddings model from another provider.",
            code=ErrorCode.UNSUPPORTED_ENDPOINT,
            param="model",
        )

    # ------------------------------------------------------------ plain calls

    async def chat(self, call: UpstreamCall) -> dict[str, Any]:
        """POST a message and return it as a ``chat.completion``."""
        payload = orjson.dumps(to_anthropic_request(call.body, call.model))
        raw = await self.post_for_body(self.messages_url(), payload, call)
        return to_openai_response(self._parse_answer(raw))

    def _parse_answer(self, raw: bytes) -> dict[str, Any]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("type") == "error":
            raise self.error_from(raw, doc)
        if not isinstance(doc, dict) or not isinstance(doc.get("content"), list):
            raise self.bad_response("an answer that is not a message")
        return doc

    def error_from(self, raw: bytes, doc: dict[str, Any]) -> UpstreamError:
        """The error for an Anthropic error document that came with HTTP 200."""
        kind = (doc.get("error") or {}).get("type") if isinstance(doc.get("error"), dict) else None
        return self.upstream_error(ERROR_STATUS.get(kind, 500) if isinstance(kind, str) else 500, raw)

    # ------------------------------------------------------------ streams

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """Open the upstream stream; fail with :class:`UpstreamError` if it cannot start."""
        payload = orjson.dumps(to_anthropic_request(call.body, call.model, stream=True))
        return await self.open_stream(self.messages_url(), payload, call)

    def stream_progress(self, call: UpstreamCall) -> StreamTranslator:
        """The translator of this stream's events (``finished`` on ``message_stop``)."""
        return StreamTranslator(include_usage=call.include_usage)

    def take_batch(self, events: list[Event], call: UpstreamCall, stream: ChatStream,
                   progress: StreamTranslator) -> tuple[list[bytes], StreamInterrupted | None]:
        """The OpenAI chunks that one read's Anthropic events translate to."""
        batch: list[bytes] = []
        for event in events:
            try:
                batch += self._on_event(event, progress, stream)
            except StreamInterrupted as exc:
                return batch, exc
            if progress.finished:
                break
        return batch, None

    def _on_event(
        self, event: Event, translator: StreamTranslator, stream: ChatStream
    ) -> list[bytes]:
        """The chunk payloads for one SSE event; errors end the stream."""
        if not event.data:
            return []
        data = self.redactor.scrub(event.data)
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise StreamInterrupted(self.bad_response(f"a stream event '{event.name}' that is not JSON")) from None
        if not isinstance(doc, dict):
            raise StreamInterrupted(self.bad_response(f"a stream event '{event.name}' that is not an object"))
        doc.setdefault("type", event.name)
        if doc["type"] == "error":
            raise StreamInterrupted(self.error_from(data, doc))
        chunks = translator.translate(doc)
        if translator.finished:
            stream.usage = translator.openai_usage()
        return [orjson.dumps(chunk) for chunk in chunks]

