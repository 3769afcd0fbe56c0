"""What every provider adapter offers the gateway, and the errors it raises.

Callers only ever speak OpenAI's Chat Completions. An adapter takes an
OpenAI-shaped request (:class:`UpstreamCall`), speaks its upstream's own
protocol, and hands back OpenAI-shaped answers: a dict for a plain call, and a
:class:`ChatStream` of ``chat.completion.chunk`` JSON payloads for a stream.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, ClassVar, Mapping

import aiohttp
import orjson

from proxy.errors import ErrorCode, GatewayError
from proxy.upstream.redaction import NO_SECRETS, Redactor

if TYPE_CHECKING:
    from proxy.config import ApiConfig, ModelConfig, ProviderConfig


@dataclass(slots=True)
class UpstreamCall:
    """One request for one upstream model."""

    model: "ModelConfig"
    body: dict[str, Any]
    request_id: str
    include_usage: bool = False
    api_key: str | None = None  # the upstream key picked for this attempt (rotation)
    trace_headers: Mapping[str, str] | None = None  # the attempt's traceparent, when tracing is on
    forward_headers: Mapping[str, str] | None = None  # the caller's headers an upstream of its own format gets


class UpstreamError(GatewayError):
    """The upstream failed before any byte of the answer reached the caller.

    ``document`` is the upstream's own error body when it may reach a caller of
    the upstream's own format as it is (an Anthropic upstream refusing a
    ``/v1/messages`` caller's request: Claude Code matches on its wording).
    """

    document: bytes | None = None

    def __init__(self, status: int, message: str, *, retryable: bool,
                 retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(status, message, **kwargs)
        self.retryable = retryable
        self.retry_after = retry_after


class StreamInterrupted(Exception):
    """The upstream failed after the stream had begun; ``error`` says how."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class ChatStream:
    """OpenAI ``chat.completion.chunk`` payloads (JSON bytes, no SSE framing), in batches.

    Iterating yields, as they arrive, non-empty lists of the chunks that came
    in together (one network read can carry several), so that the gateway
    relays them with one write. When iteration ends normally the upstream
    finished cleanly; ``usage`` then holds the exact token counts if the
    upstream reported them. A failure mid-stream raises
    :class:`StreamInterrupted`, after every chunk that came before it.
    """

    def __init__(self, chunks: AsyncIterator[list[bytes]] | None = None, release: Any = None) -> None:
        self.chunks: AsyncIterator[list[bytes]] | None = chunks
        self._release = release
        self.usage: dict[str, Any] | None = None

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        assert self.chunks is not None, "a ChatStream needs its chunks before iteration"
        return self.chunks

    async def aclose(self) -> None:
        """Stop reading and give the upstream connection back (or close it)."""
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        if self._release is not None:
            self._release()
            self._release = None


class ProviderAdapter:
    """Base class: one instance per configured provider per config snapshot.

    Each adapter class also states the facts of its provider type, which the
    config loader uses: :attr:`type_name` (the config's ``type``),
    :attr:`default_base_url`, whether it :attr:`needs_key` and
    :attr:`needs_base_url`, and :meth:`config_problem` for checks of its own.
    """

    type_name: ClassVar[str] = ""
    default_base_url: ClassVar[str | None] = None
    needs_key: ClassVar[bool] = True
    needs_base_url: ClassVar[bool] = True

    @classmethod
    def config_problem(cls, body: Mapping[str, Any]) -> str | None:
        """What is wrong with a provider section of this type, as ``field: why``; ``None`` if nothing."""
        return None

    def __init__(
        self,
        config: "ProviderConfig",
        api: "ApiConfig",
        session: aiohttp.ClientSession | None,
        redactor: Redactor = NO_SECRETS,
    ) -> None:
        self.config = config
        self.api = api
        self.session = session
        self.redactor = redactor

    @property
    def name(self) -> str:
        """The provider's configured name."""
        return self.config.name

    def key_for(self, call: UpstreamCall) -> str | None:
        """The upstream key for this call: the rotated one, else the provider's first."""
        return call.api_key or self.config.api_key

    def upstream_error(self, status: int, body: bytes, retry_after: str | None = None) -> "UpstreamError":
        """:func:`upstream_http_error` for this provider: secrets redacted, waits capped."""
        return upstream_http_error(self.name, status, self.redactor.scrub(body), retry_after,
                                   max_wait=self.api.max_retry_after)

    def status(self) -> str:
        """``available`` or ``unconfigured`` (no key); breakers refine this later."""
        return "available" if self.config.configured else "unconfigured"

    async def chat(self, call: UpstreamCall) -> dict[str, Any]:
        """One complete chat answer in OpenAI's shape."""
        raise NotImplementedError

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """Open a streamed chat answer; raise :class:`UpstreamError` if it cannot start."""
        raise NotImplementedError

    async def embeddings(self, call: UpstreamCall) -> dict[str, Any]:
        """An embeddings answer in OpenAI's shape."""
        raise GatewayError(
            400,
            f"Provider '{self.name}' does not offer embeddings; choose an embeddings model.",
            code=ErrorCode.UNSUPPORTED_ENDPOINT,
            param="model",
        )


def connection_error(provider: str, exc: BaseException) -> UpstreamError:
    """The error for an upstream we could not reach or that timed out."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamError(
            504, f"Upstream '{provider}' did not answer in time.", code=ErrorCode.UPSTREAM_TIMEOUT, retryable=True
        )
    return UpstreamError(
        502, f"Could not reach upstream '{provider}'.", code=ErrorCode.UPSTREAM_UNREACHABLE, retryable=True
    )


_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


def upstream_http_error(
    provider: str, status: int, body: bytes, retry_after: str | None = None,
    *, max_wait: float,
) -> UpstreamError:
    """Map an upstream's non-2xx answer to the error the caller should see.

    The caller's own mistakes (400, 404, 413, 422, ...) come back with the
    upstream's status and message. A 401 or 403 means *our* key for that
    upstream is bad, which is never the caller's fault: it becomes a 502.
    Overload and server failures become 502, 503 or 504, marked retryable.
    ``Retry-After`` is read by :func:`retry_after_seconds` and capped at
    ``max_wait``. ``body`` must already be free of secrets (see
    :meth:`ProviderAdapter.upstream_error`).
    """
    message, kind, param, code = _error_fields(body)
    wait = retry_after_seconds(retry_after, max_wait)
    headers = {"Retry-After": str(max(1, round(wait)))} if wait is not None else None
    if status in (401, 403):
        return UpstreamError(
            502,
            f"Upstream '{provider}' refused the gateway's credentials (HTTP {status}); "
            "this is a gateway configuration problem, not your key.",
            code=ErrorCode.UPSTREAM_AUTH_FAILED,
            retryable=False,
        )
    if status == 429:
        return UpstreamError(
            429,
            f"Upstream '{provider}' is rate limiting: {message or 'too many requests'}",
            code=code or ErrorCode.RATE_LIMIT_EXCEEDED,
            retryable=True,
            retry_after=wait,
            headers=headers,
        )
    if status in (408, 504):
        return UpstreamError(504, f"Upstream '{provider}' timed out (HTTP {status}).",
                             code=ErrorCode.UPSTREAM_TIMEOUT, retryable=True)
    if status in (503, 529):
        return UpstreamError(503, f"Upstream '{provider}' is overloaded or unavailable "
                             f"(HTTP {status}): {message or 'no detail'}",
                             code=ErrorCode.UPSTREAM_UNAVAILABLE, retryable=True, retry_after=wait,
                             headers=headers)
    if status >= 500:
        return UpstreamError(502, f"Upstream '{provider}' failed (HTTP {status}): "
                             f"{message or 'no detail'}", code=ErrorCode.UPSTREAM_ERROR, retryable=True)
    return UpstreamError(
        status if 400 <= status < 500 else 502,
        message or f"Upstream '{provider}' answered HTTP {status}.",
        code=code,
        param=param,
        type=kind if isinstance(kind, str) and kind else None,
        retryable=False,
    )


_MAX_RETRY_AFTER_CHARS = 64


def retry_after_seconds(value: str | None, max_wait: float) -> float | None:
    """Seconds to wait from an upstream's ``Retry-After``, at most ``max_wait``.

    The value is delta-seconds (a finite, non-negative number; decimals are
    accepted) or an HTTP date. Anything else (``inf``, ``1e400``, ``nan``, a
    negative number, garbage) counts as absent: ``None``.
    """
    if not value or len(value) > _MAX_RETRY_AFTER_CHARS:
        return None
    seconds = _delta_seconds(value.strip())
    if seconds is None:
        seconds = _seconds_until_date(value)
    if seconds is None:
        return None
    return min(seconds, max_wait)


def _delta_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    try:
        return max(0.0, when.timestamp() - time.time())
    except (OverflowError, OSError, ValueError):
        return None


def _error_fields(body: bytes) -> tuple[str | None, str | None, str | None, str | None]:
    """Message, type, param and code from an OpenAI- or Anthropic-style error body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return (text or None), None, None, None
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, str):
        return error, None, None, None
    if not isinstance(error, dict):
        return None, None, None, None
    code = error.get("code")
    return (
        _as_text(error.get("message")),
        _as_text(error.get("type")),
        _as_text(error.get("param")),
        str(code) if code is not None else None,
    )


def _as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
