"""Anthropic Messages stream events as OpenAI ``chat.completion.chunk`` payloads: pure, no I/O."""

from __future__ import annotations

import time
from typing import Any, Callable

from proxy.formats.anthropic.response import (
    as_object,
    block_index,
    compact_json,
    finish_reason,
    is_count,
    text_or_empty,
    text_or_none,
    to_openai_usage,
)


class StreamTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` dicts out.

    Pure: no I/O. Feed each event's parsed ``data`` to :meth:`translate`;
    ``finished`` turns true on ``message_stop``, and :meth:`openai_usage` then
    gives the final token counts. ``error`` events are the caller's to handle.
    """

    def __init__(self, include_usage: bool = False, created: int | None = None) -> None:
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.finished = False
        self._tool_index: dict[int, int] = {}

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks one event produces (often none); odd events and fields are skipped."""
        kind = event.get("type") if isinstance(event, dict) else None
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, event) if handler is not None else []

    def openai_usage(self) -> dict[str, Any]:
        """The usage reported so far, in OpenAI's shape."""
        return to_openai_usage(self.usage)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _message_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        message = as_object(event.get("message"))
        self.id = text_or_none(message.get("id"))
        self.model = text_or_none(message.get("model"))
        self._take_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        block = as_object(event.get("content_block"))
        if block.get("type") == "text" and text_or_empty(block.get("text")):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        index = self._tool_index.setdefault(block_index(event), len(self._tool_index))
        given = block.get("input")
        arguments = compact_json(given) if isinstance(given, dict) and given else ""
        call = {"index": index, "id": text_or_none(block.get("id")), "type": "function",
                "function": {"name": text_or_none(block.get("name")), "arguments": arguments}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = as_object(event.get("delta"))
        if delta.get("type") == "text_delta" and text_or_empty(delta.get("text")):
            return [self._chunk({"content": delta["text"]})]
        index = self._tool_index.get(block_index(event))
        is_json = delta.get("type") == "input_json_delta"
        piece_json = text_or_empty(delta.get("partial_json")) if is_json else ""
        if piece_json and index is not None:
            piece = {"index": index, "function": {"arguments": piece_json}}
            return [self._chunk({"tool_calls": [piece]})]
        return []

    def _message_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        stop_reason = as_object(event.get("delta")).get("stop_reason")
        self.stop_reason = text_or_none(stop_reason) or self.stop_reason
        self._take_usage(event.get("usage"))
        return []

    def _message_stop(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.finished = True
        chunks = [self._chunk({}, finish_reason(self.stop_reason))]
        if self.include_usage:
            chunks.append({"id": self.id, "object": "chat.completion.chunk",
                           "created": self.created, "model": self.model,
                           "choices": [], "usage": self.openai_usage()})
        return chunks

    def _take_usage(self, usage: Any) -> None:
        """Counts are cumulative: a later report overwrites an earlier one."""
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if is_count(v)})

    _HANDLERS: dict[str, Callable[["StreamTranslator", dict[str, Any]], list[dict[str, Any]]]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }
