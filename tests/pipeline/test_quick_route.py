"""The routing fast path gives the full planner's order whenever it answers, and leaves every doubtful
case to the planner."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from proxy.config import parse_config
from proxy.optimise.deployment_stats import DeploymentStats
from proxy.optimise.planner import Choice, plan_request
from proxy.optimise.prompt_size import PromptSize
from proxy.optimise.strategies import Strategy
from proxy.pipeline.quick_route import QuickChoice, quick_order
from proxy.upstream.breakers import BreakerBoard, BreakerSettings

RAW = {
    "providers": {
        "a": {"type": "openai", "api_key": "k", "models": {
            "small": {"upstream_model": "gpt-3.5-turbo", "context_window": 3000, "max_tokens": 800,
                      "pricing": {"input": 0.5, "output": 1.5}, "weight": 2},
            "big": {"upstream_model": "gpt-4o", "pricing": {"input": 2.5, "output": 10}}}},
        "b": {"type": "anthropic", "api_key": "k", "models": {
            "haiku": {"upstream_model": "claude-3-haiku-20240307", "pricing": {"input": 0.25, "output": 1.25}}}},
        "c": {"type": "openai", "models": {"keyless": {"pricing": {"input": 0.1, "output": 0.1}}}},
    },
    "routing": {"default_provider": "a", "default_model": "big"},
}
CONFIG = parse_config(RAW, environ={})
MODELS = [CONFIG.providers[p].models[m] for p, m in (("a", "small"), ("b", "haiku"), ("a", "big"))]
NOW = 500.0


def body_for(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "word " * rng.choice([1, 20, 200, 2000])}]}
    if rng.random() < 0.5:
        body["max_tokens"] = rng.choice([10, 300, 700, 900])
    if rng.random() < 0.3:
        body["stream"] = True
    if rng.random() < 0.2:
        body["messages"].append({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}}]})
    return body


def stats_for(rng: random.Random) -> DeploymentStats:
    stats = DeploymentStats()
    for model in MODELS:
        name = model.qualified_name
        for _ in range(rng.randrange(3)):
            stats.started(name)
        if rng.random() < 0.7:
            stats.observe(name, latency=rng.random(), ttft=rng.random() / 10)
        if rng.random() < 0.4:
            remaining = str(rng.choice([0, 5, 50, 100_000]))
            stats.observe_headers(name, {"x-ratelimit-remaining-tokens": remaining,
                                         "x-ratelimit-reset-tokens": "30s"}, NOW, 0.0)
    return stats


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(40))
def test_the_fast_path_orders_as_the_planner_does_or_leaves_it_to_the_planner(strategy: Strategy,
                                                                              seed: int) -> None:
    rng = random.Random(seed)
    models = rng.sample(MODELS, rng.choice([2, 3]))
    body, stats, board = body_for(rng), stats_for(rng), BreakerBoard(BreakerSettings(1, 60))
    if rng.random() < 0.2:
        board.get(models[0].provider, models[0].name).record_failure()  # open
    size = len(orjson.dumps(body))
    quick = quick_order(QuickChoice(strategy, models, ["a", "b"]), body, size, True, board, stats, NOW,
                        random.Random(seed))
    planned = plan_request(Choice(models, strategy), body, size, windows=True,
                           unavailable=lambda m: not board.get(m.provider, m.name).would_allow(),
                           stats=stats, now=NOW, rng=random.Random(seed))
    if quick is not None:
        assert planned.skipped == () and list(planned.order) == quick
    elif planned.skipped == () and planned.order:
        # the fast path stepped aside though all could serve: only where a window was at risk (the
        # planner counted the prompt to find that it fits)
        size_of = PromptSize(body, size)
        asked = body.get("max_tokens")
        assert any(size_of.at_risk(m.context_limit, asked if asked is not None else m.default_output)
                   for m in models if m.context_limit is not None)


def test_a_candidate_whose_provider_has_no_key_leaves_it_to_the_planner() -> None:
    keyless = CONFIG.providers["c"].models["keyless"]
    choice = QuickChoice(Strategy.CHEAPEST, [MODELS[0], keyless], ["a", "b"])
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert quick_order(choice, body, 60, True, BreakerBoard(), DeploymentStats(), NOW, random.Random()) is None
    ready = QuickChoice(Strategy.CHEAPEST, [MODELS[0], keyless], ["a", "b", "c"])
    assert quick_order(ready, body, 60, True, BreakerBoard(), DeploymentStats(), NOW, random.Random()) == [
        keyless, MODELS[0]]
