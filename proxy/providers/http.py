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
from typing import Any, AsyncIterator, Callable, Iterator, Mapping

import aiohttp

from proxy.errors import ErrorCode
from proxy.formats.sse import Event, SSEParser, SSEProtocolError
from proxy.providers.base import (
    ChatStream,
    ProviderAdapter,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
    connection_error,
)
from proxy.upstream.attempt_feed import headers_received


TakeBatch = Callable[[list[Event], UpstreamCall, ChatStream, Any], "tuple[list[bytes], StreamInterrupted | None]"]
"""How one read's events become the stream's items, and the failure that ended them (see
:meth:`HttpAdapter.take_batch`)."""


class HttpAdapter(ProviderAdapter):
    """A provider reached over HTTP through the pooled session of its origin."""

    def request_headers(self, call: UpstreamCall) -> Mapping[str, str]:
        """Headers for the upstream request (each adapter says how its key is sent)."""
        raise NotImplementedError

    async def post(self, url: str, payload: bytes, call: UpstreamCall, *, stream: bool) -> aiohttp.ClientResponse:
        """POST ``payload``; return the response once its status is 2xx.

        A plain call is bounded as a whole by the model's timeout. A stream is
        bounded here in the wait for its headers; its body is read through an
        :class:`EventReader`, which bounds the wait for each complete event.
        """
        assert self.session is not None
        limit = call.model.timeout_or(self.api.timeout)
        timeout = client_timeout(limit, self.api.connect_timeout, stream)
        headers = self.request_headers(call)
        if call.trace_headers is not None:  # tracing on: the attempt's span travels upstream
            headers = {**headers, **call.trace_headers}
        try:
            if stream:
                async with asyncio.timeout(limit):
                    resp = await self.session.post(url, data=payload, headers=headers, timeout=timeout)
            else:
                resp = await self.session.post(url, data=payload, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise connection_error(self.name, exc) from None
        headers_received(resp.headers)  # rate-limit headroom, whatever the status
        if resp.status >= 300:
            try:
                async with asyncio.timeout(limit):
                    raw = await read_at_most(resp.content, MAX_ERROR_BODY_BYTES)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                raw = b""
            finally:
                # A body read to its end leaves a reusable connection; a longer one is cut.
                finish_response(resp, resp.content.at_eof())
            raise self.upstream_error(resp.status, raw, resp.headers.get("Retry-After"))
        return resp

    def event_reader(self, resp: aiohttp.ClientResponse, call: UpstreamCall) -> "EventReader":
        """An :class:`EventReader` over ``resp``'s body with this call's limits."""
        return EventReader(resp.content, self.name, call.model.timeout_or(self.api.timeout),
                           self.api.max_stream_duration)

    async def open_stream(self, url: str, payload: bytes, call: UpstreamCall) -> ChatStream:
        """POST a streaming request and hand its chunks to :meth:`read_chunks` as they arrive."""
        resp = await self.post(url, payload, call, stream=True)
        stream = ChatStream(release=resp.close)
        stream.chunks = self.read_chunks(resp, call, stream)
        return stream

    async def read_chunks(self, resp: aiohttp.ClientResponse, call: UpstreamCall,
                          stream: ChatStream, take: "TakeBatch | None" = None,
                          progress: Any = None) -> AsyncIterator[list[bytes]]:
        """Batches of OpenAI chunk payloads from ``resp``'s event stream, one per network read.

        The same loop for every adapter: each says how a read's events become
        chunks (:meth:`take_batch`) and when its protocol says the stream is done.
        A stream relayed in the upstream's own format passes its own ``take``
        and ``progress`` instead.
        """
        reader = self.event_reader(resp, call)
        if progress is None:
            progress = self.stream_progress(call)
        if take is None:
            take = self.take_batch
        try:
            with self.stream_failures():
                while not progress.finished:
                    events = await reader.next_events()
                    if events is None:
                        break
                    batch, failure = take(events, call, stream, progress)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
            if not progress.finished:
                raise self.stream_cut()
        finally:
            finish_response(resp, progress.finished)

    def stream_progress(self, call: UpstreamCall) -> "StreamProgress":
        """What a stream keeps between reads (at least whether it is ``finished``)."""
        return StreamProgress()

    def take_batch(self, events: list[Event], call: UpstreamCall, stream: ChatStream,
                   progress: Any) -> tuple[list[bytes], StreamInterrupted | None]:
        """The chunk payloads of one read's events, and the failure that ended them.

        A failure is returned rather than raised, so that the chunks before it
        still reach the caller. Each adapter its own.
        """
        raise NotImplementedError

    async def post_for_body(self, url: str, payload: bytes, call: UpstreamCall) -> bytes:
        """POST ``payload`` and return the whole 2xx answer body."""
        resp = await self.post(url, payload, call, stream=False)
        try:
            return self.redactor.scrub(await resp.read())
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
            code=ErrorCode.UPSTREAM_STREAM_CUT, retryable=True))

    def bad_response(self, what: str) -> UpstreamError:
        """The failure of an answer that breaks the upstream's protocol (worth a retry)."""
        return UpstreamError(502, f"Upstream '{self.name}' sent {what}.",
                             code=ErrorCode.UPSTREAM_BAD_RESPONSE, retryable=True)


async def read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to its end or ``limit`` bytes, whichever comes first (however the network splits it)."""
    pieces: list[bytes] = []
    size = 0
    while size < limit:
        piece = await content.read(limit - size)
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


class StreamProgress:
    """Whether an upstream's protocol has said its stream is done."""

    __slots__ = ("finished",)

    def __init__(self) -> None:
        self.finished = False


MAX_ERROR_BODY_BYTES = 64 * 1024
"""The most of an upstream's error body that is read (its message is in the first bytes)."""


@functools.lru_cache(maxsize=256)
@functools.lru_cache(maxsize=256)
def client_timeout(limit: float, connect: float, stream: bool) -> aiohttp.ClientTimeout:
    """The (immutable, so shared) timeout of a plain call or a stream with these limits.

    A stream's reads have no socket timeout of aiohttp's: a timeout that
    restarts on every byte lets an upstream that drips one byte at a time
    hold a stream forever. :class:`EventReader` bounds complete events instead.
    """
    if stream:
        return aiohttp.ClientTimeout(total=None, sock_connect=connect)
    return aiohttp.ClientTimeout(total=limit, sock_connect=connect)


class EventReader:
    """The complete server-sent events of an upstream body, as they arrive.

    :meth:`next_events` returns the events that the next network reads
    complete. Its wait is bounded by ``idle`` seconds for each call (the
    limit *between complete events*: bytes that complete no event do not
    extend it) and by ``total`` seconds for the whole stream. Time the caller
    spends elsewhere (writing to a slow client) does not count.
    """

    __slots__ = ("_pieces", "_parser", "_provider", "_idle", "_end", "_ended")

    def __init__(self, content: aiohttp.StreamReader, provider: str, idle: float, total: float) -> None:
        self._pieces = content.iter_any()
        self._parser = SSEParser()
        self._provider = provider
        self._idle = idle
        self._end = asyncio.get_running_loop().time() + total
        self._ended = False

    async def next_events(self) -> list[Event] | None:
        """The next non-empty list of events, or ``None`` once the body has ended.

        Raises :class:`StreamInterrupted` when a limit passes first.
        """
        if self._ended:
            return None
        loop = asyncio.get_running_loop()
        deadline = min(loop.time() + self._idle, self._end)
        pieces, parser = self._pieces, self._parser
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    try:
                        piece = await pieces.__anext__()
                    except StopAsyncIteration:
                        self._ended = True
                        return parser.flush() or None
                    events = parser.feed(piece)
                    if events:
                        return events
        except TimeoutError:
            raise StreamInterrupted(self._stalled(deadline >= self._end)) from None

    def _stalled(self, total: bool) -> UpstreamError:
        if total:
            what = "is still streaming at the gateway's limit on a stream's duration (api.max_stream_duration)"
        else:
            what = f"sent no complete stream event for {self._idle:g} s"
        return UpstreamError(504, f"Upstream '{self._provider}' {what}.", code=ErrorCode.UPSTREAM_TIMEOUT,
                             retryable=True)


def finish_response(resp: aiohttp.ClientResponse, finished: bool) -> None:
    """Give a finished response's connection back to the pool; close one cut short."""
    if finished:
        resp.release()
    else:
        resp.close()


def as_dict(doc: Any) -> dict[str, Any] | None:
    """``doc`` if it is a JSON object, else ``None``."""
    return doc if isinstance(doc, dict) else None
