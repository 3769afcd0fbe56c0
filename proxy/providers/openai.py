"""OpenAI, and any server that speaks OpenAI's API (``openai_compatible``).

Requests go upstream as the caller wrote them, unknown fields included; only
``model`` (the upstream id) and, for streams, ``stream_options.include_usage``
are set by the gateway. Stream chunks are forwarded byte for byte except the
usage chunk, which is kept for accounting and passed on only if the caller
asked for it.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import aiohttp
import orjson

from proxy.providers.base import ChatStream, StreamInterrupted, UpstreamCall
from proxy.providers.http import HttpAdapter, as_dict, finish_response
from proxy.sse import DONE, Event


class OpenAIAdapter(HttpAdapter):
    """Adapter for OpenAI's own API and OpenAI-compatible servers."""

    chat_path = "/chat/completions"
    embeddings_path = "/embeddings"

    # ------------------------------------------------------------ requests

    def request_headers(self, call: UpstreamCall) -> dict[str, str]:
        """Headers for the upstream: our key, never the caller's."""
        headers = {"Content-Type": "application/json", "X-Request-Id": call.request_id}
        key = self.key_for(call)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(self.config.headers)
        return headers

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

    async def read_chunks(
        self, resp: aiohttp.ClientResponse, call: UpstreamCall, stream: ChatStream
    ) -> AsyncIterator[list[bytes]]:
        reader = self.event_reader(resp, call)
        finished = False
        try:
            with self.stream_failures():
                while not finished:
                    events = await reader.next_events()
                    if events is None:
                        break
                    if len(events) == 1 and events[0].data != DONE:  # the usual read: one chunk
                        chunk = self.handle_chunk(events[0].data, call, stream)
                        if chunk is not None:
                            yield [chunk]
                        continue
                    batch, finished, failure = self.take_batch(events, call, stream)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
            if not finished:
                raise self.stream_cut()
        finally:
            finish_response(resp, finished)

    def take_batch(self, events: list[Event], call: UpstreamCall, stream: ChatStream
                   ) -> tuple[list[bytes], bool, StreamInterrupted | None]:
        """The chunks of one read's events, whether ``[DONE]`` came, and the failure that ended them.

        A failure is returned rather than raised so that the chunks before it
        still reach the caller.
        """
        batch: list[bytes] = []
        for event in events:
            if event.data == DONE:
                return batch, True, None
            try:
                chunk = self.handle_chunk(event.data, call, stream)
            except StreamInterrupted as exc:
                return batch, False, exc
            if chunk is not None:
                batch.append(chunk)
        return batch, False, None

    def handle_chunk(self, data: bytes, call: UpstreamCall, stream: ChatStream) -> bytes | None:
        """Inspect one upstream chunk: redact secrets, keep usage, surface errors, drop unasked usage chunks."""
        data = self.redactor.scrub(data)
        if b'"error"' in data:
            doc = _loads_or_none(data)
            if isinstance(doc, dict) and doc.get("error"):
                raise StreamInterrupted(self.upstream_error(502, data))
        if b'"usage"' in data and b'"usage":null' not in data and b'"usage": null' not in data:
            doc = _loads_or_none(data)
            if isinstance(doc, dict) and isinstance(doc.get("usage"), dict):
                stream.usage = doc["usage"]
                if not doc.get("choices") and not call.include_usage:
                    return None
        return data


def _loads_or_none(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
