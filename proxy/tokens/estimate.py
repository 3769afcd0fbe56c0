"""The documented token estimate for models whose tokenizer does not ship with a package.

Anthropic's, Google's and open models' tokenizers either are not published or
are fetched at run time, so their counts here are estimates, chosen to lean
high (a context check that over-counts refuses or trims a little early; one
that under-counts sends a request the upstream refuses):

* text: one token per **3 bytes of UTF-8**, rounded up. English prose runs at
  about 3.5-4.5 characters a token on Claude's and Llama's tokenizers and code
  at about 3, so this over-counts English by roughly 15-40 %; CJK characters
  take 3 bytes and usually about one token, so they are counted about right,
  where a characters-based rule (characters / 3.5) would under-count them
  three-fold. It never exceeds the byte count, the bound that byte-level BPE
  tokenizers obey (each token stands for at least one byte).
* an image: :data:`IMAGE_TOKENS` whatever its size (the file is never fetched
  or decoded).
* tool definitions: their JSON as text, plus :data:`TOOL_USE_PROMPT_TOKENS`
  for the tool-use instructions Anthropic adds when a request has tools.
"""

from __future__ import annotations

IMAGE_TOKENS = 1600
"""An image, any model: Anthropic's largest image before it downscales (about 1.15 megapixels at
750 pixels a token) costs about 1,600 tokens, and OpenAI's high-detail tiling at most 1,445 on
GPT-4o and GPT-4.1 (85 + 8 tiles of 170). GPT-4o mini's inflated image counts are not modelled."""

TOOL_USE_PROMPT_TOKENS = 350
"""What Anthropic's tool-use system prompt adds when tools are present (it documents 264-346
tokens across the Claude 3 and 4 models)."""

BYTES_PER_TOKEN = 3


def utf8_length(text: str) -> int:
    """The length of ``text`` in UTF-8 bytes (no copy for ASCII text)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def estimate_tokens(text: str) -> int:
    """The estimated tokens of ``text``: its UTF-8 bytes / 3, rounded up."""
    return -(-utf8_length(text) // BYTES_PER_TOKEN)
