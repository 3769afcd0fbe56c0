"""Config loading: env expansion, schema and semantic checks with JSON paths, immutability."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config, parse_config
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parents[2]


SPEC_TASK_TYPES = {"general", "sales_coaching", "client_health", "data_analysis", "research",
                   "content_generation", "summarization"}


def test_spec_example_config_is_accepted_as_printed() -> None:
    """``tests/data/spec_example_config.json`` is the spec's example, byte for byte."""
    config = load_config(ROOT / "tests" / "data" / "spec_example_config.json", environ={})
    assert set(config.providers) == {"openai", "anthropic", "openrouter"}
    assert config.routing.default_model.qualified_name == "openai/gpt-4"
    assert config.routing.rules["sales_coaching"].model.qualified_name == "anthropic/claude-3-opus"
    chain = config.fallback.fallback_map["openai/gpt-4"]
    assert [m.qualified_name for m in chain] == ["anthropic/claude-3-sonnet", "openai/gpt-3.5-turbo"]
    # With no keys in the environment, the providers are unconfigured rather than fatal.
    assert not config.providers["openai"].configured


def test_shipped_example_routes_all_seven_task_types() -> None:
    config = load_config(ROOT / "config" / "llm_gateway_config.json", environ={})
    assert set(config.routing.rules) == SPEC_TASK_TYPES
    assert config.routing.rules["research"].model.qualified_name == "openrouter/anthropic/claude-3-opus"


def test_embedded_default_needs_no_keys_and_binds_loopback() -> None:
    config = load_config(ROOT / "config" / "local.json", environ={})
    assert config.api.host == "127.0.0.1"
    assert all(p.configured for p in config.providers.values())
    assert config.caching.redis_url is None


def test_env_variables_are_expanded() -> None:
    raw = make_config("http://upstream.test/v1")
    raw["providers"]["openai"]["api_key"] = "${MY_KEY}"
    raw["providers"]["openai"]["base_url"] = "${BASE:-http://fallback.test/v1}"
    config = parse_config(raw, environ={"MY_KEY": "sk-abc"})
    assert config.providers["openai"].api_key == "sk-abc"
    assert config.providers["openai"].base_url == "http://fallback.test/v1"


def test_unset_provider_key_leaves_provider_unconfigured() -> None:
    raw = make_config("http://upstream.test/v1")
    raw["providers"]["openai"]["api_key"] = "${NOT_SET_ANYWHERE}"
    config = parse_config(raw, environ={})
    assert config.providers["openai"].configured is False


def test_unset_variable_elsewhere_is_an_error_naming_path_and_variable() -> None:
    raw = make_config(auth={"keys": [{"name": "team-a", "key": "${TEAM_A_KEY}"}]})
    with pytest.raises(ConfigError) as err:
        parse_config(raw, environ={})
    assert "$.auth.keys[0].key" in str(err.value)
    assert "TEAM_A_KEY" in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda c: c["api"].update(port="eighty"), "$.api.port", "not of type 'integer'"),
        (lambda c: c["api"].update(colour="blue"), "$.api", "unknown field"),
        (lambda c: c["providers"]["mock"].update(type="gemini"), "$.providers.mock.type", "is not one of"),
        (lambda c: c["routing"].update(default_model="nope"), "$.routing.default_model", "no model 'nope'"),
        (lambda c: c["routing"].update(routing_rules=[{"task_type": "research", "provider": "ghost",
                                                      "model": "x"}]),
         "$.routing.routing_rules[0].model", "provider 'ghost' is not configured"),
        (lambda c: c.update(fallback={"fallback_map": {"mock/mock-gpt": ["mock/missing"]}}),
         "$.fallback.fallback_map['mock/mock-gpt'][0]", "names no configured model"),
        (lambda c: c.update(auth={"keys": [{"name": "a"}]}), "$.auth.keys[0]", "exactly one of"),
    ],
)
def test_errors_name_the_json_path(mutate, path: str, words: str) -> None:
    raw = make_config()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw, environ={})
    assert path in str(err.value)
    assert words in str(err.value)


def test_invalid_json_is_reported() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_config(b"{not json", environ={})


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.json")


def test_provider_type_defaults_to_its_name_and_base_urls_to_the_official_ones() -> None:
    raw = make_config()
    raw["providers"]["openrouter"] = {"api_key": "k", "models": {"google/gemini-pro": {}}}
    raw["providers"]["anthropic"] = {"api_key": "k", "models": {"claude": {}}}
    config = parse_config(raw, environ={})
    assert config.providers["openrouter"].type == "openrouter"
    assert config.providers["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert config.providers["anthropic"].base_url == "https://api.anthropic.com"


def test_unknown_provider_name_without_type_is_refused() -> None:
    raw = make_config()
    raw["providers"]["local-llama"] = {"base_url": "http://127.0.0.1:9/v1", "models": {"llama": {}}}
    with pytest.raises(ConfigError, match=r"\$\.providers\.local-llama\.type"):
        parse_config(raw, environ={})


def test_upstream_model_alias() -> None:
    config = parse_config(make_config("http://u.test/v1"), environ={})
    assert config.providers["openai"].models["fast"].upstream_model == "gpt-4o-mini"


def test_models_are_found_by_name_or_provider_slash_model() -> None:
    raw = make_config("http://u.test/v1")
    raw["providers"]["openrouter"] = {"api_key": "k", "models": {"openai/gpt-4o": {}}}
    config = parse_config(raw, environ={})
    assert [m.provider for m in config.find_models("gpt-4o")] == ["openai"]
    # An exact configured name wins over the provider/model reading.
    assert [m.provider for m in config.find_models("openai/gpt-4o")] == ["openrouter"]
    assert [m.name for m in config.find_models("mock/mock-gpt")] == ["mock-gpt"]
    assert config.find_models("mock/absent") == ()


def test_config_is_immutable() -> None:
    config = parse_config(make_config(), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.api.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.providers["x"] = None  # type: ignore[index]


def test_auth_keys_are_kept_only_as_digests() -> None:
    raw = make_config(auth={"keys": [{"name": "svc", "key": "sk-caller-secret"},
                                     {"name": "ops", "key_sha256": "ab" * 32}]})
    config = parse_config(raw, environ={})
    assert config.auth.enabled
    assert [k.name for k in config.auth.keys] == ["svc", "ops"]
    assert "sk-caller-secret" not in repr(config)


def test_auth_enabled_without_keys_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\$\.auth\.keys"):
        parse_config(make_config(auth={"enabled": True}), environ={})


def test_provider_key_is_not_in_repr() -> None:
    config = parse_config(make_config("http://u.test/v1"), environ={})
    assert "sk-upstream-secret" not in repr(config)


def test_anthropic_model_temperature_above_one_is_refused() -> None:
    raw = make_config()
    raw["providers"]["anthropic"] = {"api_key": "k", "models": {"claude": {"temperature": 1.5}}}
    with pytest.raises(ConfigError, match=r"\$\.providers\.anthropic\.models\.claude\.temperature"):
        parse_config(raw, environ={})
