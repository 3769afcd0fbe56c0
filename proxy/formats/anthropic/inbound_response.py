"""OpenAI ``chat.completion`` answers as Anthropic Messages answers: pure translation, no I/O.

The answer half of the inbound direction (:mod:`proxy.formats.anthropic.inbound_request`
has the request half): a ``POST /v1/messages`` caller served by an
OpenAI-style upstream gets the upstream's answer as a ``message``.

* ``id``: the upstream's id with ``msg_`` in front (kept as it is when it
  already starts with ``msg_``); ``type: message``, ``role: assistant``,
  ``model`` the upstream's.
* ``content``: a ``thinking`` block first when the upstream gave reasoning
  text (``reasoning_content``, as DeepSeek and vLLM send it, or OpenRouter's
  ``reasoning``), with an empty ``signature`` (no other model can sign one);
  then the text (and an OpenAI ``refusal`` as text); then one ``tool_use``
  block per tool call, its ``arguments`` parsed (arguments that are not a
  JSON object give ``input: {}``, never an error).
* ``stop_reason`` (:func:`stop_reason_for`): ``stop`` is ``end_turn``,
  ``length`` ``max_tokens``, ``tool_calls`` ``tool_use`` and
  ``content_filter`` ``refusal``; a ``stop`` with the matched stop string
  (vLLM's ``stop_reason``) is ``stop_sequence`` with that ``stop_sequence``;
  tool calls are ``tool_use`` unless the answer was cut (``length``) or
  filtered (``content_filter``).
* ``usage`` (:func:`messages_usage`): ``prompt_tokens`` less the cache reads
  and writes is ``input_tokens``; ``prompt_tokens_details.cached_tokens`` is
  ``cache_read_input_tokens`` and ``cache_write_tokens`` (OpenRouter's name)
  ``cache_creation_input_tokens`` (LiteLLM's top-level ``cache_read_input_tokens``
  and ``cache_creation_input_tokens`` are read too); ``completion_tokens`` is
  ``output_tokens``.

Answers are read defensively, as in the outbound direction: fields of the
wrong type are skipped and counts that are not believable integers count as
0, so an odd upstream document never raises here.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from proxy.formats.anthropic.response import as_object, text_or_empty, text_or_none, token_count

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""Anthropic's ``stop_reason`` for each OpenAI ``finish_reason`` (anything else is ``end_turn``)."""


def to_messages_response(doc: Any, *, message_id: str | None = None,
                         model: str | None = None) -> dict[str, Any]:
    """The Anthropic ``message`` for an OpenAI ``chat.completion`` answer.

    ``message_id`` and ``model``, when given, replace the ones derived from
    the answer. Never raises.
    """
    doc = as_object(doc)
    choice = first_choice(doc.get("choices"))
    message = as_object(choice.get("message"))
    content: list[dict[str, Any]] = []
    thinking = reasoning_text(message)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = content_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = text_or_empty(message.get("refusal"))
    if refusal:
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if isinstance(call, dict):
            content.append(tool_use_block(call))
    reason, sequence = stop_reason_for(
        choice.get("finish_reason"), has_tool_use=any(b["type"] == "tool_use" for b in content),
        matched_stop=choice.get("stop_reason"), refused=bool(refusal))
    return {
        "id": message_id or message_id_for(doc.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model or text_or_empty(doc.get("model")),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": messages_usage(doc.get("usage")),
    }


def first_choice(choices: Any) -> dict[str, Any]:
    """The answer's first choice object (the gateway never asks for more), or an empty one."""
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                return choice
    return {}


def message_id_for(upstream_id: Any) -> str:
    """A ``msg_`` id for the upstream's answer id (a random one when it has none)."""
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id if upstream_id.startswith("msg_") else "msg_" + upstream_id
    return "msg_" + uuid.uuid4().hex


def new_tool_use_id() -> str:
    """A ``toolu_`` id for a tool call the upstream gave none."""
    return "toolu_" + uuid.uuid4().hex


def reasoning_text(message: dict[str, Any]) -> str:
    """The reasoning text of a message or a stream delta (``reasoning_content`` or ``reasoning``)."""
    return text_or_empty(message.get("reasoning_content")) or text_or_empty(message.get("reasoning"))


def content_text(content: Any) -> str:
    """A message's text: a string as it is, the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_or_empty(part.get("text")) for part in content
                       if isinstance(part, dict) and part.get("type") in ("text", None))
    return ""


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block for one OpenAI tool call (``arguments`` parsed, safely)."""
    function = as_object(call.get("function"))
    return {
        "type": "tool_use",
        "id": text_or_none(call.get("id")) or new_tool_use_id(),
        "name": text_or_empty(function.get("name")),
        "input": tool_input(function.get("arguments")),
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's ``arguments`` as the ``input`` object: ``{}`` for anything but a JSON object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def stop_reason_for(finish_reason: Any, *, has_tool_use: bool, matched_stop: Any = None,
                    refused: bool = False) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` for an OpenAI ``finish_reason``.

    ``matched_stop`` is the stop string an upstream says it met (vLLM's
    ``stop_reason``); ``refused`` says the answer carried an OpenAI
    ``refusal``, which ends the turn as a ``refusal``.
    """
    if finish_reason == "stop" and isinstance(matched_stop, str) and matched_stop:
        return "stop_sequence", matched_stop
    reason = STOP_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    if has_tool_use and reason in (None, "end_turn", "tool_use"):
        return "tool_use", None
    if refused and reason in (None, "end_turn"):
        return "refusal", None
    return reason or "end_turn", None


def messages_usage(usage: Any) -> dict[str, int]:
    """Anthropic ``usage`` for OpenAI's: ``input_tokens`` excludes the cache reads and writes.

    The inverse of :func:`proxy.formats.anthropic.response.to_openai_usage`.
    """
    counts = as_object(usage)
    details = as_object(counts.get("prompt_tokens_details"))
    cache_read = (token_count(details.get("cached_tokens"))
                  or token_count(counts.get("cache_read_input_tokens")))
    cache_write = (token_count(details.get("cache_write_tokens"))
                   or token_count(counts.get("cache_creation_input_tokens")))
    prompt = token_count(counts.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - cache_read - cache_write, 0),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": token_count(counts.get("completion_tokens")),
    }
