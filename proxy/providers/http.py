"""The HTTP plumbing every network adapter shares.

Posting a request with the right timeouts, turning connection failures and
non-2xx answers into :class:`UpstreamError`, and reading an event stream as it
arrives, with network and protocol failures turned into
:class:`StreamInterrupted`. Adapters keep only what differs between
upstreams: URLs, headers, and the translation of bodies and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any, AsyncIterator, Iterator, Mapping

import aiohttp

from proxy.providers.base import (
    ChatStream,
    ProviderAdapter,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
    connection_error,
    upstream_http_error,
)
from proxy.sse import SSEProtocolError


class HttpAdapter(ProviderAdapter):
    """A provider reached over HTTP through the pooled session of its origin."""

    def request_headers(self, call: UpstreamCall) -> Mapping[str, str]:
        """Headers for the upstream request (each adapter says how its key is sent)."""
        raise NotImplementedError

    async def post(self, url: str, payload: bytes, call: UpstreamCall, *, stream: bool) -> aiohttp.ClientResponse:
        """POST ``payload``; return the response once its status is 2xx.

        A plain call is bounded as a whole by the model's timeout; a stream only
        in the wait for its headers and between reads, never in total.
        """
        assert self.session is not None
        timeout = client_timeout(call.timeout_or(self.api.timeout), self.api.connect_timeout, stream)
        try:
            resp = await self.session.post(url, data=payload, headers=self.request_headers(call),
                                           timeout=timeout)
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
        return resp

    async def open_stream(self, url: str, payload: bytes, call: UpstreamCall) -> ChatStream:
        """POST a streaming request and hand its chunks to :meth:`read_chunks` as they arrive."""
        resp = await self.post(url, payload, call, stream=True)
        stream = ChatStream(release=resp.close)
        stream.chunks = self.read_chunks(resp, call, stream)
        return stream

    def read_chunks(self, resp: aiohttp.ClientResponse, call: UpstreamCall,
                    stream: ChatStream) -> AsyncIterator[list[bytes]]:
        """Batches of OpenAI chunk payloads translated from ``resp``'s stream, one per network read
        (each adapter its own)."""
        raise NotImplementedError

    async def post_for_body(self, url: str, payload: bytes, call: UpstreamCall) -> bytes:
        """POST ``payload`` and return the whole 2xx answer body."""
        resp = await self.post(url, payload, call, stream=False)
        try:
            return await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise connection_error(self.name, exc) from None
        finally:
            resp.release()

    @contextlib.contextmanager
    def stream_failures(self) -> Iterator[None]:
        """Around the reading of a stream: network and protocol failures become :class:`StreamInterrupted`.

        A context manager rather than a wrapping generator, so that relaying a
        chunk costs no extra generator hop.
        """
        try:
            yield
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise StreamInterrupted(connection_error(self.name, exc)) from None
        except SSEProtocolError as exc:
            raise StreamInterrupted(self.bad_response(f"a malformed stream: {exc}")) from None

    def stream_cut(self) -> StreamInterrupted:
        """The failure of a stream that ended before the upstream said it was done."""
        return StreamInterrupted(UpstreamError(
            502, f"Upstream '{self.name}' ended the stream before it finished.",
            code="upstream_stream_cut", retryable=True))

    def bad_response(self, what: str) -> UpstreamError:
        """The failure of an answer that breaks the upstream's protocol (worth a retry)."""
        return UpstreamError(502, f"Upstream '{self.name}' sent {what}.",
                             code="upstream_bad_response", retryable=True)


@functools.lru_cache(maxsize=256)
def client_timeout(limit: float, connect: float, stream: bool) -> aiohttp.ClientTimeout:
    """The (immutable, so shared) timeout of a plain call or a stream with these limits."""
    if stream:
        return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=limit)
    return aiohttp.ClientTimeout(total=limit, sock_connect=connect)


def finish_response(resp: aiohttp.ClientResponse, finished: bool) -> None:
    """Give a finished response's connection back to the pool; close one cut short."""
    if finished:
        resp.release()
    else:
        resp.close()


def as_dict(doc: Any) -> dict[str, Any] | None:
    """``doc`` if it is a JSON object, else ``None``."""
    return doc if isinstance(doc, dict) else None
