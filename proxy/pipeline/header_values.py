"""Caller-sent header values made safe to keep, log and compare.

aiohttp hands header bytes that are not UTF-8 over as strings with lone
surrogates, which cannot be encoded again (orjson refuses them, and so does
``str.encode``). Every header value the gateway keeps beyond the request goes
through :func:`header_text` first, so no byte a caller can send breaks an
answer or the log line.
"""

from __future__ import annotations


def header_text(value: str | None, limit: int) -> str | None:
    """``value`` as printable text of at most ``limit`` characters; ``None`` if empty.

    Bytes that were not UTF-8 become U+FFFD and control characters are
    dropped; plain printable ASCII, the usual case, is returned as it is.
    """
    if not value:
        return None
    if not (value.isascii() and value.isprintable()):
        decoded = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        value = "".join(ch for ch in decoded if ch.isprintable())
    return value[:limit] or None


def header_bytes(value: str) -> bytes:
    """The bytes the caller sent for a header value (for hashing a presented key)."""
    return value.encode("utf-8", "surrogateescape")
