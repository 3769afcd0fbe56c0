"""Anthropic Messages answers as OpenAI ``chat.completion`` answers: pure translation, no I/O.

Answers are read defensively: blocks, counts and texts of the wrong type are
skipped (a count that is not a non-negative integer counts as 0), so an odd
upstream document never raises here.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

MAX_COUNT = 2**53
"""Token counts above this (JavaScript's largest exact integer) are not believed: they count as 0."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for Anthropic's ``stop_reason`` (``stop`` for anything unknown)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def token_count(value: Any) -> int:
    """``value`` if it is a believable token count (an integer from 0 to :data:`MAX_COUNT`), else 0."""
    return value if is_count(value) else 0


def is_count(value: Any) -> bool:
    return is_whole(value) and 0 <= value <= MAX_COUNT


def to_openai_usage(usage: Any) -> dict[str, Any]:
    """OpenAI ``usage`` for Anthropic's: cache reads and writes count as prompt tokens.

    ``prompt_tokens_details`` says which of them were read from the prompt
    cache (``cached_tokens``, OpenAI's name) and which were written to it
    (``cache_write_tokens``, the name OpenRouter uses), so both can be priced.
    Counts that are missing or not believable integers count as 0; ``usage``
    that is not an object counts as no usage at all.
    """
    counts = usage if isinstance(usage, dict) else {}
    cache_read = token_count(counts.get("cache_read_input_tokens"))
    cache_write = token_count(counts.get("cache_creation_input_tokens"))
    prompt = token_count(counts.get("input_tokens")) + cache_read + cache_write
    completion = token_count(counts.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
    }


def to_openai_response(doc: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` for an Anthropic ``message`` answer.

    Never raises: blocks that are not objects, texts that are not strings and
    other odd fields are skipped (the adapter has already refused an answer
    that is not a message at all).
    """
    doc = doc if isinstance(doc, dict) else {}
    content = doc.get("content")
    blocks = [block for block in content if isinstance(block, dict)] if isinstance(
        content, list) else []
    texts = [text_or_empty(block.get("text")) for block in blocks if block.get("type") == "text"]
    tool_calls = [
        {"id": text_or_none(block.get("id")), "type": "function",
         "function": {"name": text_or_none(block.get("name")),
                      "arguments": compact_json(block.get("input"))}}
        for block in blocks if block.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_calls and not texts else "".join(texts),
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": text_or_none(doc.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": text_or_none(doc.get("model")),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason(doc.get("stop_reason")), "logprobs": None}],
        "usage": to_openai_usage(doc.get("usage")),
    }


def text_or_empty(value: Any) -> str:
    """An upstream text: ``value`` if it is a string, else ``""``."""
    return value if isinstance(value, str) else ""


def text_or_none(value: Any) -> str | None:
    """An upstream id or name: ``value`` if it is a string, else ``None``."""
    return value if isinstance(value, str) else None


def as_object(value: Any) -> dict[str, Any]:
    """An upstream object: ``value`` if it is one, else an empty one."""
    return value if isinstance(value, dict) else {}


def block_index(event: dict[str, Any]) -> int:
    """A stream event's content block ``index`` (``-1`` if missing or not an integer)."""
    index = event.get("index")
    return index if is_whole(index) else -1


def compact_json(value: Any) -> str:
    """A tool's ``input`` as OpenAI's ``arguments`` string (``{}`` for anything not an object)."""
    try:
        return orjson.dumps(value if isinstance(value, dict) else {}).decode()
    except orjson.JSONEncodeError:  # only for values no JSON parser produces (64-bit overflow)
        return "{}"
