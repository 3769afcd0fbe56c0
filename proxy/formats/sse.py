"""Server-sent events: an incremental parser and the few bytes we write.

The parser takes bytes exactly as they arrive from the network, in pieces of
any size, and yields whole events. It never waits for the end of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"
STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEProtocolError(ValueError):
    """The upstream sent something that cannot be an event stream."""


@dataclass(slots=True)
class Event:
    """One parsed event: its ``event:`` name (or ``None``) and its ``data`` bytes."""

    name: str | None
    data: bytes


def data_event(payload: bytes) -> bytes:
    """Frame a payload as one ``data:`` event."""
    return b"data: " + payload + b"\n\n"


class SSEParser:
    """Feed bytes in with :meth:`feed`; get back the events they complete."""

    __slots__ = ("_pieces", "_size", "_pending_cr")

    def __init__(self) -> None:
        self._pieces: list[bytes] = []  # an incomplete event, kept unjoined
        self._size = 0
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Add ``chunk`` and return every event it completes, in order."""
        if (not self._pieces and chunk.startswith(b"data: ") and chunk.find(b"\n") == len(chunk) - 2
                and chunk.endswith(b"\n\n") and not self._pending_cr and b"\r" not in chunk):
            return [Event(None, chunk[6:-2])]  # the usual read: exactly one one-line event
        if b"\r" in chunk or self._pending_cr:
            chunk = self._normalise_newlines(chunk)
            if not chunk:  # a lone "\r", held back: an empty piece would hide the "\n" before it
                return []
        if self._pieces:
            if b"\n\n" not in self._pieces[-1][-1:] + chunk:
                # Still inside the same event: keep the piece, join nothing (no quadratic copying).
                self._keep(chunk)
                return []
            buffer = b"".join(self._pieces) + chunk
            self._pieces, self._size = [], 0
        else:
            buffer = chunk
        events: list[Event] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse_block(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        if start < len(buffer):
            self._keep(buffer[start:] if start else buffer)
        return events

    def _keep(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size > MAX_EVENT_BYTES:
            raise SSEProtocolError(f"an event exceeded {MAX_EVENT_BYTES} bytes")

    def flush(self) -> list[Event]:
        """Events left when the stream ends without a final blank line."""
        rest = b"".join(self._pieces)
        self._pieces, self._size = [], 0
        if not rest.strip():
            return []
        event = _parse_block(rest.rstrip(b"\n"))
        return [event] if event is not None else []

    def _normalise_newlines(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _parse_block(block: bytes) -> Event | None:
    """Parse the lines of one event; comments and unknown fields are dropped."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return Event(None, block[6:])
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return Event(name, b"\n".join(data))
