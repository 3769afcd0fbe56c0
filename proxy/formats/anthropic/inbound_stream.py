"""OpenAI ``chat.completion.chunk`` streams as Anthropic Messages event streams: pure, no I/O.

The stream half of the inbound direction. :class:`MessagesStreamTranslator`
is fed one parsed chunk at a time and gives the events Anthropic would have
sent, in Anthropic's order:

* ``message_start`` (the message with empty ``content`` and ``usage``: the
  input tokens when known, from the first chunk's usage or the caller's
  estimate), then one ``ping``;
* per content block ``content_block_start``, its ``content_block_delta``
  events and ``content_block_stop``, blocks numbered from 0 in the order they
  begin: reasoning text (``reasoning_content`` or ``reasoning``) as a
  ``thinking`` block with ``thinking_delta``, text as a ``text`` block with
  ``text_delta``, each tool call as a ``tool_use`` block (``input: {}``) with
  its ``arguments`` as ``input_json_delta`` pieces. A block ends when a block
  of another kind (or another tool call) begins, so text, thinking and tool
  calls may alternate; when an upstream sends a piece of an earlier tool
  call's arguments after a later block began (no known upstream does), the
  piece is sent for that call's block index, which the anthropic SDKs
  accumulate by index;
* once the stream is over (:meth:`finish`, at ``[DONE]`` or the stream's
  end, after the usage chunk): ``message_delta`` with ``stop_reason``,
  ``stop_sequence`` and the cumulative ``usage`` (``output_tokens``, and the
  input and cache counts when the upstream reported usage), then
  ``message_stop``.

A mid-stream failure is an ``error`` event (:meth:`fail`, or an OpenAI-style
``{"error": ...}`` chunk), after which nothing more is sent.
:func:`encode_event` frames an event as SSE bytes
(``event: <type>\\ndata: <json>\\n\\n``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.formats.anthropic.errors import error_body, error_from_chat
from proxy.formats.anthropic.inbound_response import (
    content_text,
    message_id_for,
    messages_usage,
    new_tool_use_id,
    reasoning_text,
    stop_reason_for,
)
from proxy.formats.anthropic.response import as_object, is_whole, text_or_empty, text_or_none

PING = {"type": "ping"}
"""Anthropic's keep-alive event."""


def encode_event(event: dict[str, Any]) -> bytes:
    """One event as SSE bytes: ``event: <type>``, ``data: <json>`` and a blank line."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def encode_events(events: list[dict[str, Any]]) -> bytes:
    """Several events as SSE bytes, in order."""
    return b"".join(encode_event(event) for event in events)


PING_BYTES = encode_event(PING)
"""A ``ping`` event ready to write, for keep-alives while an upstream thinks."""


@dataclass(slots=True)
class _Block:
    """An open content block: its kind (``thinking``, ``text`` or ``tool``) and index."""

    kind: str
    index: int


class MessagesStreamTranslator:
    """OpenAI ``chat.completion.chunk`` dicts in, Anthropic stream event dicts out.

    Pure: no I/O. Feed each parsed chunk to :meth:`feed`; at ``[DONE]`` (or
    when the upstream stream ends) call :meth:`finish`; on a failure call
    :meth:`fail`. ``finished`` turns true after ``message_stop`` or an
    ``error`` event; later calls give nothing. Odd chunks and fields are
    skipped, never raised on.
    """

    def __init__(self, *, message_id: str | None = None, model: str | None = None,
                 input_tokens: int = 0) -> None:
        """``message_id`` and ``model`` replace the ones derived from the chunks;
        ``input_tokens`` is the ``message_start`` count when the first chunk carries no usage."""
        self.message_id = message_id
        self.model = model
        self.input_tokens = input_tokens
        self.started = False
        self.finished = False
        self.chat_usage: dict[str, Any] | None = None
        """The last ``usage`` the upstream reported, in OpenAI's shape."""
        self._open: _Block | None = None
        self._next_index = 0
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._finish_reason: str | None = None
        self._matched_stop: Any = None
        self._refused = False

    # ------------------------------------------------------------ the stream

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        """The events one chunk gives (``message_start`` and ``ping`` before the first)."""
        if self.finished or not isinstance(chunk, dict):
            return []
        if chunk.get("error") is not None:
            self.finished = True
            return [error_from_chat(chunk["error"])]
        events = self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.chat_usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events += self._choice(choice)
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The events that end the message: the open block's stop, ``message_delta``, ``message_stop``."""
        if self.finished:
            return []
        events = self._start({}) + self._close()
        reason, sequence = stop_reason_for(self._finish_reason, has_tool_use=bool(self._tool_blocks),
                                           matched_stop=self._matched_stop, refused=self._refused)
        events.append({"type": "message_delta",
                       "delta": {"stop_reason": reason, "stop_sequence": sequence},
                       "usage": self._final_usage()})
        events.append({"type": "message_stop"})
        self.finished = True
        return events

    def fail(self, status: int, message: str, code: str | None = None) -> list[dict[str, Any]]:
        """The ``error`` event for a failure mid-stream (status and code as for a plain error)."""
        if self.finished:
            return []
        self.finished = True
        return [error_body(status, message, code)]

    def usage(self) -> dict[str, int]:
        """The usage reported so far, in Anthropic's shape."""
        return messages_usage(self.chat_usage)

    # ------------------------------------------------------------ the pieces

    def _start(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self.started:
            return []
        self.started = True
        usage = chunk.get("usage")
        counts = messages_usage(usage) if isinstance(usage, dict) else {
            "input_tokens": self.input_tokens if is_whole(self.input_tokens) else 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}
        message = {
            "id": self.message_id or message_id_for(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self.model or text_or_empty(chunk.get("model")),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": counts,
        }
        return [{"type": "message_start", "message": message}, PING]

    def _choice(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        delta = as_object(choice.get("delta"))
        events: list[dict[str, Any]] = []
        thinking = reasoning_text(delta)
        if thinking:
            events += self._piece("thinking", {"type": "thinking_delta", "thinking": thinking})
        text = content_text(delta.get("content"))
        if text:
            events += self._piece("text", {"type": "text_delta", "text": text})
        refusal = text_or_empty(delta.get("refusal"))
        if refusal:
            self._refused = True
            events += self._piece("text", {"type": "text_delta", "text": refusal})
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                events += self._tool_piece(call)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self._finish_reason = finish
            self._matched_stop = choice.get("stop_reason")
            events += self._close()
        return events

    def _piece(self, kind: str, delta: dict[str, Any]) -> list[dict[str, Any]]:
        """A thinking or text delta, in a block of that kind (begun here if need be)."""
        block = self._open
        if block is not None and block.kind == kind:
            events, index = [], block.index
        else:
            start = ({"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking"
                     else {"type": "text", "text": ""})
            events, index = self._begin(kind, start)
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        return events

    def _tool_piece(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        """One piece of a tool call: the block's start for a new call, then its arguments."""
        tool = call.get("index")
        if not is_whole(tool):  # some upstreams leave out the index of a lone call
            tool = len(self._tool_blocks) if text_or_none(call.get("id")) else max(
                self._tool_blocks, default=0)
        function = as_object(call.get("function"))
        events: list[dict[str, Any]] = []
        if tool not in self._tool_blocks:
            start = {"type": "tool_use", "id": text_or_none(call.get("id")) or new_tool_use_id(),
                     "name": text_or_empty(function.get("name")), "input": {}}
            events, self._tool_blocks[tool] = self._begin("tool", start)
        arguments = text_or_empty(function.get("arguments"))
        if arguments:
            events.append({"type": "content_block_delta", "index": self._tool_blocks[tool],
                           "delta": {"type": "input_json_delta", "partial_json": arguments}})
        return events

    def _begin(self, kind: str, block: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """Close the open block, begin ``block``; the events and the new block's index."""
        events = self._close()
        index = self._next_index
        self._open = _Block(kind, index)
        self._next_index += 1
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        return events, index

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        index, self._open = self._open.index, None
        return [{"type": "content_block_stop", "index": index}]

    def _final_usage(self) -> dict[str, int]:
        """``message_delta``'s usage: every count when reported, else only ``output_tokens``."""
        if self.chat_usage is None:
            return {"output_tokens": 0}
        return messages_usage(self.chat_usage)
