"""What an optimisation saved a request, in USD, by reason (the ``reason`` of ``llm_gateway_saved_usd_total``).

``cache``
    a cached answer: what it cost when it was made (the cache stage knows).
``routing``
    :func:`saved_by_routing`: the request's actual usage priced at the
    rule's most expensive candidate (the one that would have charged most for
    exactly this usage), minus what it actually cost.
``prompt_cache``
    :func:`saved_by_prompt_cache`: the prompt tokens read from the provider's
    cache priced as fresh input, minus what they cost. Cache writes, which
    cost more than fresh input, are not netted off: they buy later reads.
``trim``
    :func:`saved_by_trim`: the dropped messages' estimated tokens at the
    model's input price.

All use :func:`proxy.usage.pricing.cost_usd`'s integer-exact arithmetic and its
rounding to 10 decimal places; none is ever negative, and an unknown price
saves ``0.0``.
"""

from __future__ import annotations

import enum
from typing import Iterable

from proxy.usage import pricing
from proxy.usage.pricing import ModelPrice, TokenUsage, cost_units, cost_usd, usd_of_units


class SavingReason(enum.StrEnum):
    """The ``reason`` label of a saving."""

    CACHE = "cache"
    ROUTING = "routing"
    PROMPT_CACHE = "prompt_cache"
    TRIM = "trim"


def saved_by_routing(usage: TokenUsage, actual: ModelPrice | None,
                     candidates: Iterable[ModelPrice | None]) -> float:
    """``usage`` at the dearest of ``candidates``' prices, minus its cost at ``actual`` (the difference
    taken exactly, in the integer units of :func:`proxy.usage.pricing.cost_units`, then rounded once)."""
    if actual is None:
        return 0.0
    dearest = -1
    for price in candidates:
        if price is not None:
            units = cost_units(price, usage)
            if units > dearest:
                dearest = units
    if dearest < 0:
        return 0.0
    return usd_of_units(max(0, dearest - cost_units(actual, usage)))


def saved_by_prompt_cache(price: ModelPrice | None, usage: TokenUsage) -> float:
    """What ``usage``'s cache reads saved at ``price``: as fresh input, minus their cache price."""
    return 0.0 if price is None else max(0.0, pricing.saved_by_prompt_cache(price, usage))


def saved_by_trim(price: ModelPrice | None, dropped_tokens: int) -> float:
    """What ``dropped_tokens`` of prompt would have cost at ``price``'s input price."""
    if price is None or dropped_tokens <= 0:
        return 0.0
    return cost_usd(price, TokenUsage(prompt_tokens=dropped_tokens))
