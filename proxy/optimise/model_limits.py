"""A model's context window and largest output: the one home for these facts.

Where each comes from, first found wins:

context window
    the model's ``context_window`` in the config; else the pricing dataset
    shipped in the ``genai-prices`` package (its ``context_window``, asked of
    the same providers as prices: see :mod:`proxy.usage.pricing`); else
    unknown.
largest output
    the model's ``max_output_tokens`` in the config; else
    :data:`MAX_OUTPUT_TOKENS`, a table of the spec's and today's OpenAI and
    Anthropic models (the dataset carries no output limits), matched on the
    upstream model id with dates and tags allowed; else unknown.

Nothing is fetched: the dataset is the package's bundled data, through the
same snapshot prices use. Lookups are cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from proxy.usage.pricing import DATASET, DATASET_PROVIDERS

CONFIG = "config"
TABLE = "table"

MAX_OUTPUT_TOKENS: tuple[tuple[str, int], ...] = (
    # OpenAI
    ("gpt-3.5-turbo", 4096), ("gpt-35-turbo", 4096),
    ("gpt-4", 8192), ("gpt-4-32k", 32768), ("gpt-4-turbo", 4096), ("gpt-4-1106", 4096),
    ("gpt-4-0125", 4096), ("gpt-4-vision", 4096),
    ("gpt-4o", 16384), ("gpt-4o-2024-05-13", 4096), ("gpt-4o-mini", 16384), ("chatgpt-4o", 16384),
    ("gpt-4.1", 32768), ("gpt-4.1-mini", 32768), ("gpt-4.1-nano", 32768), ("gpt-4.5", 16384),
    ("gpt-5", 128000), ("gpt-5-mini", 128000), ("gpt-5-nano", 128000),
    ("o1", 100000), ("o1-mini", 65536), ("o1-preview", 32768), ("o3", 100000),
    ("o3-mini", 100000), ("o4-mini", 100000),
    # Anthropic
    ("claude-3-opus", 4096), ("claude-3-sonnet", 4096), ("claude-3-haiku", 4096),
    ("claude-3-5-sonnet", 8192), ("claude-3-5-haiku", 8192), ("claude-3-7-sonnet", 64000),
    ("claude-opus-4", 32000), ("claude-opus-4-1", 32000), ("claude-opus-4-5", 64000),
    ("claude-opus-4-6", 128000), ("claude-sonnet-4", 64000), ("claude-sonnet-4-5", 64000),
    ("claude-sonnet-4-6", 128000), ("claude-haiku-4-5", 64000),
)
"""Largest output per model (tokens), as the vendors document them. A name matches its entry
exactly or followed by dates, sizes and tags only (``gpt-4-0613``, ``gpt-3.5-turbo-16k``,
``claude-3-opus-20240229``, ``claude-sonnet-4-0``, ``gpt-4.5-preview``, ``-latest``), so a
model not listed (a future ``claude-opus-4-7``) is unknown rather than taken for its elder."""

_TAIL = re.compile(r"(?:-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d+k|0|latest|preview))*$")
_OUTPUT_FAMILIES = dict(MAX_OUTPUT_TOKENS)
_FAMILY_PREFIXES = sorted(_OUTPUT_FAMILIES, key=len, reverse=True)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What a model can hold: its context window (prompt plus output) and its largest output."""

    context_window: int | None
    max_output_tokens: int | None
    window_source: str | None = None  # "config", "genai-prices" or None
    output_source: str | None = None  # "config", "table" or None

    def output_fits(self, output_tokens: int) -> bool:
        """Whether ``output_tokens`` is within the model's largest output (unknown: it is)."""
        return self.max_output_tokens is None or output_tokens <= self.max_output_tokens

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        """Whether the window holds the prompt plus the output (unknown window: it does)."""
        return self.context_window is None or prompt_tokens + output_tokens <= self.context_window


def model_limits(provider_type: str, upstream_model: str, configured_window: int | None,
                 configured_max_output: int | None) -> ModelLimits | None:
    """The limits of ``upstream_model`` at a provider of ``provider_type``; ``None`` if none is known.

    The configured values win over the dataset and the table.
    """
    window, window_source = configured_window, CONFIG if configured_window is not None else None
    if window is None:
        window = dataset_context_window(provider_type, upstream_model)
        window_source = DATASET if window is not None else None
    output, output_source = configured_max_output, CONFIG if configured_max_output is not None else None
    if output is None:
        output = table_max_output(upstream_model)
        output_source = TABLE if output is not None else None
    if window is None and output is None:
        return None
    return ModelLimits(window, output, window_source, output_source)


def dataset_context_window(provider_type: str, upstream_model: str) -> int | None:
    """The pricing dataset's context window of ``upstream_model``, or ``None``."""
    providers = DATASET_PROVIDERS.get(provider_type)
    if providers is None or not isinstance(upstream_model, str) or not upstream_model.strip():
        return None
    return _dataset_window(providers, upstream_model.strip().lower())


@lru_cache(maxsize=4096)
def _dataset_window(providers: tuple[str, ...], model_id: str) -> int | None:
    candidates = [(provider, model_id) for provider in providers]
    if "openrouter" in providers and "/" in model_id:  # OpenRouter ids name the vendor too
        vendor, _, vendor_model = model_id.partition("/")
        candidates.append((vendor, vendor_model))
    for provider_id, ref in candidates:
        window = _window(provider_id, ref)
        if window is not None:
            return window
    return None


def _window(provider_id: str, model_id: str) -> int | None:
    from proxy.usage.pricing import _snapshot  # the one snapshot of the bundled data

    try:
        _, model = _snapshot().find_provider_model(model_id, None, provider_id, None)
    except LookupError:
        return None
    window: Any = getattr(model, "context_window", None)
    return window if type(window) is int and window > 0 else None


@lru_cache(maxsize=4096)
def table_max_output(upstream_model: str) -> int | None:
    """The largest output of ``upstream_model`` in :data:`MAX_OUTPUT_TOKENS`, or ``None``."""
    if not isinstance(upstream_model, str):
        return None
    name = model_family_name(upstream_model)
    for family in _FAMILY_PREFIXES:  # the longest family that the name starts with and ends in tags
        if name.startswith(family) and _TAIL.match(name, len(family)):
            return _OUTPUT_FAMILIES[family]
    return None


def model_family_name(upstream_model: str) -> str:
    """An upstream id as the tables spell it: lower case, OpenRouter's ``openai/`` or ``anthropic/``
    dropped, and Claude versions with dashes (OpenRouter's ``claude-3.5-sonnet``)."""
    name = upstream_model.strip().lower()
    vendor, sep, rest = name.partition("/")
    if sep and vendor in ("openai", "anthropic"):
        name = rest
    return name.replace(".", "-") if name.startswith("claude") else name
