"""JSON log lines on stdout, written by a background thread.

Every line is one JSON object with ``time`` (UTC, milliseconds), ``level`` and
``event``, then the event's fields. The event loop only serialises the line
(orjson, well under a microsecond) and appends the bytes to a deque; a writer
thread wakes every 50 ms and writes whatever has gathered in one call. A slow
terminal or pipe never stalls a request, and a busy gateway pays no thread
wake-up per line. Records of the standard ``logging`` module (aiohttp's, asyncio's
and OpenTelemetry's warnings) are bridged into the same format.
"""

from __future__ import annotations

import atexit
import collections
import io
import logging
import sys
import threading
import time
from typing import IO, Any, Callable

import orjson

LOGGER_NAME = "llm_gateway"
BRIDGED_LOGGERS = ("aiohttp", "asyncio", "opentelemetry", LOGGER_NAME)  # OpenTelemetry: the exporter's failures
_LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
                logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL"}
FLUSH_INTERVAL = 0.05


class LogWriter:
    """Writes queued lines to a stream from its own thread, all that gathered per write."""

    def __init__(self, stream: IO[Any], interval: float = FLUSH_INTERVAL) -> None:
        self._write = _binary_writer(stream)
        self._flush = stream.flush
        self._lines: collections.deque[bytes] = collections.deque()
        self._interval = interval
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        """Queue one line (with its newline); appending to a deque is thread-safe."""
        self._lines.append(line)

    def _run(self) -> None:
        while not self._closing.wait(self._interval):
            self._write_gathered()
        self._write_gathered()

    def _write_gathered(self) -> None:
        lines = self._lines
        batch = []
        while lines:
            batch.append(lines.popleft())
        if not batch:
            return
        try:
            self._write(b"".join(batch))
            self._flush()
        except (OSError, ValueError):
            pass  # stdout closed: nothing sensible left to do with a log line

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._closing.set()
        self._thread.join(timeout=5)


def _binary_writer(stream: IO[Any]) -> Callable[[bytes], Any]:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return buffer.write
    if isinstance(stream, io.TextIOBase):
        return lambda data: stream.write(data.decode())
    return stream.write


class _Timestamps:
    """``2026-01-02T03:04:05.678Z``, formatting the seconds part once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


_writer: LogWriter | None = None
_threshold = logging.INFO
_timestamps = _Timestamps()


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Write one line for ``event`` with ``fields`` (if ``level`` passes the threshold)."""
    if level < _threshold:
        return
    line = {"time": timestamp(), "level": level_name(level), "event": event}
    line.update(fields)
    write_line(line)


def level_name(level: int) -> str:
    """The ``level`` field of a line at ``level`` (``INFO`` for a level with no name of its own)."""
    return _LEVEL_NAMES.get(level, "INFO")


def timestamp() -> str:
    """Now, as a log line's ``time``."""
    return _timestamps.format(time.time())


def write_line(line: dict[str, Any]) -> None:
    """Write a complete line (``time``, ``level`` and ``event`` already in it)."""
    writer = _writer if _writer is not None else _default_writer()
    try:
        data = orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):  # text orjson cannot write: still one line
        data = orjson.dumps(_writable(line), default=str, option=orjson.OPT_APPEND_NEWLINE)
    writer.put(data)


def _writable(value: Any, depth: int = 0) -> Any:
    """``value`` with every string made encodable (lone surrogates replaced) and nesting bounded."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if depth > 16:
        return "..."
    if isinstance(value, dict):
        return {_writable(k, depth + 1): _writable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_writable(v, depth + 1) for v in value]
    return value


def is_enabled(level: int) -> bool:
    """Whether lines of ``level`` are written (to skip building fields that would be dropped)."""
    return level >= _threshold


def error_summary(exc: BaseException) -> str:
    """``Type: message`` of an exception: enough to find it, no traceback."""
    return f"{type(exc).__name__}: {exc}"[:500]


class _BridgeHandler(logging.Handler):
    """Turns standard ``logging`` records into our JSON lines."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()[:2000]}
        if record.exc_info and record.exc_info[1] is not None:
            fields["exception"] = error_summary(record.exc_info[1])
        log_event("message", record.levelno, **fields)


def setup_logging(level: str = "INFO", stream: IO[Any] | None = None) -> None:
    """Send log lines to ``stream`` (stdout by default) at ``level`` and above."""
    global _writer
    stop_logging()
    _writer = LogWriter(stream or sys.stdout)
    bridge = _BridgeHandler()
    for name in BRIDGED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [bridge]
        logger.propagate = False
        logger.setLevel(logging.WARNING if name != LOGGER_NAME else logging.DEBUG)
    set_level(level)


def _default_writer() -> LogWriter:
    setup_logging(logging.getLevelName(_threshold))
    assert _writer is not None
    return _writer


def set_level(level: str) -> None:
    """Change the threshold (a reload may do this)."""
    global _threshold
    _threshold = logging.getLevelName(level.upper())


def stop_logging() -> None:
    """Write queued lines and stop the writer thread."""
    global _writer
    if _writer is not None:
        writer, _writer = _writer, None
        writer.close()


atexit.register(stop_logging)
