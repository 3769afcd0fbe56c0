"""What one request saved, by reason, kept on its context for the log line, the metrics and the ledger.

``ctx.saved`` holds the nonzero savings by :class:`SavingReason` and
``ctx.saved_usd`` their sum. A cached answer records ``cache`` when it is
served; an upstream answer records the others when it is priced
(:func:`settle`, from :func:`proxy.usage.costing.charge`): ``routing`` when a
rule with several candidates routed it, ``prompt_cache`` when the provider
read prompt tokens from its cache, ``trim`` when the conversation was
trimmed. Each is set, not added, so pricing an answer again changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.optimise.savings import SavingReason, saved_by_prompt_cache, saved_by_routing, saved_by_trim
from proxy.usage.pricing import ModelPrice, TokenUsage

if TYPE_CHECKING:
    from proxy.context import RequestContext

COLUMNS: dict[str, str] = {reason.value: f"saved_{reason.value}_usd" for reason in SavingReason}
"""The ledger column of each reason (``saved_cache_usd``, ``saved_routing_usd``, ...)."""


def record_saving(ctx: "RequestContext", reason: SavingReason, amount: float) -> None:
    """``amount`` USD saved for ``reason`` (replacing what that reason had); ``saved_usd`` is their sum."""
    saved = ctx.saved
    key = reason.value  # a plain str: the log line's JSON takes no enum keys
    if amount <= 0:
        if saved is None or key not in saved:
            return
        del saved[key]
    elif saved is None:  # the usual case: the request's one saving
        ctx.saved = {key: amount}
        ctx.saved_usd = amount
        return
    else:
        saved[key] = amount
    ctx.saved_usd = round(sum(saved.values()), 10)


def settle(ctx: "RequestContext", tokens: TokenUsage, price: ModelPrice | None) -> None:
    """The savings of an upstream answer with usage ``tokens``, priced at ``price`` (its model's)."""
    if price is None:
        return
    if tokens.cached_tokens:
        record_saving(ctx, SavingReason.PROMPT_CACHE, saved_by_prompt_cache(price, tokens))
    route = ctx.route
    rule = route.rule if route is not None else None
    if rule is not None and rule.multi:
        record_saving(ctx, SavingReason.ROUTING, saved_by_routing(tokens, price, rule.prices))
    if ctx.trimmed_tokens:
        record_saving(ctx, SavingReason.TRIM, saved_by_trim(price, ctx.trimmed_tokens))


_NOTHING: dict[str, float] = {}


def ledger_columns(ctx: "RequestContext") -> dict[str, float]:
    """The request's savings as the usage record's per-reason fields (``{}`` when nothing was saved:
    the record's fields default to 0). Do not modify the answer."""
    saved = ctx.saved
    if not saved:
        return _NOTHING
    return {COLUMNS[reason]: amount for reason, amount in saved.items()}
