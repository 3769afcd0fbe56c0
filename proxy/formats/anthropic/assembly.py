"""Between an Anthropic Messages event stream and one complete ``message``, both ways: pure, no I/O.

:class:`MessageAssembler` builds the ``message`` a stream amounts to, from its
events (parsed, or as the SSE bytes a native upstream sent), so a streamed
Messages answer can be cached; :func:`message_events` turns a stored
``message`` back into the events of a stream, so a cached answer can be
served to a streaming Messages caller: ``message_start`` (empty content),
one ``ping``, per block ``content_block_start``, its deltas and
``content_block_stop``, then ``message_delta`` (``stop_reason``,
``stop_sequence``, ``usage``) and ``message_stop``.

Text is sent as one ``text_delta``, thinking as one ``thinking_delta`` and a
``signature_delta``, a tool call's ``input`` as one ``input_json_delta``;
blocks of other types (redacted thinking, server tool results) are sent whole
in their ``content_block_start``.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.formats.anthropic.inbound_stream import PING
from proxy.formats.sse import SSEParser


class MessageAssembler:
    """Feed it a stream's events; ask it for the whole ``message`` once it is ``complete``.

    Events are kept as they are given (bytes or dicts) and read when the
    message is asked for, so relaying an event costs an append. An ``error``
    event, or one that cannot be read, leaves the message incomplete, so a
    broken stream is never cached.
    """

    __slots__ = ("_raw", "_events")

    def __init__(self) -> None:
        self._raw: list[bytes] = []
        self._events: list[dict[str, Any]] = []

    def add_sse(self, data: bytes) -> None:
        """Take SSE bytes (whole events, as relayed to the caller)."""
        self._raw.append(data)

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Take parsed events, in order."""
        self._events += events

    def message(self) -> dict[str, Any] | None:
        """The complete message the stream amounted to, or ``None`` if it did not end cleanly."""
        events = self._events
        if self._raw:
            try:
                parsed = SSEParser().feed(b"".join(self._raw))
                events = [orjson.loads(event.data) for event in parsed if event.data]
            except (ValueError, orjson.JSONDecodeError):
                return None
        return assemble(events)


def assemble(events: list[Any]) -> dict[str, Any] | None:
    """The ``message`` that ``events`` build, or ``None`` unless they end with ``message_stop``."""
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    for event in events:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = {**event["message"], "content": []}
        elif message is None or kind == "error":
            return None
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[_index(event)] = dict(event["content_block"])
        elif kind == "content_block_delta":
            _apply_delta(blocks.get(_index(event)), partial, _index(event), event.get("delta"))
        elif kind == "content_block_stop":
            _finish_block(blocks.get(_index(event)), partial.pop(_index(event), None))
        elif kind == "message_delta":
            delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
            message.update({k: v for k, v in delta.items() if k in ("stop_reason", "stop_sequence")})
            if isinstance(event.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}), **event["usage"]}
        elif kind == "message_stop":
            message["content"] = [blocks[i] for i in sorted(blocks)]
            return message
    return None


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1


def _apply_delta(block: dict[str, Any] | None, partial: dict[int, list[str]], index: int, delta: Any) -> None:
    if block is None or not isinstance(delta, dict):
        return
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + _text(delta.get("text"))
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + _text(delta.get("thinking"))
    elif kind == "signature_delta":
        block["signature"] = _text(delta.get("signature"))
    elif kind == "input_json_delta":
        partial.setdefault(index, []).append(_text(delta.get("partial_json")))
    elif kind == "citations_delta" and isinstance(delta.get("citation"), dict):
        block.setdefault("citations", []).append(delta["citation"])


def _finish_block(block: dict[str, Any] | None, pieces: list[str] | None) -> None:
    if block is None or not pieces or not "".join(pieces).strip():
        return
    try:
        block["input"] = orjson.loads("".join(pieces))
    except orjson.JSONDecodeError:
        block["input"] = {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def message_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream events that deliver ``message`` (see the module docstring)."""
    usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, PING]
    content = message.get("content")
    for index, block in enumerate(content if isinstance(content, list) else []):
        if isinstance(block, dict):
            events += _block_events(index, block)
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message.get("stop_reason"),
                             "stop_sequence": message.get("stop_sequence")},
                   "usage": usage})
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        start: dict[str, Any] = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": _text(block.get("text"))}]
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": _text(block.get("thinking"))},
                  {"type": "signature_delta", "signature": _text(block.get("signature"))}]
    elif kind == "tool_use":
        start = {**block, "input": {}}
        given = block.get("input")
        deltas = [{"type": "input_json_delta",
                   "partial_json": orjson.dumps(given).decode() if given else ""}]
    else:
        start, deltas = block, []
    events: list[dict[str, Any]] = [{"type": "content_block_start", "index": index, "content_block": start}]
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    events.append({"type": "content_block_stop", "index": index})
    return events
