"""Which OpenAI encoding a model uses, by its name.

``o200k_base``: the GPT-4o, GPT-4.1, GPT-4.5 and GPT-5 families, the
o-series reasoning models (``o1``, ``o3``, ``o4-mini``...) and ``gpt-oss``.
``cl100k_base``: GPT-4 and GPT-4 Turbo, GPT-3.5 Turbo (Azure's ``gpt-35-turbo``
too) and the ``text-embedding-3``/``ada-002`` embeddings.

The name decides, whatever the provider: dated ids (``gpt-4o-2024-08-06``),
suffixed ones (``gpt-4.1-mini``) and OpenRouter's ``openai/...`` ids match;
any other name (Claude, Llama, an Azure deployment named something else) has
no encoding here and is counted with the estimate of
:mod:`proxy.tokens.estimate`.
"""

from __future__ import annotations

import re
from functools import lru_cache

O200K = "o200k_base"
CL100K = "cl100k_base"

_AFTER = r"(?:[-.:_@].*)?$"  # a date, a size, a version or nothing after the family name
_FAMILIES = (
    (re.compile(r"^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|gpt-oss)" + _AFTER), O200K),
    (re.compile(r"^(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002)" + _AFTER), CL100K),
)


@lru_cache(maxsize=4096)
def encoding_for(model: str) -> str | None:
    """The encoding of ``model`` (an upstream model id), or ``None`` when it is not an OpenAI model."""
    name = model.strip().lower()
    if name.startswith("openai/"):  # OpenRouter's ids
        name = name[len("openai/"):]
    for pattern, encoding in _FAMILIES:
        if pattern.match(name):
            return encoding
    return None
