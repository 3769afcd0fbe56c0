"""JSON log lines on stdout, written by a background thread.

Every line is one JSON object with ``time``, ``level`` and ``event``; the
request line adds the request's fields. The event loop only puts records on a
queue: the write to stdout happens on the listener's thread, so a slow
terminal or pipe never stalls a request.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from typing import IO, Any

import orjson

LOGGER_NAME = "llm_gateway"
log = logging.getLogger(LOGGER_NAME)

_listener: logging.handlers.QueueListener | None = None


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(seconds % 1 * 1000):03d}Z",
            "level": record.levelname,
            "event": getattr(record, "event", None) or "message",
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.msg and not fields or record.name != LOGGER_NAME:
            line["message"] = record.getMessage()
            if record.name != LOGGER_NAME:
                line["logger"] = record.name
        error = getattr(record, "error_summary", None)
        if error:
            line["exception"] = error
        return orjson.dumps(line, default=str).decode()


class _QueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread with their message resolved and no traceback."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            exc = record.exc_info[1]
            record.error_summary = f"{type(exc).__name__}: {exc}"
        record.exc_info = None
        record.exc_text = None
        return record


def setup_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send the gateway's log lines (and aiohttp's warnings) to ``stream`` as JSON."""
    global _listener
    stop_logging()
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, handler, respect_handler_level=False)
    _listener.start()
    queue_handler = _QueueHandler(records)
    for name in (LOGGER_NAME, "aiohttp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [queue_handler]
        logger.propagate = False
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    set_level(level)


def set_level(level: str) -> None:
    """Change the gateway's log level (a reload may do this)."""
    log.setLevel(level.upper())


def stop_logging() -> None:
    """Flush queued lines and stop the writer thread."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Write one line for ``event`` with ``fields``."""
    if log.isEnabledFor(level):
        log.log(level, event, extra={"event": event, "fields": fields})


atexit.register(stop_logging)
