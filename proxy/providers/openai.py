"""OpenAI, and any server that speaks OpenAI's API (``openai_compatible``).

Requests go upstream as the caller wrote them, unknown fields included; only
``model`` (the upstream id) and, for streams, ``stream_options.include_usage``
are set by the gateway. Stream chunks are forwarded byte for byte except the
usage chunk, which is kept for accounting and passed on only if the caller
asked for it.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import aiohttp
import orjson

from proxy.providers.base import (
    ChatStream,
    ProviderAdapter,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
    connection_error,
    upstream_http_error,
)
from proxy.sse import DONE, SSEParser, SSEProtocolError

_NULL_USAGE = (b'"usage":null', b'"usage": null')


class OpenAIAdapter(ProviderAdapter):
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
        return await self._post_json(self.chat_url(call), self.chat_body(call, False), call)

    async def embeddings(self, call: UpstreamCall) -> dict[str, Any]:
        """POST an embeddings request; ``encoding_format`` is passed as sent."""
        call.body["model"] = call.model.upstream_model
        return await self._post_json(self.embeddings_url(call), call.body, call)

    async def _post_json(self, url: str, body: dict[str, Any], call: UpstreamCall) -> dict[str, Any]:
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(
            total=call.timeout_or(self.api.timeout), sock_connect=self.api.connect_timeout
        )
        try:
            async with self.session.post(
                url, data=orjson.dumps(body), headers=self.request_headers(call), timeout=timeout
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise upstream_http_error(
                        self.name, resp.status, raw, resp.headers.get("Retry-After")
                    )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise connection_error(self.name, exc) from None
        return self._parse_answer(raw)

    def _parse_answer(self, raw: bytes) -> dict[str, Any]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, f"Upstream '{self.name}' sent an answer that is not JSON.",
                code="upstream_bad_response", retryable=True,
            ) from None
        if not isinstance(doc, dict):
            raise UpstreamError(502, f"Upstream '{self.name}' sent an unexpected answer.",
                                code="upstream_bad_response", retryable=True)
        if "error" in doc and "choices" not in doc and "data" not in doc:
            raise upstream_http_error(self.name, 502, raw)
        return doc

    # ------------------------------------------------------------ streams

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """Open the upstream stream; fail with :class:`UpstreamError` if it cannot start."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.api.connect_timeout,
            sock_read=call.timeout_or(self.api.timeout),
        )
        try:
            resp = await self.session.post(
                self.chat_url(call),
                data=orjson.dumps(self.chat_body(call, True)),
                headers=self.request_headers(call),
                timeout=timeout,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise connection_error(self.name, exc) from None
        if resp.status >= 300:
            try:
                raw = await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                raw = b""
            finally:
                resp.release()
            raise upstream_http_error(self.name, resp.status, raw, resp.headers.get("Retry-After"))
        stream = ChatStream(release=resp.close)
        stream.chunks = self._read_chunks(resp, call, stream)
        return stream

    async def _read_chunks(
        self, resp: aiohttp.ClientResponse, call: UpstreamCall, stream: ChatStream
    ) -> AsyncIterator[bytes]:
        parser = SSEParser()
        finished = False
        try:
            async for piece in resp.content.iter_any():
                for event in parser.feed(piece):
                    data = event.data
                    if data == DONE:
                        finished = True
                        return
                    chunk = self.handle_chunk(data, call, stream)
                    if chunk is not None:
                        yield chunk
            for event in parser.flush():
                if event.data == DONE:
                    finished = True
                    return
            raise StreamInterrupted(UpstreamError(
                502, f"Upstream '{self.name}' ended the stream before it finished.",
                code="upstream_stream_cut", retryable=True,
            ))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise StreamInterrupted(connection_error(self.name, exc)) from None
        except SSEProtocolError as exc:
            raise StreamInterrupted(UpstreamError(
                502, f"Upstream '{self.name}' sent a malformed stream: {exc}",
                code="upstream_bad_response", retryable=True,
            )) from None
        finally:
            if finished:
                resp.release()
            else:
                resp.close()

    def handle_chunk(self, data: bytes, call: UpstreamCall, stream: ChatStream) -> bytes | None:
        """Inspect one upstream chunk: keep usage, surface errors, drop unasked usage chunks."""
        if b'"error"' in data:
            doc = _loads_or_none(data)
            if isinstance(doc, dict) and doc.get("error"):
                error = upstream_http_error(self.name, 502, data)
                raise StreamInterrupted(error)
        if b'"usage"' in data and not any(marker in data for marker in _NULL_USAGE):
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
