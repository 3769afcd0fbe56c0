"""Anthropic prompt-cache breakpoints on the longest stable prefix of a Messages request.

Anthropic caches a request's prefix up to each block marked
``cache_control: {"type": "ephemeral"}``, in the order tools, system,
messages, at most :data:`MAX_BREAKPOINTS` marks a request, and only when the
prefix holds at least the model's minimum (:func:`min_cacheable_tokens`;
shorter ones are simply not cached). :func:`place_breakpoints` marks, each
only if its prefix reaches that minimum:

1. the last tool definition (the tools);
2. the last system block (tools and system; a string ``system`` becomes one
   text block);
3. the last block before the final user message (the conversation so far:
   what the next request will repeat);
4. the last block before the user message before that: where the previous
   request of the same conversation put mark 3, so its cache entry is read
   even when the newest turn added more blocks than Anthropic looks back over
   (about 20).

Blocks that cannot carry a mark (``thinking``, ``redacted_thinking``, empty
text) are passed over for the nearest earlier one. A body that already has a
``cache_control`` anywhere (at the top, on a tool, a system block, a message
block or a block inside a tool result) is the caller's own choice and gets
none. The final user message is never marked: it changes every time.

Prefix sizes are estimated (:mod:`proxy.tokens.estimate`), which leans high:
at worst a mark lands on a prefix slightly under the minimum, which Anthropic
ignores at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.tokens.estimate import IMAGE_TOKENS, estimate_tokens

MAX_BREAKPOINTS = 4
EPHEMERAL = {"type": "ephemeral"}
DEFAULT_MIN_TOKENS = 1024

MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-5", 4096), ("claude-opus-4-6", 4096), ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048), ("claude-3-5-haiku", 2048), ("claude-3-haiku", 2048),
)
"""Anthropic's documented minimum prefix per model, where it is not :data:`DEFAULT_MIN_TOKENS`
(Claude Opus 3, 4 and 4.1, Sonnet 3.5, 3.7, 4 and 4.5 cache from 1,024 tokens)."""

_UNMARKABLE = frozenset(("thinking", "redacted_thinking"))


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """The request body with its breakpoints, and how many were placed."""

    body: dict[str, Any]
    placed: int


def min_cacheable_tokens(model: Any) -> int:
    """The shortest prefix ``model`` caches (its id, dated or not; OpenRouter's ``anthropic/...`` too)."""
    name = model.strip().lower() if isinstance(model, str) else ""
    name = name.removeprefix("anthropic/").replace(".", "-")
    for family, tokens in MIN_CACHEABLE_TOKENS:
        if name.startswith(family):
            return tokens
    return DEFAULT_MIN_TOKENS


def has_cache_control(body: dict[str, Any]) -> bool:
    """Whether ``body`` (an Anthropic Messages request) carries a ``cache_control`` of its own."""
    if "cache_control" in body:
        return True
    tools = body.get("tools")
    if isinstance(tools, list) and any(_marked(tool) for tool in tools):
        return True
    system = body.get("system")
    if isinstance(system, list) and any(_marked(block) for block in system):
        return True
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for block in content:
                if _marked(block) or (isinstance(block, dict) and isinstance(block.get("content"), list)
                                      and any(_marked(inner) for inner in block["content"])):
                    return True
    return False


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and "cache_control" in block


def place_breakpoints(body: dict[str, Any], min_tokens: int | None = None) -> Breakpoints:
    """``body`` with cache breakpoints on its longest stable prefixes (see the module's docstring).

    ``min_tokens`` is the shortest prefix worth marking (default: the body's
    model's minimum). ``body`` is not modified: the answer shares the parts it
    did not change.
    """
    if has_cache_control(body):
        return Breakpoints(body, 0)
    floor = min_cacheable_tokens(body.get("model")) if min_tokens is None else min_tokens
    out = dict(body)
    placed = 0
    prefix = 0
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        prefix += sum(_tokens(tool) for tool in tools)
        if prefix >= floor and isinstance(tools[-1], dict):
            out["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(EPHEMERAL)}]
            placed += 1
    system = _system_blocks(body.get("system"))
    if system:
        prefix += sum(_tokens(block) for block in system)
        at = _last_markable(system, len(system))
        if prefix >= floor and at is not None:
            out["system"] = _marked_at(system, at)
            placed += 1
    messages = body.get("messages")
    if isinstance(messages, list):
        marked_messages, count = _mark_history(messages, prefix, floor, MAX_BREAKPOINTS - placed)
        if count:
            out["messages"] = marked_messages
            placed += count
    return Breakpoints(out if placed else body, placed)


def _mark_history(messages: list[Any], prefix: int, floor: int, room: int) -> tuple[list[Any], int]:
    """The messages with marks 3 and 4 (at most ``room``), and how many were placed."""
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    ends = [end for end in reversed(users[-2:]) if end > 0][:room]  # the history before each
    if not ends:
        return messages, 0
    sizes = [prefix]
    for message in messages[:ends[0]]:
        sizes.append(sizes[-1] + _message_tokens(message))
    out = list(messages)
    placed: list[tuple[int, int]] = []
    for end in ends:
        spot = _last_markable_message(out, end)
        if spot is None or (placed and spot >= placed[-1]):
            continue
        if sizes[spot[0] + 1] < floor:
            continue
        out[spot[0]] = _marked_message(out[spot[0]], spot[1])
        placed.append(spot)
    return (out, len(placed)) if placed else (messages, 0)


def _last_markable_message(messages: list[Any], end: int) -> tuple[int, int] | None:
    """The (message, block) of the last markable block before message ``end``."""
    for index in range(end - 1, -1, -1):
        blocks = _content_blocks(messages[index])
        at = _last_markable(blocks, len(blocks))
        if at is not None:
            return index, at
    return None


def _content_blocks(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _last_markable(blocks: list[Any], end: int) -> int | None:
    for at in range(end - 1, -1, -1):
        block = blocks[at]
        if not isinstance(block, dict) or block.get("type") in _UNMARKABLE:
            continue
        if block.get("type") == "text" and not block.get("text"):
            continue
        return at
    return None


def _marked_message(message: dict[str, Any], at: int) -> dict[str, Any]:
    return {**message, "content": _marked_at(_content_blocks(message), at)}


def _marked_at(blocks: list[Any], at: int) -> list[Any]:
    """A copy of ``blocks`` whose block ``at`` (copied too) carries the mark."""
    return [*blocks[:at], {**blocks[at], "cache_control": dict(EPHEMERAL)}, *blocks[at + 1:]]


def _system_blocks(system: Any) -> list[Any]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    return system if isinstance(system, list) else []


def _message_tokens(message: Any) -> int:
    return sum(_tokens(block) for block in _content_blocks(message))


def _tokens(block: Any) -> int:
    """A block's or a tool's estimated tokens: its text, an image's fixed count, else its JSON."""
    if isinstance(block, dict):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            return estimate_tokens(block["text"])
        if kind == "image":
            return IMAGE_TOKENS
    try:
        return estimate_tokens(orjson.dumps(block).decode())
    except TypeError:
        return 0
