"""How big one request's prompt is, learned only as far as a routing decision needs.

:class:`PromptSize` answers "could this prompt overflow a window of W tokens
once M output tokens are reserved?" from the body's size in bytes first
(:mod:`proxy.tokens.bound`: a few arithmetic operations, so a short prompt is
never tokenised), then, only for a long body, from the number of image parts
of the parsed body; and only when the window is really at risk does it count
the prompt (:func:`proxy.tokens.counting.prompt_tokens`), once per token
counter, however many models share it.
"""

from __future__ import annotations

from typing import Any

from proxy.tokens.bound import BOUND_SLACK, MIN_IMAGE_PART_BYTES, prompt_upper_bound
from proxy.tokens.counting import PromptTokens, TokenCounter, prompt_tokens
from proxy.tokens.estimate import IMAGE_TOKENS


class PromptSize:
    """What is known of one request's prompt size; built per request, cheap until it must count."""

    __slots__ = ("body", "body_bytes", "_images", "_counts")

    def __init__(self, body: dict[str, Any], body_bytes: int) -> None:
        self.body = body
        self.body_bytes = body_bytes
        self._images: int | None = None
        self._counts: dict[str, PromptTokens] = {}

    def at_risk(self, window: int, output: int) -> bool:
        """Whether the prompt plus ``output`` could exceed ``window`` (``False``: it surely fits)."""
        room = window - output
        bound = self.body_bytes + BOUND_SLACK
        if bound > room:
            return True
        if bound + (self.body_bytes // MIN_IMAGE_PART_BYTES) * IMAGE_TOKENS <= room:
            return False  # even a body of nothing but images would fit
        return prompt_upper_bound(self.body_bytes, self.images()) > room

    def images(self) -> int:
        """The number of ``image_url`` parts in the body's messages."""
        if self._images is None:
            self._images = image_parts(self.body.get("messages"))
        return self._images

    def counted(self, counter: TokenCounter) -> PromptTokens:
        """The prompt's tokens by ``counter`` (counted once per counter)."""
        found = self._counts.get(counter.method)
        if found is None:
            found = self._counts[counter.method] = prompt_tokens(self.body, counter)
        return found

    def know(self, counted: PromptTokens) -> None:
        """Take ``counted`` as the count by its method (after a trim that already knows it)."""
        self._counts[counted.method] = counted

    def forget_counts(self) -> None:
        """The body's messages changed: every count must be made again."""
        self._counts = {}
        self._images = None


def image_parts(messages: Any) -> int:
    """How many ``image_url`` content parts ``messages`` hold."""
    if not isinstance(messages, list):
        return 0
    found = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    return found
