"""OpenAI, and any server that speaks OpenAI's API (``openai_compatible``).

Requests go upstream as the caller wrote them, unknown fields included; only
``model`` (the upstream id), for streams ``stream_options.include_usage``, and,
for a request with no output limit to a model with ``default_max_tokens``, that
limit (as ``max_completion_tokens`` for OpenAI itself, ``max_tokens`` for the
servers that copy its API) are set by the gateway. Stream chunks are forwarded byte for byte except the
usage chunk, which is kept for accounting and passed on only if the caller
asked for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.formats.sse import DONE, Event
from proxy.providers.base import ChatStream, StreamInterrupted, UpstreamCall
from proxy.providers.http import HttpAdapter, StreamProgress, as_dict


class OpenAIAdapter(HttpAdapter):
    """Adapter for OpenAI's own API."""

    type_name = "openai"
    default_base_url = "https://api.openai.com/v1"
    chat_path = "/chat/completions"
    embeddings_path = "/embeddings"
    output_limit_field = "max_completion_tokens"
    """Where a model's ``default_max_tokens`` goes (OpenAI's o-series refuse ``max_tokens``)."""

    # ------------------------------------------------------------ requests

    def request_headers(self, call: UpstreamCall) -> dict[str, str]:
        """Headers for the upstream: our key (as :meth:`key_header` says), never the caller's."""
        headers = {"Content-Type": "application/json", "X-Request-Id": call.request_id}
        key = self.key_for(call)
        if key:
            headers.update(self.key_header(key))
        headers.update(self.config.headers)
        return headers

    def key_header(self, key: str) -> dict[str, str]:
        """How the key travels: ``Authorization: Bearer`` for OpenAI's protocol."""
        return {"Authorization": f"Bearer {key}"}

    def chat_url(self, call: UpstreamCall) -> str:
        """Where chat completions go."""
        return self.config.base_url + self.chat_path

    def embeddings_url(self, call: UpstreamCall) -> str:
        """Where embeddings go."""
        return self.config.base_url + self.embeddings_path

    def chat_body(self, call: UpstreamCall, stream: bool) -> dict[str, Any]:
        """The upstream body: the caller's, with the upstream model id."""
        body = call.body
        body["model"] = call.model.upstream_model
        default = call.model.default_max_tokens
        if default is not None and body.get("max_completion_tokens") is None and body.get("max_tokens") is None:
            body[self.output_limit_field] = default
        if stream:
            options = body.get("stream_options")
            body["stream_options"] = {**options, "include_usage": True} if isinstance(
                options, dict
            ) else {"include_usage": True}
        return body

    # ------------------------------------------------------------ plain calls

    async def chat(self, call: UpstreamCall) -> dict[str, Any]:
        """POST a chat completion and return the upstream's JSON answer."""
        payload = orjson.dumps(self.chat_body(call, False))
        return self._parse_answer(await self.post_for_body(self.chat_url(call), payload, call))

    async def embeddings(self, call: UpstreamCall) -> dict[str, Any]:
        """POST an embeddings request; ``encoding_format`` is passed as sent."""
        call.body["model"] = call.model.upstream_model
        payload = orjson.dumps(call.body)
        return self._parse_answer(await self.post_for_body(self.embeddings_url(call), payload, call))

    def _parse_answer(self, raw: bytes) -> dict[str, Any]:
        doc = as_dict(_loads_or_none(raw))
        if doc is None:
            raise self.bad_response("an answer that is not a JSON object")
        if "error" in doc and "choices" not in doc and "data" not in doc:
            raise self.upstream_error(502, raw)
        return doc

    # ------------------------------------------------------------ streams

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """Open the upstream stream; fail with :class:`UpstreamError` if it cannot start."""
        return await self.open_stream(self.chat_url(call), orjson.dumps(self.chat_body(call, True)), call)

    def take_batch(self, events: list[Event], call: UpstreamCall, stream: ChatStream,
                   progress: StreamProgress) -> tuple[list[bytes], StreamInterrupted | None]:
        """The chunks of one read's events; ``[DONE]`` finishes the stream."""
        if len(events) == 1 and events[0].data != DONE:  # the usual read: one chunk
            try:
                chunk = self.handle_chunk(events[0].data, call, stream)
            except StreamInterrupted as exc:
                return [], exc
            return ([chunk] if chunk is not None else []), None
        batch: list[bytes] = []
        for event in events:
            if event.data == DONE:
                progress.finished = True
                return batch, None
            try:
                chunk = self.handle_chunk(event.data, call, stream)
            except StreamInterrupted as exc:
                return batch, exc
            if chunk is not None:
                batch.append(chunk)
        return batch, None

    def handle_chunk(self, data: bytes, call: UpstreamCall, stream: ChatStream) -> bytes | None:
        """Inspect one upstream chunk: redact secrets, keep usage, surface errors.

        The usage stays with the gateway (``stream.usage``) unless the call asks
        for it (``include_usage``): a usage-only chunk is dropped, and usage on a
        chunk that also carries choices (vLLM's continuous usage stats) is taken
        off it, so that a caller who gets the gateway's own usage chunk never
        counts tokens twice.
        """
        data = self.redactor.scrub(data)
        if b'"error"' in data:
            doc = _loads_or_none(data)
            if isinstance(doc, dict) and doc.get("error"):
                raise StreamInterrupted(self.upstream_error(502, data))
        if b'"usage"' in data and b'"usage":null' not in data and b'"usage": null' not in data:
            doc = _loads_or_none(data)
            if isinstance(doc, dict) and isinstance(doc.get("usage"), dict):
                stream.usage = doc["usage"]
                if not call.include_usage:
                    if not doc.get("choices"):
                        return None
                    doc["usage"] = None
                    return orjson.dumps(doc)
        return data


def _loads_or_none(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Any server that speaks OpenAI's API (vLLM, llama.cpp, Ollama, LM Studio, TGI): key optional."""

    type_name = "openai_compatible"
    default_base_url = None
    needs_key = False
    output_limit_field = "max_tokens"
