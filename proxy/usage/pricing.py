"""Prices of models and the cost of a request's usage.

A model's price comes from its ``pricing`` in the config, else from the
pricing dataset shipped inside the ``genai-prices`` package, resolved when the
config is loaded or reloaded (:func:`model_price`, called by the loader).

Where a dataset price comes from
    The provider type says which of the dataset's providers to ask: ``openai``
    and ``azure`` (deployments are usually named after the model) ask OpenAI's
    prices, with Azure's own entries as a second chance for Azure-only names
    such as ``gpt-35-turbo``; ``anthropic`` asks Anthropic's; ``openrouter``
    asks OpenRouter's (ids like ``anthropic/claude-3-opus``), then the vendor
    the id names (``anthropic`` for ``anthropic/...``). ``openai_compatible``
    and ``mock`` models have no dataset price: give them a ``pricing``. The
    dataset's own matching resolves dated ids and undated aliases alike
    (``claude-3-opus-20240229`` and ``claude-3-opus``), case-insensitively.

What is taken from the dataset
    The base price at the time of load: of the dataset's dated prices, the one
    in force on the day the config is loaded; prices that apply only at some
    hours of the day (off-peak discounts) are ignored; of token tiers (a higher
    price for all tokens past, say, 200k prompt tokens), the base price below
    the first tier; of cache writes, the 5-minute write price
    (``cache_write_mtok``; Anthropic's 1-hour writes cost more). Request
    variants such as service tiers and per-search or per-image prices are not
    taken. A model the dataset knows only by non-token prices has no price.

Nothing is fetched
    Only the package's bundled data (``genai_prices.data``, Python source in
    the wheel) is read, through a :class:`genai_prices.data_snapshot.DataSnapshot`
    built here, so a snapshot that someone fetched with the package's
    ``UpdatePrices`` (the one part of it that uses the network, never called
    here) is not used either. Lookups are cached per provider, model and day;
    the dataset is imported on the first lookup that needs it (0.15-0.2 s,
    once per process), so a config whose models all have a ``pricing`` never
    imports it.

Cost
    :func:`cost_usd` prices a :class:`TokenUsage` exactly, in decimal
    arithmetic, and rounds to 10 decimal places (a ten-thousandth of a
    micro-dollar), so the same usage always costs the same float whether it
    came from a plain answer or a stream. Prompt tokens read from the cache are
    priced at ``cached_input``, those written to it at ``cache_write`` (each
    ``input`` when ``None``), the rest of the prompt at ``input`` and the
    completion (reasoning tokens included, as OpenAI counts them) at ``output``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Mapping

DATASET = "genai-prices"
"""The ``source`` of a price taken from the genai-prices package's data."""

DATASET_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "azure": ("openai", "azure"),
    "anthropic": ("anthropic",),
    "openrouter": ("openrouter",),
}
"""The dataset's providers to ask, in order, for a provider type's models (other types: none)."""

UNITS_PER_DOLLAR_PER_MILLION = 10**8
"""Prices are kept as integers of 1e-14 USD per token (1e-8 USD per million tokens), so a cost
is an exact integer sum (a finer price is rounded to that); costs round to 10 places."""
_UNITS_PER_ROUNDED = 10**4  # 1e-14 USD units in one 1e-10 USD step


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's price in USD per million tokens, and where it came from.

    ``cached_input`` is the price of prompt tokens read from the provider's
    prompt cache and ``cache_write`` of prompt tokens written to it; ``None``
    means they cost what fresh input costs.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    source: str = "config"  # "config", or the pricing dataset's name
    units: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)
    """Input, cache-read, cache-write and output prices as integer units (see :func:`cost_usd`)."""

    def __post_init__(self) -> None:
        units = (_units(self.input), _units(_or(self.cached_input, self.input)),
                 _units(_or(self.cache_write, self.input)), _units(self.output))
        object.__setattr__(self, "units", units)


@dataclass(slots=True)
class TokenUsage:
    """The tokens a request used, as OpenAI counts them.

    ``cached_tokens`` (prompt tokens read from the provider's prompt cache) and
    ``cache_write_tokens`` (prompt tokens written to it) are part of
    ``prompt_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Any) -> TokenUsage:
        """The counts of an OpenAI ``usage`` object; never raises.

        Reads ``prompt_tokens``, ``completion_tokens`` and, from
        ``prompt_tokens_details``, ``cached_tokens`` and ``cache_write_tokens``
        (the gateway's Anthropic translation and OpenRouter report writes under
        that name). Anything missing or not a non-negative integer counts 0.
        """
        if type(usage) is not dict:
            return cls()
        details = usage.get("prompt_tokens_details")
        if type(details) is not dict:
            return cls(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        return cls(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")),
                   _count(details.get("cached_tokens")), _count(details.get("cache_write_tokens")))


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


# ---------------------------------------------------------------------- prices


def model_price(provider_type: str, upstream_model: str, configured: Mapping[str, Any] | None) -> ModelPrice | None:
    """The price of ``upstream_model`` at a provider of ``provider_type``; ``None`` if it has none.

    ``configured`` (the model's ``pricing`` in the config) wins; otherwise the
    genai-prices dataset is asked (see the module's docstring for what is taken).
    """
    if configured is not None:
        return ModelPrice(input=configured["input"], output=configured["output"],
                          cached_input=configured.get("cached_input"),
                          cache_write=configured.get("cache_write"), source="config")
    providers = DATASET_PROVIDERS.get(provider_type)
    if providers is None or not isinstance(upstream_model, str) or not upstream_model.strip():
        return None
    return dataset_price(providers, upstream_model.strip().lower(), _dt.datetime.now(_dt.UTC).date())


@lru_cache(maxsize=4096)
def dataset_price(providers: tuple[str, ...], model_id: str, day: _dt.date) -> ModelPrice | None:
    """The dataset's base price of ``model_id`` on ``day`` at the first of ``providers`` that knows it."""
    candidates = [(provider, model_id) for provider in providers]
    if "openrouter" in providers and "/" in model_id:
        vendor, _, vendor_model = model_id.partition("/")
        candidates.append((vendor, vendor_model))
    for provider_id, ref in candidates:
        price = _lookup(provider_id, ref, day)
        if price is not None:
            return price
    return None


def _lookup(provider_id: str, model_id: str, day: _dt.date) -> ModelPrice | None:
    from genai_prices.types import TimeOfDateConstraint

    try:
        _, model = _snapshot().find_provider_model(model_id, None, provider_id, None)
    except LookupError:  # the dataset knows no such provider, or no such model there
        return None
    prices = model.prices
    if isinstance(prices, list):  # dated (or hourly) prices: the last one in force wins
        at = _dt.datetime.combine(day, _dt.time(), _dt.UTC)
        in_force = [c.prices for c in prices
                    if not isinstance(c.constraint, TimeOfDateConstraint)
                    and (c.constraint is None or c.constraint.active(at))]
        prices = in_force[-1] if in_force else prices[0].prices
    fresh, output = _base(prices, "input_mtok"), _base(prices, "output_mtok")
    if fresh is None and output is None:  # priced by request, image or second: not by token
        return None
    return ModelPrice(input=float(fresh or 0), output=float(output or 0),
                      cached_input=_as_float(_base(prices, "cache_read_mtok")),
                      cache_write=_as_float(_base(prices, "cache_write_mtok")), source=DATASET)


def _base(prices: Any, key: str) -> Decimal | None:
    """A price of the dataset's, the base one when it is tiered."""
    value = getattr(prices, key, None)
    value = getattr(value, "base", value)  # TieredPrices: the price below the first tier
    return value if isinstance(value, Decimal) else None


def _as_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@lru_cache(maxsize=1)
def _snapshot() -> Any:
    """The package's bundled data as a snapshot of our own (never one fetched by ``UpdatePrices``)."""
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


# ------------------------------------------------------------------------ cost


def cost_usd(price: ModelPrice, usage: TokenUsage) -> float:
    """What ``usage`` cost in USD at ``price``, exact to 10 decimal places.

    The sum is done in integers (see :data:`UNITS_PER_DOLLAR_PER_MILLION`) and
    rounded half-even to 10 decimal places, so the same usage always costs the
    same, to the token. Counts that do not add up are read as OpenAI would
    have had to mean them: cache reads beyond the prompt count as the whole
    prompt, and writes beyond what is left of it as the rest, so a cost is
    never negative.
    """
    fresh_units, read_units, write_units, output_units = price.units
    if not (usage.cached_tokens or usage.cache_write_tokens):  # the usual request: no prompt cache
        return _dollars(usage.prompt_tokens * fresh_units + usage.completion_tokens * output_units)
    fresh, cached, written = _prompt_parts(usage)
    return _dollars(fresh * fresh_units + cached * read_units + written * write_units
                    + usage.completion_tokens * output_units)


def cost_units(price: ModelPrice, usage: TokenUsage) -> int:
    """``usage`` at ``price`` in integer units of 1e-14 USD: :func:`cost_usd` before its rounding
    (to compare and subtract costs exactly; :data:`usd_of_units` rounds the result)."""
    fresh_units, read_units, write_units, output_units = price.units
    if not (usage.cached_tokens or usage.cache_write_tokens):
        return usage.prompt_tokens * fresh_units + usage.completion_tokens * output_units
    fresh, cached, written = _prompt_parts(usage)
    return fresh * fresh_units + cached * read_units + written * write_units + usage.completion_tokens * output_units


def saved_by_prompt_cache(price: ModelPrice, usage: TokenUsage) -> float:
    """What the prompt cache's reads saved: their price as fresh input minus what they cost."""
    _, cached, _ = _prompt_parts(usage)
    return _dollars(cached * (price.units[0] - price.units[1]))


def _prompt_parts(usage: TokenUsage) -> tuple[int, int, int]:
    """The prompt's fresh, cache-read and cache-written tokens, never more than the prompt."""
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), prompt)
    written = min(max(usage.cache_write_tokens, 0), prompt - cached)
    return prompt - cached - written, cached, written


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@lru_cache(maxsize=1024)
def _units(value: float) -> int:
    """A per-million price as integer units of 1e-14 USD per token (from its shortest decimal repr)."""
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return int((exact * UNITS_PER_DOLLAR_PER_MILLION).to_integral_value(rounding=ROUND_HALF_EVEN))


def _dollars(units: int) -> float:
    """Integer 1e-14 USD units as dollars, rounded half-even to 10 decimal places."""
    steps, rest = divmod(units, _UNITS_PER_ROUNDED)
    if rest * 2 > _UNITS_PER_ROUNDED or (rest * 2 == _UNITS_PER_ROUNDED and steps % 2):
        steps += 1
    return steps / 10**10


usd_of_units = _dollars
"""Integer 1e-14 USD units (:func:`cost_units`) as dollars, rounded as every cost is."""
