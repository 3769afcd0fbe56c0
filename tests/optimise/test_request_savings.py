"""What each optimisation saved, summed the same in the metrics, the log line, the ledger and GET /v1/usage."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from proxy.tokens.counting import counter_for, message_tokens
from proxy.usage.ledger import LEDGER
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeOpenAI
from tests.observability.test_metrics import scrape
from tests.pipeline.test_routing_strategies import long_conversation

REASONS = ("cache", "routing", "prompt_cache", "trim")
COLUMNS = {reason: f"saved_{reason}_usd" for reason in REASONS}


@pytest.fixture
async def saving_gateway(gateway, aiohttp_server: Any, tmp_path: Path) -> Any:
    """A rule choosing the cheaper of two OpenAI models, an Anthropic model, a cache, a ledger and metrics."""
    cheap, dear, claude = FakeOpenAI(reply="cheap"), FakeOpenAI(reply="dear"), FakeAnthropic()
    raw = {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 5},
        "providers": {
            "cheapco": {"type": "openai", "api_key": "sk-c", "base_url": str((await aiohttp_server(cheap.app())).make_url("/v1")),
                        "models": {"small": {"upstream_model": "gpt-3.5-turbo", "context_window": 2000,
                                             "trim": {"strategy": "oldest"},
                                             "pricing": {"input": 0.5, "output": 1.5}}}},
            "dearco": {"type": "openai", "api_key": "sk-d", "base_url": str((await aiohttp_server(dear.app())).make_url("/v1")),
                       "models": {"big": {"upstream_model": "gpt-4o", "pricing": {"input": 5, "output": 15}}}},
            "anthropic": {"type": "anthropic", "api_key": "sk-a", "base_url": str((await aiohttp_server(claude.app())).make_url("")),
                          "models": {"haiku": {"upstream_model": "claude-3-haiku-20240307", "pricing": {
                              "input": 1, "output": 5, "cached_input": 0.1, "cache_write": 1.25}}}},
        },
        "routing": {"default_provider": "dearco", "default_model": "big", "routing_rules": [
            {"task_type": "summarization", "models": ["cheapco/small", "dearco/big"], "strategy": "cheapest"}]},
        "caching": {"enabled": True},
        "usage": {"database": f"sqlite:////{tmp_path}/usage.db"},
        "monitoring": {"metrics_enabled": True, "prometheus_port": 0},
    }
    return await gateway(raw), tmp_path / "usage.db"


async def test_every_reason_is_exported_from_the_start_at_zero(saving_gateway) -> None:
    client, _ = saving_gateway
    result = await scrape(client)
    for reason in REASONS:
        assert any(s.name == "llm_gateway_saved_usd_total" and s.labels == {"reason": reason}
                   for s in result.samples), reason
        assert result.value("llm_gateway_saved_usd_total", reason=reason) == 0


async def test_the_savings_are_summed_alike_everywhere(saving_gateway, log_lines) -> None:
    client, database = saving_gateway
    summary = {"task_type": "summarization", "messages": [{"role": "user", "content": "Summarise the report."}]}
    # routing: the fake's usage (11 prompt, 7 completion) at the dearest candidate, minus at the cheap one
    routed = await client.post("/v1/chat/completions", json=summary)
    routing = (11 * 5 + 7 * 15 - (11 * 0.5 + 7 * 1.5)) / 1e6
    # cache: the same request again is a hit, worth what the cheap model charged for it
    hit = await client.post("/v1/chat/completions", json=summary)
    cache = float(routed.headers["X-Gateway-Cost"])
    # prompt cache: the fake Anthropic answer read 100 prompt tokens from its cache (1.0 fresh, 0.1 cached)
    claude = await client.post("/v1/chat/completions",
                               json={"model": "anthropic/haiku", "messages": summary["messages"]})
    prompt_cache = 100 * (1 - 0.1) / 1e6
    # trim: the dropped messages' tokens at the input price
    messages = long_conversation(30)
    trimmed = await client.post("/v1/chat/completions", json={"model": "cheapco/small", "messages": messages,
                                                               "max_tokens": 50})
    dropped = int(trimmed.headers["X-Gateway-Trimmed"])
    counter = counter_for("gpt-3.5-turbo")
    trim = sum(message_tokens(m, counter) for m in messages[1:1 + dropped]) * 0.5 / 1e6
    assert [r.status for r in (routed, hit, claude, trimmed)] == [200] * 4
    assert hit.headers["X-Cache"] == "HIT" and dropped > 0
    expected = {"cache": cache, "routing": routing, "prompt_cache": prompt_cache, "trim": trim}

    lines = [line for line in log_lines.flushed() if line["event"] == "request"]
    assert [line.get("saved") for line in lines] == [{"routing": pytest.approx(routing)}, {"cache": pytest.approx(cache)},
                                                     {"prompt_cache": pytest.approx(prompt_cache)},
                                                     {"trim": pytest.approx(trim)}]
    assert [line["saved_usd"] for line in lines] == pytest.approx([routing, cache, prompt_cache, trim])

    result = await scrape(client)
    for reason, amount in expected.items():
        assert result.value("llm_gateway_saved_usd_total", reason=reason) == pytest.approx(amount), reason

    assert await client.app[LEDGER].drain(5)
    with sqlite3.connect(database) as conn:
        rows = conn.execute(f"SELECT saved_usd, {', '.join(COLUMNS.values())} FROM usage_records "
                            "ORDER BY time").fetchall()
    assert [row[1:] for row in rows] == [pytest.approx(tuple(expected[r] if r == reason else 0.0 for r in REASONS))
                                         for reason in ("routing", "cache", "prompt_cache", "trim")]
    assert all(row[0] == pytest.approx(sum(row[1:])) for row in rows)

    usage = await (await client.get("/v1/usage")).json()
    totals = usage["totals"]
    for reason, amount in expected.items():
        assert totals[COLUMNS[reason]] == pytest.approx(amount, abs=1e-9), reason
    assert totals["saved_usd"] == pytest.approx(sum(expected.values()), abs=1e-9)
    by_model = {(row["provider"], row["model"]): row for row in
                (await (await client.get("/v1/usage", params={"group_by": "provider,model"})).json())["data"]}
    assert by_model[("cheapco", "small")]["saved_routing_usd"] == pytest.approx(routing, abs=1e-9)
    assert by_model[("anthropic", "haiku")]["saved_prompt_cache_usd"] == pytest.approx(prompt_cache, abs=1e-9)
