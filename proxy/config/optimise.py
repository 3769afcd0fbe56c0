"""The config's cost-optimisation fields: read, checked and resolved once, when a config is loaded.

On a model (``providers.<name>.models.<model>``): ``context_window`` and
``max_output_tokens`` (what the model can hold, over the pricing dataset and
the table of :mod:`proxy.optimise.model_limits`), ``default_max_tokens``,
``prompt_caching: "auto"`` (Anthropic only) and ``trim``. The last three may
also be set on a routing rule, and then win for the requests the rule routes
(:func:`rule_overrides`, :func:`tuned_models`).

Each model is resolved here so no request pays for it: its limits, its
capabilities, its token counter (only when its window is known: building a
counter loads its tokenizer's tables, 0.03-0.06 s and 32-64 MB per process,
and a model with no known window is never counted) and the output it asks for
when a request sets none. Every mistake is a :class:`ConfigError` naming the
JSON path.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping

from proxy.config.model import ConfigError, ModelConfig, TrimSettings
from proxy.formats.anthropic.request import DEFAULT_MAX_TOKENS as ANTHROPIC_DEFAULT_MAX_TOKENS
from proxy.optimise.capabilities import model_capabilities
from proxy.optimise.model_limits import model_limits
from proxy.tokens.counting import counter_for

ANTHROPIC = "anthropic"
TUNING_FIELDS = ("default_max_tokens", "prompt_caching", "trim")
"""The fields a routing rule may set over its models'."""


def model_fields(kind: str, upstream_model: str, settings: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The :class:`ModelConfig` keyword arguments of one model's optimisation fields, resolved.

    ``path`` is the model's JSON path (``$.providers.openai.models.gpt-4o``).
    """
    window, max_output = settings.get("context_window"), settings.get("max_output_tokens")
    if window is not None and max_output is not None and max_output > window:
        raise ConfigError(f"{path}.max_output_tokens: {max_output} is more than the model's context_window "
                          f"({window}); the output is part of the window")
    limits = model_limits(kind, upstream_model, window, max_output)
    caching = settings.get("prompt_caching") == "auto"
    if caching and kind != ANTHROPIC:
        raise ConfigError(f"{path}.prompt_caching: 'auto' places Anthropic's cache breakpoints, so it is for "
                          f"models of a provider of type 'anthropic', not '{kind}' (OpenAI-style providers "
                          "cache prompts by themselves)")
    fields: dict[str, Any] = {
        "provider_type": kind,
        "context_window": window,
        "max_output_tokens": max_output,
        "default_max_tokens": settings.get("default_max_tokens"),
        "prompt_caching": caching,
        "trim": trim_settings(settings.get("trim")),
        "limits": limits,
        "capabilities": model_capabilities(kind, upstream_model),
        "counter": counter_for(upstream_model) if limits is not None and limits.context_window else None,
        "max_tokens": settings.get("max_tokens"),
    }
    fields["default_output"] = default_output(kind, fields["default_max_tokens"], fields["max_tokens"])
    check_tuning(fields, upstream_model, path)
    del fields["max_tokens"]
    return fields


def trim_settings(body: Mapping[str, Any] | None) -> TrimSettings | None:
    """``trim``'s settings; ``None`` when absent or ``{"strategy": "none"}``."""
    if not body or body.get("strategy") == "none":
        return None
    return TrimSettings(strategy=body["strategy"], keep_system=body.get("keep_system", True))


def default_output(kind: str, default_max_tokens: int | None, max_tokens: int | None) -> int:
    """The output a model is asked for when a request sets no ``max_tokens``.

    ``default_max_tokens`` when set; for Anthropic, which needs one, the
    translation's default (capped by the model's ``max_tokens``); else 0 (the
    upstream decides).
    """
    if default_max_tokens is not None:
        return default_max_tokens
    if kind == ANTHROPIC:
        return min(max_tokens, ANTHROPIC_DEFAULT_MAX_TOKENS) if max_tokens else ANTHROPIC_DEFAULT_MAX_TOKENS
    return 0


def check_tuning(fields: Mapping[str, Any], upstream_model: str, path: str, who: str = "the model") -> None:
    """A ``default_max_tokens`` the model would refuse, or a ``trim`` that can never act, is an error.

    ``who`` names the model in the message (a rule's settings reach several).
    """
    default = fields["default_max_tokens"]
    if default is not None:
        if fields["max_tokens"] is not None and default > fields["max_tokens"]:
            raise ConfigError(f"{path}.default_max_tokens: {default} is above the max_tokens of {who} "
                              f"({fields['max_tokens']}), the most a request may ask for")
        limits = fields["limits"]
        if limits is not None and limits.max_output_tokens is not None and default > limits.max_output_tokens:
            raise ConfigError(f"{path}.default_max_tokens: {default} is above the largest output of "
                              f"'{upstream_model}' ({limits.max_output_tokens}); set max_output_tokens if "
                              "that figure is wrong")
    limits = fields["limits"]
    if fields["trim"] is not None and (limits is None or limits.context_window is None):
        raise ConfigError(f"{path}.trim: trimming needs the model's context window, which is not known for "
                          f"'{upstream_model}'; set context_window")


def rule_overrides(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The tuning fields a routing rule sets (``{}``: none), as :class:`ModelConfig` values."""
    found: dict[str, Any] = {}
    if "default_max_tokens" in rule:
        found["default_max_tokens"] = rule["default_max_tokens"]
    if "prompt_caching" in rule:
        found["prompt_caching"] = rule["prompt_caching"] == "auto"
    if "trim" in rule:
        found["trim"] = trim_settings(rule["trim"])
    return found


def tuned(model: ModelConfig, overrides: Mapping[str, Any], path: str) -> ModelConfig:
    """``model`` with a rule's ``overrides`` (prompt caching only reaches Anthropic models)."""
    changes = dict(overrides)
    if model.provider_type != ANTHROPIC:
        changes.pop("prompt_caching", None)
    if not changes:
        return model
    changed = replace(model, **changes)
    if changed.trim is not None and changed.context_limit is None:
        changed = replace(changed, trim=None)  # a rule's trim acts where a window is known
    fields = {"default_max_tokens": changed.default_max_tokens, "max_tokens": changed.max_tokens,
              "limits": changed.limits, "trim": changed.trim}
    check_tuning(fields, model.upstream_model, path, f"'{model.qualified_name}'")
    return replace(changed, default_output=default_output(
        model.provider_type, changed.default_max_tokens, changed.max_tokens))


def tuned_models(candidates: Iterable[ModelConfig], others: Iterable[ModelConfig], overrides: Mapping[str, Any],
                 path: str) -> dict[str, ModelConfig]:
    """``provider/model`` -> the model with a rule's ``overrides``.

    The rule's ``candidates`` must take them (else a :class:`ConfigError`);
    ``others`` (the models a fallback may reach) take them where they can and
    keep their own where they cannot (a ``default_max_tokens`` above their limit).
    """
    found = {}
    for model in others:
        try:
            found[model.qualified_name] = tuned(model, overrides, path)
        except ConfigError:
            found[model.qualified_name] = model
    for model in candidates:
        found[model.qualified_name] = tuned(model, overrides, path)
    return found


def check_rule_tuning(candidates: Iterable[ModelConfig], overrides: Mapping[str, Any], path: str) -> None:
    """A rule's ``prompt_caching: "auto"`` needs an Anthropic candidate, its ``trim`` a known window."""
    candidates = list(candidates)
    if overrides.get("prompt_caching") and not any(m.provider_type == ANTHROPIC for m in candidates):
        raise ConfigError(f"{path}.prompt_caching: 'auto' places Anthropic's cache breakpoints, and none of "
                          "the rule's models is at a provider of type 'anthropic'")
    if overrides.get("trim") is not None and not any(m.context_limit for m in candidates):
        raise ConfigError(f"{path}.trim: trimming needs a context window, and none is known for the rule's "
                          "models; set context_window on them")


def check_cheapest(candidates: Iterable[ModelConfig], path: str) -> None:
    """``cheapest`` ranks by price: every candidate needs one."""
    for index, model in enumerate(candidates):
        if model.price is None:
            raise ConfigError(f"{path}[{index}]: '{model.qualified_name}' has no price, so the strategy "
                              "'cheapest' cannot rank it; give the model a 'pricing' (or use another strategy)")
