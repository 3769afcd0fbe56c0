"""Anthropic's Messages API (``type: anthropic``): the HTTP adapter.

Callers speak OpenAI Chat Completions; this adapter sends each request to
``POST {base_url}/v1/messages`` with the provider's ``x-api-key`` (never the
caller's credentials) and hands the answer back in OpenAI's shape. The
translation itself lives in :mod:`proxy.formats.anthropic` as pure functions
(request, answer and stream event mappings, documented there).

Callers of the Messages API (``POST /v1/messages`` and its ``count_tokens``)
are relayed natively instead (:meth:`AnthropicAdapter.native_message`,
:meth:`~AnthropicAdapter.native_stream`, :meth:`~AnthropicAdapter.native_count_tokens`):
the caller's body as sent but for the upstream model id, its ``anthropic-*``
headers, and the answer's bytes back untranslated (a stream's events as they
arrive, read only for their usage and their end).

Anthropic has no embeddings endpoint: embeddings requests get a 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import orjson
from multidict import CIMultiDict

from proxy.errors import ErrorCode, GatewayError
from proxy.formats.anthropic.request import to_anthropic_request
from proxy.formats.anthropic.response import is_count, to_openai_response, to_openai_usage
from proxy.formats.anthropic.stream import StreamTranslator
from proxy.formats.sse import Event
from proxy.optimise.prompt_cache import place_breakpoints
from proxy.providers.base import (
    ChatStream,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
)
from proxy.providers.http import HttpAdapter, StreamProgress

if TYPE_CHECKING:
    from proxy.config import ModelConfig

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
        if call.forward_headers:  # a Messages caller's own anthropic-version, anthropic-beta...
            headers.update(call.forward_headers)
        key = self.key_for(call)
        if key:
            headers["x-api-key"] = key
        for name, value in self.config.headers.items():
            headers[name] = value
        return headers

    def upstream_error(self, status: int, body: bytes, retry_after: str | None = None) -> UpstreamError:
        """The error for a non-2xx answer; a refusal of the caller's own request keeps Anthropic's document.

        Claude Code recovers from some refusals (a thinking signature, a field
        its model does not take) by matching their wording, so a Messages
        caller gets such a document as it came (secrets redacted).
        """
        error = super().upstream_error(status, body, retry_after)
        if 400 <= status < 500 and status not in (401, 403) and error.status == status:
            error.document = anthropic_error_document(self.redactor.scrub(body))
        return error

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
        payload = orjson.dumps(with_cache_breakpoints(to_anthropic_request(call.body, call.model), call.model))
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
        payload = orjson.dumps(with_cache_breakpoints(to_anthropic_request(call.body, call.model, stream=True),
                                                      call.model))
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


    # ------------------------------------------------------------ Messages callers, natively

    def native_payload(self, call: UpstreamCall) -> bytes:
        """The caller's Messages body as sent, with the upstream model id in the place of its ``model``."""
        body = call.body
        upstream = call.model.upstream_model
        if body.get("model") != upstream:
            body = {**body, "model": upstream}
        return orjson.dumps(with_cache_breakpoints(body, call.model))

    async def native_message(self, call: UpstreamCall, query: str = "") -> tuple[bytes, dict[str, Any]]:
        """POST a Messages caller's request as it is: the answer's bytes as they came, and parsed."""
        raw = await self.post_for_body(self.messages_url() + query, self.native_payload(call), call)
        return raw, self._parse_answer(raw)

    async def native_stream(self, call: UpstreamCall, query: str = "") -> ChatStream:
        """Open a Messages caller's stream: batches of its SSE events, framed, as they arrive.

        ``usage`` follows ``message_start`` and ``message_delta`` (in OpenAI's
        shape, for pricing); ``message_stop`` ends the stream; an ``error``
        event ends it with :class:`StreamInterrupted` whose error keeps the
        event's data as its ``document``.
        """
        resp = await self.post(self.messages_url() + query, self.native_payload(call), call, stream=True)
        stream = ChatStream(release=resp.close)
        stream.chunks = self.read_chunks(resp, call, stream, take=self.take_events, progress=RelayProgress())
        return stream

    async def native_count_tokens(self, call: UpstreamCall, query: str = "") -> bytes:
        """POST a ``count_tokens`` request as it is; the answer's bytes (``{"input_tokens": n}``)."""
        raw = await self.post_for_body(self.messages_url() + "/count_tokens" + query,
                                       self.native_payload(call), call)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("type") == "error":
            raise self.error_from(raw, doc)
        if not isinstance(doc, dict) or not is_count(doc.get("input_tokens")):
            raise self.bad_response("a token count that is not {\"input_tokens\": n}")
        return raw

    def take_events(self, events: list[Event], call: UpstreamCall, stream: ChatStream,
                    progress: "RelayProgress") -> tuple[list[bytes], StreamInterrupted | None]:
        """One read's events, framed again as they came (secrets redacted), for a native stream."""
        batch: list[bytes] = []
        for event in events:
            data = event.data
            if not data:
                continue
            data = self.redactor.scrub(data)
            name = event.name or _event_type(data)
            if name in _READ_EVENTS:
                try:
                    doc = orjson.loads(data)
                except orjson.JSONDecodeError:
                    return batch, StreamInterrupted(self.bad_response(f"a stream event '{name}' that is not JSON"))
                if not isinstance(doc, dict):
                    return batch, StreamInterrupted(self.bad_response(f"a stream event '{name}' that is not an object"))
                if name == "error":
                    error = self.error_from(data, doc)
                    error.document = data
                    return batch, StreamInterrupted(error)
                progress.take_usage(doc, stream)
            batch.append(_frame(name, data))
            if name == "message_stop":
                progress.finished = True
                break
        return batch, None


def with_cache_breakpoints(body: dict[str, Any], model: "ModelConfig") -> dict[str, Any]:
    """``body`` (a Messages request) with cache breakpoints placed, when ``model`` has
    ``prompt_caching: "auto"`` (:func:`proxy.optimise.prompt_cache.place_breakpoints`: never over the
    caller's own ``cache_control``)."""
    return place_breakpoints(body).body if model.prompt_caching else body


def anthropic_error_document(body: bytes) -> bytes | None:
    """``body`` if it is an Anthropic error document (``{"type": "error", "error": {...}}``), else ``None``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and doc.get("type") == "error" and isinstance(doc.get("error"), dict):
        return body
    return None


class RelayProgress(StreamProgress):
    """A native stream's progress: finished at ``message_stop``, and the usage reported so far."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        super().__init__()
        self.usage: dict[str, int] = {}

    def take_usage(self, doc: dict[str, Any], stream: ChatStream) -> None:
        """Counts from ``message_start`` or ``message_delta`` (cumulative: later ones win), priced as OpenAI's."""
        holder = doc.get("message") if doc.get("type", "message_start") == "message_start" else doc
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if not isinstance(usage, dict):
            return
        self.usage.update({k: v for k, v in usage.items() if is_count(v)})
        stream.usage = to_openai_usage(self.usage)


_READ_EVENTS = frozenset({"message_start", "message_delta", "error"})
"""The events a native relay parses: the rest pass as bytes."""
_FRAMES: dict[str, bytes] = {}


def _frame(name: str, data: bytes) -> bytes:
    """One event as SSE bytes, ``event: <name>`` then ``data: <data>``."""
    head = _FRAMES.get(name)
    if head is None:
        head = b"event: " + name.encode("utf-8", "replace") + b"\ndata: "
        if len(_FRAMES) < 64:
            _FRAMES[name] = head
    return head + data + b"\n\n"


def _event_type(data: bytes) -> str:
    """The ``type`` of an event that came without an ``event:`` line (``message`` when it has none)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "message"
    kind = doc.get("type") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) and kind else "message"
