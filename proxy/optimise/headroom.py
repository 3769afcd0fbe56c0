"""What an upstream's own rate-limit headers say is left, and until when.

Read from every upstream answer (:func:`parse_headroom`):

* OpenAI (and Azure, OpenRouter and compatible servers that copy it):
  ``x-ratelimit-remaining-requests`` / ``-tokens`` with
  ``x-ratelimit-reset-requests`` / ``-tokens``, durations in Go's notation
  (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``);
* Anthropic: ``anthropic-ratelimit-requests-remaining``, ``-tokens-remaining``,
  ``-input-tokens-remaining`` and ``-output-tokens-remaining``, each with its
  ``...-reset`` as an RFC 3339 time.

Every value comes from outside and is bounded: a remaining count must be a
whole number below 10**15, a reset at most :data:`MAX_RESET` seconds away;
anything else (garbage, a time without a zone, a negative duration) is
ignored, as if the header were absent. A remaining count whose reset is
missing (Azure sends none) is taken to reset after :data:`ASSUMED_RESET`.

:meth:`Headroom.exhausted` says whether a request would surely be refused:
no request left, or fewer tokens left than the request's prompt, before the
reset. Reset times are kept on the caller's monotonic clock (``now``), so a
wall-clock jump does not extend them.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Mapping

MAX_RESET = 86_400.0
"""Seconds: a reset further away than a day is not believed."""
ASSUMED_RESET = 1.0
"""Seconds: when a remaining count comes without its reset time."""
MAX_REMAINING = 10**15
_MAX_HEADER = 64

_DURATION = re.compile(r"(?:\d{1,9}(?:\.\d{1,9})?(?:ns|us|µs|ms|h|m|s))+", re.ASCII)
_DURATION_PART = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)(ns|us|µs|ms|h|m|s)", re.ASCII)
_SECONDS = re.compile(r"\d{1,9}(?:\.\d{1,9})?", re.ASCII)
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Allowance:
    """How many requests or tokens are left, and when (caller's clock) the count resets."""

    remaining: int
    reset_at: float


@dataclass(frozen=True, slots=True)
class Headroom:
    """An upstream's rate-limit allowances, as its latest answer gave them (``None``: not sent)."""

    requests: Allowance | None = None
    tokens: Allowance | None = None
    input_tokens: Allowance | None = None
    output_tokens: Allowance | None = None

    def exhausted(self, prompt_tokens: int, now: float) -> bool:
        """Whether a request of ``prompt_tokens`` would surely be refused before a reset."""
        need = max(prompt_tokens, 1)
        return (_short(self.requests, 1, now) or _short(self.tokens, need, now)
                or _short(self.input_tokens, need, now) or _short(self.output_tokens, 1, now))

    def retry_in(self, now: float) -> float:
        """Seconds until the latest reset of the allowances given (0 when all are past)."""
        resets = [a.reset_at for a in (self.requests, self.tokens, self.input_tokens, self.output_tokens)
                  if a is not None]
        return max(0.0, max(resets, default=now) - now)


def _short(allowance: Allowance | None, need: int, now: float) -> bool:
    return allowance is not None and allowance.remaining < need and now < allowance.reset_at


_OPENAI = (("requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
           ("tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"))
_ANTHROPIC = tuple((field, f"anthropic-ratelimit-{name}-remaining", f"anthropic-ratelimit-{name}-reset")
                   for field, name in (("requests", "requests"), ("tokens", "tokens"),
                                       ("input_tokens", "input-tokens"), ("output_tokens", "output-tokens")))


REMAINING_HEADERS = tuple(name for _, name, _ in (*_OPENAI, *_ANTHROPIC))
"""The headers that carry a remaining count: an answer with none of them has no headroom to give."""


def has_rate_limits(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` carry any remaining count (a few lookups: cheap enough for every answer)."""
    for name in REMAINING_HEADERS:
        if name in headers:
            return True
    return False


_NEEDS_PROMPT = frozenset(name for field, name, _ in (*_OPENAI, *_ANTHROPIC) if field in ("tokens", "input_tokens"))


def counts_suffice(headers: Mapping[str, str], prompt_tokens: int) -> bool:
    """Whether the remaining counts in ``headers`` leave room for a request of ``prompt_tokens``, whatever
    their resets say (so no reset need be parsed): ``True`` means :meth:`Headroom.exhausted` of the same
    headers is ``False``; ``False`` means only that the resets must be read to know (or that the
    headers hold no sane count at all)."""
    need = max(prompt_tokens, 1)
    seen = False
    for name in REMAINING_HEADERS:
        count = _count(headers.get(name))
        if count is not None:
            if count < (need if name in _NEEDS_PROMPT else 1):
                return False
            seen = True
    return seen


def parse_headroom(headers: Mapping[str, str], now: float, wall_now: float) -> Headroom | None:
    """The allowances ``headers`` give; ``None`` when they give none.

    ``headers`` must look names up case-insensitively (aiohttp's do) or have
    lower-case names. ``now`` is the monotonic clock that reset times are
    kept on, ``wall_now`` the wall clock (``time.time()``) that Anthropic's
    reset times are read against.
    """
    found: dict[str, Allowance] = {}
    for field, remaining_name, reset_name in _OPENAI:
        allowance = _allowance(headers.get(remaining_name), duration_seconds(headers.get(reset_name)), now)
        if allowance is not None:
            found[field] = allowance
    for field, remaining_name, reset_name in _ANTHROPIC:
        allowance = _allowance(headers.get(remaining_name),
                               _until(headers.get(reset_name), wall_now), now)
        if allowance is not None:
            found[field] = allowance
    return Headroom(**found) if found else None


def _allowance(remaining: str | None, reset_in: float | None, now: float) -> Allowance | None:
    count = _count(remaining)
    if count is None:
        return None
    return Allowance(count, now + (ASSUMED_RESET if reset_in is None else reset_in))


def _count(value: str | None) -> int | None:
    """A remaining count: ASCII digits only, below :data:`MAX_REMAINING`."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > 15 or not (value.isascii() and value.isdigit()):
        return None
    count = int(value)
    return count if count < MAX_REMAINING else None


def duration_seconds(value: str | None) -> float | None:
    """A Go-style duration (``6m0s``, ``20ms``) or plain seconds (``1.5``) in seconds, if sane."""
    if not isinstance(value, str) or len(value) > _MAX_HEADER:
        return None
    value = value.strip()
    if _DURATION.fullmatch(value):
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(value))
    elif _SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        return None
    return seconds if seconds <= MAX_RESET else None


def _until(value: str | None, wall_now: float) -> float | None:
    """Seconds from ``wall_now`` to an RFC 3339 time (at least 0), if it is one within bounds."""
    if not isinstance(value, str) or len(value) > _MAX_HEADER:
        return None
    try:
        at = _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    seconds = at.timestamp() - wall_now
    if seconds > MAX_RESET:
        return None
    return max(seconds, 0.0)
