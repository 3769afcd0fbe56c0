"""A cheap upper bound on a request's prompt tokens, so that short prompts are never tokenised.

A request's JSON body in bytes bounds its prompt tokens from above, for every
counter of :mod:`proxy.tokens.counting`:

* byte-level BPE (OpenAI's encodings) spends at least one byte of text per
  token, and the estimate counts a token per 3 bytes, so text never counts
  more tokens than its UTF-8 bytes; JSON escapes only make the body longer;
* each message's framing (3 tokens, 1 more for a ``name``) is outweighed by
  the JSON keys that message needs (``{"role":"","content":""}`` alone is 24
  bytes), and tools and tool calls are counted as their own compact JSON;
* only images and the fixed additions do not come from the body's bytes:
  :data:`IMAGE_TOKENS` per image part and :data:`BOUND_SLACK` in all.

:func:`could_exceed` is therefore safe to ask first: when it says no, the
request fits and need not be counted. Its cost is a few arithmetic operations
(about 0.15 µs), plus, only for a body long enough to hold images that could
matter, one scan of the raw body (:func:`image_parts_in`, about 0.35 ns a byte).
"""

from __future__ import annotations

from proxy.tokens.estimate import IMAGE_TOKENS

BOUND_SLACK = 512
"""Tokens the bound adds whatever the body: reply priming, the tool-use prompt of the estimate,
and a margin for numbers that a compact JSON dump writes longer than the caller did."""

MIN_IMAGE_PART_BYTES = len('{"type":"image_url"}')
"""The shortest JSON an image part can take: a body holds at most its length / this many."""

ROUGH_BYTES_PER_TOKEN = 4
"""For :func:`rough_prompt_tokens` only: a typical, not a safe, ratio."""

_IMAGE_MARK = b'"image_url"'


def image_parts_in(raw_body: bytes) -> int:
    """An upper bound on the image parts of a raw JSON body (each part names ``"image_url"`` twice).

    ``"image_url"`` inside a JSON string has its quotes escaped, so only keys
    and ``type`` values are found (a caller who spells them with ``\\u``
    escapes only hides its images from the bound, and meets the upstream's
    own limit instead).
    """
    return raw_body.count(_IMAGE_MARK)


def prompt_upper_bound(body_bytes: int, image_parts: int = 0) -> int:
    """The most prompt tokens a request whose JSON body is ``body_bytes`` long can count."""
    return body_bytes + image_parts * IMAGE_TOKENS + BOUND_SLACK


def could_exceed(body_bytes: int, window: int, reserved_output: int = 0,
                 raw_body: bytes | None = None) -> bool:
    """Whether the prompt plus ``reserved_output`` could exceed a context ``window``.

    ``False`` means it surely fits: no need to count. ``True`` means only that
    it might: count it (:func:`proxy.tokens.counting.prompt_tokens`) to know.
    Images are only looked for (in ``raw_body``) when the body is long enough
    to hold enough of them to matter; without ``raw_body`` they are assumed
    to be as many as the body could hold.
    """
    room = window - reserved_output
    if prompt_upper_bound(body_bytes) > room:
        return True
    if prompt_upper_bound(body_bytes, body_bytes // MIN_IMAGE_PART_BYTES) <= room:
        return False  # even a body of nothing but images fits
    if raw_body is None:
        return True
    return prompt_upper_bound(body_bytes, image_parts_in(raw_body)) > room


def rough_prompt_tokens(body_bytes: int) -> int:
    """A typical prompt size for a body never counted (for cost ranking and rate-limit headroom).

    Not a bound: never use it to decide that a prompt fits.
    """
    return body_bytes // ROUGH_BYTES_PER_TOKEN
