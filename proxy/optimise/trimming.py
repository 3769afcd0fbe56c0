"""Fit a conversation into a token budget by dropping its oldest turns.

:func:`trim_oldest` keeps, in their original order:

* with ``keep_system``, every ``system`` and ``developer`` message, wherever
  it stands (they are never dropped and never counted as dropped);
* of the other messages, the newest ones as one unbroken run, as long as it
  fits. The run always starts at a user message (or at the very first
  message, when nothing is dropped), so what is dropped is whole turns: a
  user message and everything that answered it. An assistant message with
  ``tool_calls`` and the ``tool`` messages after it therefore stay together
  or go together, and no reply is kept without the question it answered;
* the last user message and everything after it, always: if even that and
  the system prompt do not fit, there is nothing sensible to send and the
  answer is ``None``.

A ``tool`` message belongs with the message before it (system messages
aside), so even a conversation in an unusual order never has a tool result
cut from what precedes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

PINNED_ROLES = frozenset(("system", "developer"))


@dataclass(frozen=True, slots=True)
class TrimResult:
    """The messages kept, and how many messages and tokens were dropped."""

    messages: list[Any]
    dropped_count: int
    dropped_tokens: int


def trim_oldest(messages: Sequence[Any], budget_tokens: int, count: Callable[[Any], int],
                keep_system: bool = True) -> TrimResult | None:
    """``messages`` with the oldest turns dropped until their tokens fit ``budget_tokens``.

    ``count`` gives one message's tokens (framing included; see
    :func:`proxy.tokens.counting.message_tokens`). Returns ``None`` when the
    system messages (with ``keep_system``) plus the last user message and all
    that follows it exceed the budget. ``messages`` is not modified.
    """
    tokens = [max(count(message), 0) for message in messages]
    pinned = {i for i, message in enumerate(messages) if keep_system and _role(message) in PINNED_ROLES}
    rest = [i for i in range(len(messages)) if i not in pinned]
    budget_left = budget_tokens - sum(tokens[i] for i in pinned)
    suffix = [0] * (len(rest) + 1)  # suffix[p]: the tokens of rest[p:]
    for position in range(len(rest) - 1, -1, -1):
        suffix[position] = suffix[position + 1] + tokens[rest[position]]
    starts = _run_starts(messages, rest)
    if suffix[starts[-1]] > budget_left:  # not even the last user message and what follows it
        return None
    start = next(p for p in starts if suffix[p] <= budget_left)  # the longest run that fits
    dropped = rest[:start]
    gone = set(dropped)
    return TrimResult([m for i, m in enumerate(messages) if i not in gone], len(dropped),
                      sum(tokens[i] for i in dropped))


def _run_starts(messages: Sequence[Any], rest: list[int]) -> list[int]:
    """Where in ``rest`` a kept run may begin, in order: its start and each user message.

    The last is the run that must be kept: from the last user message on
    (everything, when there is no user message).
    """
    return [0] + [position for position, index in enumerate(rest)
                  if position and _role(messages[index]) == "user"]


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None
