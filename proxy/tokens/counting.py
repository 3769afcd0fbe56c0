"""How many tokens a Chat Completions request's prompt holds.

:func:`counter_for` gives a model's :class:`TokenCounter`: exact for the
OpenAI families (:mod:`proxy.tokens.encodings`, tables from
:mod:`proxy.tokens.bpe`), else the estimate of :mod:`proxy.tokens.estimate`.
Resolve it when a config is loaded: the first counter of an encoding builds its
tables (0.03-0.06 s).

What is counted (OpenAI's own accounting for chat models, as its cookbook
documents and the API's ``prompt_tokens`` confirms):

* each message: :data:`TOKENS_PER_MESSAGE` for its framing, plus its
  ``role``, its text content and, when it has one, its ``name``
  (:data:`TOKENS_PER_NAME` more);
* every reply is primed with :data:`REPLY_PRIMING` tokens;
* content parts: ``text`` and ``refusal`` parts as text, ``image_url`` parts
  as :data:`~proxy.tokens.estimate.IMAGE_TOKENS` each, any other part (audio,
  files) as its JSON text;
* an assistant's ``tool_calls`` (and legacy ``function_call``) as their JSON
  text, a tool message's ``tool_call_id`` as text;
* the request's ``tools`` (and legacy ``functions``) and a ``json_schema``
  ``response_format`` as their JSON text; with the estimate, tools also add
  :data:`~proxy.tokens.estimate.TOOL_USE_PROMPT_TOKENS`.

So with an exact counter, message text is counted exactly, and tools, tool
calls and images are estimates (OpenAI renders tools in a terser form of its
own, so their JSON over-counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import orjson

from proxy.tokens import bpe
from proxy.tokens.encodings import encoding_for
from proxy.tokens.estimate import IMAGE_TOKENS, TOOL_USE_PROMPT_TOKENS, estimate_tokens

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
ESTIMATE = "estimate"
"""The :attr:`TokenCounter.method` of counters that estimate."""


class TokenCounter:
    """Counts tokens of text for one model family: exactly with an encoding, else by estimate."""

    __slots__ = ("method", "_count")

    def __init__(self, encoding: str | None) -> None:
        self.method = encoding or ESTIMATE
        self._count: Callable[[str], int] = bpe.counter(encoding) if encoding else estimate_tokens

    @property
    def exact(self) -> bool:
        """True when text is counted with the model's own tokenizer."""
        return self.method != ESTIMATE

    def text(self, text: str) -> int:
        """The tokens of ``text``."""
        if not text:
            return 0
        try:
            return self._count(text)
        except UnicodeEncodeError:  # a lone surrogate: count it as the replacement character
            return self._count(text.encode("utf-8", "replace").decode("utf-8"))

    def __repr__(self) -> str:
        return f"TokenCounter({self.method!r})"


def counter_for(upstream_model: str) -> TokenCounter:
    """The counter of ``upstream_model``: its OpenAI encoding, else the estimate."""
    return _counter(encoding_for(upstream_model) if isinstance(upstream_model, str) else None)


@lru_cache(maxsize=None)
def _counter(encoding: str | None) -> TokenCounter:
    return TokenCounter(encoding)


@dataclass(frozen=True, slots=True)
class PromptTokens:
    """A request's prompt tokens: in all, per message, and what no trimming can remove."""

    total: int
    fixed: int
    """Reply priming, tools and response format: the part that is not messages."""
    messages: tuple[int, ...]
    method: str
    """The encoding that counted the text, or ``"estimate"``."""


def prompt_tokens(body: dict[str, Any], counter: TokenCounter) -> PromptTokens:
    """Count ``body``'s prompt (a Chat Completions request, parsed) with ``counter``."""
    messages = body.get("messages")
    per_message = tuple(message_tokens(m, counter) for m in messages) if isinstance(messages, list) else ()
    fixed = fixed_tokens(body, counter)
    return PromptTokens(fixed + sum(per_message), fixed, per_message, counter.method)


def fixed_tokens(body: dict[str, Any], counter: TokenCounter) -> int:
    """The prompt tokens that are not messages: reply priming, tools, a JSON schema."""
    tokens = REPLY_PRIMING
    for field in ("tools", "functions"):
        tools = body.get(field)
        if tools:
            tokens += counter.text(_json(tools))
            if not counter.exact:
                tokens += TOOL_USE_PROMPT_TOKENS
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        tokens += counter.text(_json(response_format.get("json_schema")))
    return tokens


def message_tokens(message: Any, counter: TokenCounter) -> int:
    """The tokens one message adds to a prompt, its framing included."""
    if not isinstance(message, dict):
        return TOKENS_PER_MESSAGE + counter.text(_json(message))
    tokens = TOKENS_PER_MESSAGE + content_tokens(message.get("content"), counter)
    role = message.get("role")
    if isinstance(role, str):
        tokens += counter.text(role)
    name = message.get("name")
    if isinstance(name, str) and name:
        tokens += TOKENS_PER_NAME + counter.text(name)
    for field in ("tool_calls", "function_call"):
        value = message.get(field)
        if value:
            tokens += counter.text(_json(value))
    for field in ("tool_call_id", "refusal"):
        value = message.get(field)
        if isinstance(value, str):
            tokens += counter.text(value)
    return tokens


def content_tokens(content: Any, counter: TokenCounter) -> int:
    """The tokens of a message's ``content``: a string, a list of parts, or null."""
    if isinstance(content, str):
        return counter.text(content)
    if content is None:
        return 0
    if not isinstance(content, list):
        return counter.text(_json(content))
    return sum(part_tokens(part, counter) for part in content)


def part_tokens(part: Any, counter: TokenCounter) -> int:
    """The tokens of one content part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return counter.text(part["text"])
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return counter.text(part["refusal"])
    if kind == "image_url":
        return IMAGE_TOKENS
    return counter.text(_json(part))


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # not JSON (never from a parsed body): count its text
        return str(value)
