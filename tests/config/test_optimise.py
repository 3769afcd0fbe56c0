"""The config's cost-optimisation fields: multi-candidate rules, model limits and tuning, and their errors."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from proxy.config import ConfigError, parse_config
from proxy.formats.anthropic.request import DEFAULT_MAX_TOKENS

PRICED = {"input": 1.0, "output": 2.0}


def config(rules: list[dict[str, Any]] | None = None,
           models: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """OpenAI, Anthropic and mock models (every one priced but ``mock-free``), ``rules``, and more
    settings for some models (``{"provider/model": {...}}``)."""
    raw: dict[str, Any] = {
        "providers": {
            "openai": {"type": "openai", "api_key": "k", "models": {
                "gpt-3.5-turbo": {}, "gpt-4o": {}, "small": {"upstream_model": "gpt-4o-mini", "max_tokens": 500}}},
            "anthropic": {"type": "anthropic", "api_key": "k", "models": {
                "claude-3-haiku": {"upstream_model": "claude-3-haiku-20240307"}}},
            "mock": {"type": "mock", "models": {"mock-gpt": {"pricing": PRICED}, "mock-free": {}}},
        },
        "routing": {"default_provider": "mock", "default_model": "mock-gpt", "routing_rules": rules or []},
    }
    for name, settings in (models or {}).items():
        provider, model = name.split("/")
        raw["providers"][provider]["models"][model].update(settings)
    return raw


RULE = {"task_type": "summarization", "models": ["openai/gpt-3.5-turbo", "anthropic/claude-3-haiku"],
        "strategy": "cheapest"}


def test_a_rule_names_several_candidates_and_a_strategy() -> None:
    loaded = parse_config(config([RULE]), environ={})
    rule = loaded.routing.rules["summarization"]
    assert [m.qualified_name for m in rule.candidates] == ["openai/gpt-3.5-turbo", "anthropic/claude-3-haiku"]
    assert rule.strategy == "cheapest" and rule.multi
    assert rule.model.qualified_name == "openai/gpt-3.5-turbo"


def test_the_strategy_defaults_to_weighted_and_the_one_model_form_still_works() -> None:
    rules = [{"task_type": "a", "models": ["openai/gpt-4o", "mock/mock-gpt"]},
             {"task_type": "b", "provider": "anthropic", "model": "claude-3-haiku"},
             {"task_type": "c", "model": "gpt-4o"}]
    loaded = parse_config(config(rules), environ={})
    assert loaded.routing.rules["a"].strategy == "weighted"
    single = loaded.routing.rules["b"]
    assert not single.multi and [m.qualified_name for m in single.candidates] == ["anthropic/claude-3-haiku"]
    assert loaded.routing.rules["c"].model.qualified_name == "openai/gpt-4o"


def test_each_model_knows_its_window_capabilities_and_default_output() -> None:
    loaded = parse_config(config(models={"openai/small": {"context_window": 5000, "max_output_tokens": 400}}),
                          environ={})
    models = {m.qualified_name: m for p in loaded.providers.values() for m in p.models.values()}
    small, gpt35, haiku, mock = (models[n] for n in ("openai/small", "openai/gpt-3.5-turbo",
                                                      "anthropic/claude-3-haiku", "mock/mock-gpt"))
    assert (small.context_limit, small.output_limit) == (5000, 400)  # the config wins over the dataset
    assert small.limits.window_source == "config"
    assert gpt35.context_limit == 16385 and gpt35.output_limit == 4096  # the dataset and the table
    assert "images" not in gpt35.capabilities and "tools" in gpt35.capabilities
    assert "json_schema" not in haiku.capabilities  # the Anthropic translation cannot send it
    assert haiku.default_output == DEFAULT_MAX_TOKENS and gpt35.default_output == 0
    assert gpt35.counter is not None and gpt35.counter.exact
    assert haiku.counter is not None and not haiku.counter.exact
    assert mock.limits is None and mock.counter is None  # nothing known: never counted


def test_a_rules_tuning_wins_for_the_models_it_routes() -> None:
    rule = {**RULE, "default_max_tokens": 300, "prompt_caching": "auto", "trim": {"strategy": "oldest"}}
    loaded = parse_config(config([rule], {"anthropic/claude-3-haiku": {"default_max_tokens": 1000}}), environ={})
    gpt35, haiku = loaded.routing.rules["summarization"].candidates
    assert (gpt35.default_max_tokens, gpt35.default_output, gpt35.prompt_caching) == (300, 300, False)
    assert (haiku.default_max_tokens, haiku.default_output, haiku.prompt_caching) == (300, 300, True)
    assert haiku.trim is not None and haiku.trim.keep_system
    own = loaded.providers["anthropic"].models["claude-3-haiku"]
    assert (own.default_max_tokens, own.prompt_caching, own.trim) == (1000, False, None)  # elsewhere: its own


def test_a_rule_can_turn_a_models_tuning_off() -> None:
    rule = {"task_type": "t", "model": "claude-3-haiku", "prompt_caching": "off", "trim": {"strategy": "none"}}
    loaded = parse_config(config([rule], {"anthropic/claude-3-haiku": {"prompt_caching": "auto",
                                                                       "trim": {"strategy": "oldest"}}}),
                          environ={})
    tuned = loaded.routing.rules["t"].model
    assert (tuned.prompt_caching, tuned.trim) == (False, None)
    assert loaded.providers["anthropic"].models["claude-3-haiku"].prompt_caching


Mutate = Callable[[dict[str, Any]], None]


def _rules(*rules: dict[str, Any]) -> Mutate:
    return lambda raw: raw["routing"].update(routing_rules=list(rules))


def _model(provider: str, model: str, **settings: Any) -> Mutate:
    return lambda raw: raw["providers"][provider]["models"][model].update(settings)


@pytest.mark.parametrize(("mutate", "path", "words"), [
    (_rules({**RULE, "models": ["openai/gpt-3.5-turbo", "openai/nope"]}),
     "$.routing.routing_rules[0].models[1]", "names no configured model"),
    (_rules({**RULE, "strategy": "cheapest-ish"}), "$.routing.routing_rules[0].strategy", "is not one of"),
    (_rules({**RULE, "models": ["mock/mock-gpt", "mock/mock-free"]}),
     "$.routing.routing_rules[0].models[1]", "no price"),
    (_rules({**RULE, "models": ["openai/gpt-4o", "gpt-4o"]}), "$.routing.routing_rules[0].models[1]", "twice"),
    (_rules({**RULE, "model": "gpt-4o"}), "$.routing.routing_rules[0]", "not both"),
    (_rules({"task_type": "t"}), "$.routing.routing_rules[0]", "not neither"),
    (_rules({"task_type": "t", "model": "gpt-4o", "strategy": "fastest"}),
     "$.routing.routing_rules[0].strategy", "chooses among 'models'"),
    (_rules({**RULE, "provider": "openai"}), "$.routing.routing_rules[0].provider", "provider/model"),
    (_rules({**RULE, "models": []}), "$.routing.routing_rules[0].models", "should be non-empty"),
    (_model("openai", "gpt-4o", prompt_caching="auto"), "$.providers.openai.models.gpt-4o.prompt_caching",
     "type 'anthropic'"),
    (_rules({"task_type": "t", "models": ["openai/gpt-4o", "mock/mock-gpt"], "prompt_caching": "auto"}),
     "$.routing.routing_rules[0].prompt_caching", "none of the rule's models"),
    (_model("mock", "mock-gpt", trim={"strategy": "oldest"}), "$.providers.mock.models.mock-gpt.trim",
     "set context_window"),
    (_rules({"task_type": "t", "model": "mock-gpt", "trim": {"strategy": "oldest"}}),
     "$.routing.routing_rules[0].trim", "none is known"),
    (_model("openai", "small", default_max_tokens=501), "$.providers.openai.models.small.default_max_tokens",
     "above the max_tokens"),
    (_model("openai", "gpt-3.5-turbo", default_max_tokens=5000),
     "$.providers.openai.models.gpt-3.5-turbo.default_max_tokens", "largest output"),
    (_rules({**RULE, "default_max_tokens": 5000}), "$.routing.routing_rules[0].default_max_tokens",
     "largest output of 'gpt-3.5-turbo'"),
    (_model("openai", "gpt-4o", context_window=100, max_output_tokens=200),
     "$.providers.openai.models.gpt-4o.max_output_tokens", "more than the model's context_window"),
    (_model("openai", "gpt-4o", trim={"strategy": "newest"}),
     "$.providers.openai.models['gpt-4o'].trim.strategy", "is not one of"),
])
def test_bad_optimisation_settings_are_errors_naming_the_path(mutate: Mutate, path: str, words: str) -> None:
    raw = copy.deepcopy(config())
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, environ={})
    assert path in str(err.value), str(err.value)
    assert words in str(err.value), str(err.value)


def test_a_rules_default_max_tokens_skips_fallbacks_it_cannot_fit() -> None:
    """Fallbacks outside the rule take its settings where they can, and keep their own where not."""
    rule = {"task_type": "t", "model": "gpt-4o", "default_max_tokens": 1000}
    raw = config([rule])
    raw["fallback"] = {"enabled": True, "fallback_map": {"openai/gpt-4o": ["openai/small"]}}
    loaded = parse_config(raw, environ={})
    tuned = loaded.routing.rules["t"].tuned
    assert tuned["openai/gpt-4o"].default_max_tokens == 1000
    assert tuned["openai/small"].default_max_tokens is None  # its max_tokens is 500
