"""The planner: each strategy's choice with breakers, windows, capabilities and headroom in play; trimming."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from proxy.config import ModelConfig, parse_config
from proxy.optimise import prompt_size
from proxy.optimise.deployment_stats import DeploymentStats
from proxy.optimise.planner import Choice, Plan, plan_request, surely_fits
from proxy.optimise.strategies import Strategy

NOW = 1000.0


def models() -> dict[str, ModelConfig]:
    """Three priced models: ``cheap`` (a 2,000-token window, no images), ``mid`` and ``dear`` (large windows)."""
    raw = {
        "providers": {
            "a": {"type": "openai", "api_key": "k", "models": {
                "cheap": {"upstream_model": "gpt-3.5-turbo", "context_window": 2000, "max_output_tokens": 500,
                          "pricing": {"input": 0.5, "output": 1.5}, "trim": {"strategy": "oldest"}},
                "dear": {"upstream_model": "gpt-4o", "context_window": 100_000,
                         "pricing": {"input": 5.0, "output": 15.0}}}},
            "b": {"type": "anthropic", "api_key": "k", "models": {
                "mid": {"upstream_model": "claude-3-haiku-20240307", "context_window": 50_000,
                        "pricing": {"input": 1.0, "output": 5.0}}}},
            "c": {"type": "openai_compatible", "base_url": "http://c.test/v1", "models": {
                "reader": {"pricing": {"input": 0.5, "output": 20.0}},
                "writer": {"pricing": {"input": 1.0, "output": 5.0}}}},
        },
        "routing": {"default_provider": "a", "default_model": "cheap"},
    }
    config = parse_config(raw, environ={})
    return {m.name: m for p in config.providers.values() for m in p.models.values()}


M = models()
CHEAP, MID, DEAR = M["cheap"], M["mid"], M["dear"]


def chat(text: str = "Summarise: the cat sat on the mat.", **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **fields}


def plan(choice: Choice, body: dict[str, Any], *, down: frozenset[str] = frozenset(),
         stats: DeploymentStats | None = None, now: float = NOW, rng: random.Random | None = None) -> Plan:
    return plan_request(choice, body, len(orjson.dumps(body)), windows=True,
                        unavailable=lambda m: m.qualified_name in down, stats=stats or DeploymentStats(),
                        now=now, rng=rng or random.Random(1))


def names(result: Plan) -> list[str]:
    return [m.qualified_name for m in result.order]


def rule(strategy: Strategy, *candidates: ModelConfig, **options: Any) -> Choice:
    return Choice(candidates or (DEAR, MID, CHEAP), strategy, **options)


# ------------------------------------------------------------------ strategies


def test_cheapest_chooses_the_lowest_cost_and_keeps_the_others_as_fallbacks_in_price_order() -> None:
    result = plan(rule(Strategy.CHEAPEST), chat())
    assert names(result) == ["a/cheap", "b/mid", "a/dear"]
    assert (result.strategy, result.skipped) == ("cheapest", ())


def test_cheapest_weighs_the_prompt_at_the_input_price_and_the_output_at_the_output_price() -> None:
    reader, writer = M["reader"], M["writer"]  # cheap input, dear output; the other way round
    long_question = chat("word " * 3000, max_tokens=10)
    short_question = chat("hi", max_tokens=1000)
    assert names(plan(rule(Strategy.CHEAPEST, writer, reader), long_question)) == ["c/reader", "c/writer"]
    assert names(plan(rule(Strategy.CHEAPEST, reader, writer), short_question)) == ["c/writer", "c/reader"]
    assert names(plan(rule(Strategy.CHEAPEST, reader, writer), chat("hi"))) == ["c/writer", "c/reader"]


def test_more_output_than_a_candidate_writes_skips_it() -> None:
    result = plan(rule(Strategy.CHEAPEST), chat(max_tokens=600))  # cheap writes at most 500
    assert names(result)[0] == "b/mid"
    assert result.skipped == (("a/cheap", "context_window"),)


def test_a_candidate_whose_breaker_is_open_is_skipped() -> None:
    result = plan(rule(Strategy.CHEAPEST), chat(), down=frozenset({"a/cheap"}))
    assert names(result) == ["b/mid", "a/dear"]
    assert result.skipped_header() == "a/cheap=breaker_open"


def test_a_prompt_too_long_for_a_window_skips_that_candidate() -> None:
    long = chat("word " * 3000)  # about 3,000 tokens: more than cheap's 2,000
    result = plan(rule(Strategy.CHEAPEST), long)
    assert names(result) == ["b/mid", "a/dear"]
    assert result.skipped == (("a/cheap", "context_window"),)


def test_a_missing_capability_skips_that_candidate() -> None:
    image = {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}
    result = plan(rule(Strategy.CHEAPEST), {"messages": [image]})
    assert names(result)[0] == "b/mid" and result.skipped == (("a/cheap", "capability"),)
    schema = chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})
    result = plan(rule(Strategy.CHEAPEST, MID, DEAR), schema)  # Anthropic's translation cannot send it
    assert names(result) == ["a/dear"] and result.skipped == (("b/mid", "capability"),)


def test_no_headroom_until_the_upstreams_reset_skips_that_candidate() -> None:
    stats = DeploymentStats()
    stats.observe_headers("a/cheap", {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"},
                          NOW, 0.0)
    result = plan(rule(Strategy.CHEAPEST), chat(), stats=stats)
    assert names(result)[0] == "b/mid" and result.skipped == (("a/cheap", "rate_limited"),)
    assert names(plan(rule(Strategy.CHEAPEST), chat(), stats=stats, now=NOW + 21))[0] == "a/cheap"


def test_fewer_tokens_left_than_the_prompt_skips_that_candidate() -> None:
    stats = DeploymentStats()
    stats.observe_headers("b/mid", {"anthropic-ratelimit-input-tokens-remaining": "50",
                                    "anthropic-ratelimit-input-tokens-reset": "2100-01-01T00:00:00Z"}, NOW, 0.0)
    small, large = chat("hi"), chat("many words " * 100)
    assert plan(rule(Strategy.CHEAPEST, MID, DEAR), small, stats=stats).skipped == ()
    assert plan(rule(Strategy.CHEAPEST, MID, DEAR), large, stats=stats).skipped == (("b/mid", "rate_limited"),)


def test_fastest_tries_the_unmeasured_first_then_the_lowest_average() -> None:
    stats = DeploymentStats()
    stats.observe("a/cheap", latency=0.9)
    stats.observe("b/mid", latency=0.2)
    assert names(plan(rule(Strategy.FASTEST), chat(), stats=stats)) == ["a/dear", "b/mid", "a/cheap"]
    stats.observe("a/dear", latency=0.5)
    assert names(plan(rule(Strategy.FASTEST), chat(), stats=stats)) == ["b/mid", "a/dear", "a/cheap"]


def test_fastest_ranks_streams_by_time_to_first_token() -> None:
    stats = DeploymentStats()
    for name, latency, ttft in (("a/cheap", 5.0, 0.1), ("b/mid", 0.5, 0.4), ("a/dear", 1.0, 0.3)):
        stats.observe(name, latency=latency, ttft=ttft)
    assert names(plan(rule(Strategy.FASTEST), chat(stream=True), stats=stats)) == ["a/cheap", "a/dear", "b/mid"]
    assert names(plan(rule(Strategy.FASTEST), chat(), stats=stats)) == ["b/mid", "a/dear", "a/cheap"]


def test_least_busy_chooses_the_fewest_in_flight() -> None:
    stats = DeploymentStats()
    for name, count in (("a/dear", 2), ("b/mid", 1), ("a/cheap", 3)):
        for _ in range(count):
            stats.started(name)
    assert names(plan(rule(Strategy.LEAST_BUSY), chat(), stats=stats)) == ["b/mid", "a/dear", "a/cheap"]


def test_weighted_draws_by_weight() -> None:
    rng = random.Random(3)
    firsts = [names(plan(rule(Strategy.WEIGHTED, CHEAP, MID), chat(), rng=rng))[0] for _ in range(400)]
    assert 0.35 < firsts.count("a/cheap") / 400 < 0.65  # equal weights


def test_fallbacks_come_after_the_candidates_and_only_with_fallback_on() -> None:
    choice = rule(Strategy.CHEAPEST, MID, CHEAP, fallbacks_of=lambda chosen: (DEAR,))
    assert names(plan(choice, chat())) == ["a/cheap", "b/mid", "a/dear"]
    alone = rule(Strategy.CHEAPEST, MID, CHEAP, keep_others=False)
    assert names(plan(alone, chat())) == ["a/cheap"]


def test_when_none_can_serve_the_breaker_skipped_ones_are_still_planned() -> None:
    """So that the fallback loop answers 503 with Retry-After, as it does without a choice."""
    result = plan(rule(Strategy.CHEAPEST, MID, DEAR), chat(), down=frozenset({"b/mid", "a/dear"}))
    assert names(result) == ["b/mid", "a/dear"] and result.too_long is None
    assert result.skipped_header() == "b/mid=breaker_open, a/dear=breaker_open"


# ------------------------------------------------------------------ windows


def test_a_request_that_fits_no_window_is_too_long_and_says_why() -> None:
    result = plan(rule(Strategy.CHEAPEST, CHEAP, MID), chat("word " * 60_000))
    assert result.order == () and result.too_long is not None
    assert "a/cheap holds 2,000 tokens" in result.too_long and "b/mid holds 50,000 tokens" in result.too_long
    assert "estimated" in result.too_long and "counted" in result.too_long


def test_one_model_asked_for_is_never_switched_for_a_fallback_with_a_larger_window() -> None:
    long = chat("word " * 3000)
    no_trim = ModelConfig(**{f: getattr(CHEAP, f) for f in ("name", "provider", "upstream_model", "limits",
                                                            "counter", "price")})
    result = plan(Choice(rest=(no_trim, DEAR)), long)
    assert result.order == () and result.too_long and "a/cheap" in result.too_long


def test_a_fallback_that_cannot_hold_the_request_is_skipped() -> None:
    long = chat("word " * 3000)
    result = plan(Choice(rest=(DEAR, CHEAP)), long)
    assert names(result) == ["a/dear"] and result.skipped == (("a/cheap", "context_window"),)


def test_short_prompts_are_never_tokenised(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("a short prompt was counted")

    monkeypatch.setattr(prompt_size, "prompt_tokens", refuse)
    body = chat("a question of a few hundred bytes " * 10, max_tokens=100)
    assert names(plan(rule(Strategy.CHEAPEST), body)) == ["a/cheap", "b/mid", "a/dear"]
    assert surely_fits((CHEAP, DEAR), body, len(orjson.dumps(body)))


# ------------------------------------------------------------------ trimming


def conversation(turns: int, words: int = 60) -> list[dict[str, Any]]:
    """A system prompt, then ``turns`` turns of a question, a tool call, its result and an answer."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"question {i}: " + "blah " * words},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": f"call_{i}", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": f"result {i}: " + "data " * words},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    return messages + [{"role": "user", "content": "and now?"}]


def test_trimming_drops_whole_oldest_turns_to_fit_the_chosen_model() -> None:
    body = {"messages": conversation(40), "max_tokens": 100}  # about 5,000 tokens: too long for cheap alone
    result = plan(Choice(rest=(CHEAP,)), body)
    assert names(result) == ["a/cheap"] and result.trimmed > 0 and result.trimmed_tokens > 0
    kept = body["messages"]
    assert kept[0] == {"role": "system", "content": "You are terse."}
    assert kept[1]["role"] == "user" and kept[-1] == {"role": "user", "content": "and now?"}
    calls = {c["id"] for m in kept if m.get("tool_calls") for c in m["tool_calls"]}
    results = {m["tool_call_id"] for m in kept if m["role"] == "tool"}
    assert calls == results, "a tool call was split from its result"
    assert len(conversation(40)) - len(kept) == result.trimmed
    from proxy.tokens.counting import prompt_tokens
    assert prompt_tokens(body, CHEAP.counter).total + 100 <= 2000  # type: ignore[arg-type]


def test_trimming_happens_only_when_nothing_fits_as_it_is() -> None:
    body = {"messages": conversation(40), "max_tokens": 100}
    result = plan(rule(Strategy.CHEAPEST, CHEAP, MID), body)
    assert names(result) == ["b/mid"] and result.trimmed == 0  # mid holds it whole
    assert result.skipped == (("a/cheap", "context_window"),)


def test_a_conversation_that_cannot_be_trimmed_enough_is_too_long() -> None:
    body = {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "word " * 3000}]}
    result = plan(Choice(rest=(CHEAP,)), body)
    assert result.order == () and result.too_long and result.trimmed == 0
    assert len(body["messages"]) == 2  # untouched
