"""What a request uses that not every model offers: tools, images, a JSON response format.

:func:`request_capabilities` reads them off a Chat Completions body;
:func:`model_capabilities` says which a model offers. A model is assumed to
offer all of them unless :data:`KNOWN_LACKS` (models documented without some)
or the gateway's own translation says otherwise: requests to a provider of
type ``anthropic`` cannot ask for a JSON response format, which the
translation refuses (:mod:`proxy.formats.anthropic.request`). The list only
names what is sure, so an unknown model is never passed over for a
capability it might have.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

TOOLS = "tools"
IMAGES = "images"
JSON_SCHEMA = "json_schema"
"""``response_format: {"type": "json_schema", ...}`` (structured outputs)."""
JSON_OBJECT = "json_object"
"""``response_format: {"type": "json_object"}`` (JSON mode)."""
ALL = frozenset((TOOLS, IMAGES, JSON_SCHEMA, JSON_OBJECT))

_TAIL = r"(?:-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d+k|latest|preview))*$"
KNOWN_LACKS: tuple[tuple[str, frozenset[str]], ...] = (
    (r"gpt-3\.5-turbo|gpt-35-turbo", frozenset((IMAGES, JSON_SCHEMA))),
    (r"gpt-4-(?:1106|0125)|gpt-4-turbo-preview", frozenset((IMAGES, JSON_SCHEMA))),
    (r"gpt-4-turbo", frozenset((JSON_SCHEMA,))),
    (r"gpt-4(?:-32k)?", frozenset((IMAGES, JSON_SCHEMA, JSON_OBJECT))),
    (r"o1-mini|o1-preview", frozenset((TOOLS, IMAGES, JSON_SCHEMA, JSON_OBJECT))),
    (r"o3-mini", frozenset((IMAGES,))),
)
"""Model ids (dates and tags allowed after them) and what they are documented to lack; the first
entry that matches counts, so more specific ids come first."""
_LACKS = tuple((re.compile(f"(?:{names}){_TAIL}"), lacks) for names, lacks in KNOWN_LACKS)
_TRANSLATION_LACKS = {"anthropic": frozenset((JSON_SCHEMA, JSON_OBJECT))}


def request_capabilities(body: dict[str, Any]) -> frozenset[str]:
    """What ``body`` (a parsed Chat Completions request) uses of :data:`ALL`."""
    used = []
    if body.get("tools") or body.get("functions"):
        used.append(TOOLS)
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == JSON_SCHEMA or kind == JSON_OBJECT:
        used.append(kind)
    if _has_image(body.get("messages")):
        used.append(IMAGES)
    return frozenset(used)


def _has_image(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    return True
    return False


@lru_cache(maxsize=4096)
def model_capabilities(provider_type: str, upstream_model: str) -> frozenset[str]:
    """What ``upstream_model`` at a provider of ``provider_type`` offers of :data:`ALL`."""
    lacks = set(_TRANSLATION_LACKS.get(provider_type, ()))
    name = upstream_model.strip().lower() if isinstance(upstream_model, str) else ""
    vendor, sep, rest = name.partition("/")
    if sep and vendor in ("openai", "anthropic"):  # OpenRouter's ids
        name = rest
    for pattern, lacking in _LACKS:
        if pattern.match(name):
            lacks |= lacking
            break
    return ALL - lacks
