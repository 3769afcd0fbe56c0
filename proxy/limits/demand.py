"""What a request may use at most, reserved against its limits before the upstream is called.

A request reserves one request, its prompt's estimated tokens plus the most output it
may produce, and the worst-case cost of that at the dearest price among the models its
plan may reach (fallbacks included), so no later answer can cost more than was held.
When it ends, the reservation is replaced by what it really used (``settle``).

Money is counted in integer units of 1e-10 USD (:data:`USD_UNITS`), the precision
costs are rounded to, so budgets add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from proxy.config import ModelConfig
from proxy.upstream.forwarding import requested_max_tokens

USD_UNITS = 10**10
"""Budget units per US dollar."""
_PRICE_UNITS_PER_BUDGET_UNIT = 10**4  # ModelPrice.units are 1e-14 USD per token
BYTES_PER_TOKEN_ESTIMATE = 3
"""A prompt is estimated at one token per 3 bytes of request body: more than the
tokenisers give for English and code (about 4 characters a token), about right for
scripts with multi-byte characters; the reservation is settled from real usage."""


@dataclass(frozen=True, slots=True)
class Demand:
    """The most a request may use: tokens (prompt and output) and cost (``None``: a model has no price)."""

    tokens: int
    cost_units: int | None


def estimate_prompt_tokens(body_bytes: int) -> int:
    """The prompt's estimated tokens from the request body's size."""
    return body_bytes // BYTES_PER_TOKEN_ESTIMATE + 1


def usd_to_units(usd: float | None) -> int:
    """A cost in USD (as priced, 10 decimal places) as budget units."""
    return round(usd * USD_UNITS) if usd else 0


def units_to_usd(units: int) -> float:
    """Budget units as USD."""
    return units / USD_UNITS


def request_demand(body: dict[str, Any], body_bytes: int, plan: Sequence[ModelConfig],
                   endpoint: str, reserve_output: int) -> Demand:
    """The most a request for ``plan`` (primary first, then fallbacks) may use."""
    prompt = body_bytes // BYTES_PER_TOKEN_ESTIMATE + 1
    asked = requested_max_tokens(body) if endpoint != "embeddings" else 0
    tokens = 0
    worst = 0
    priced = True
    for model in plan:
        output = asked if asked is not None else (model.max_tokens or reserve_output)
        if prompt + output > tokens:
            tokens = prompt + output
        price = model.price
        if price is None:
            priced = False
            continue
        fresh, read, write, out = price.units
        units = -(-(prompt * max(fresh, read, write) + output * out) // _PRICE_UNITS_PER_BUDGET_UNIT)
        if units > worst:
            worst = units
    return Demand(tokens, worst if priced else None)
