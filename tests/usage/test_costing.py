"""The cost of every request, on every path: plain, streamed, cached, unpriced; in the answer, header, log and metrics."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import make_config, sse_data

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
PRICING = {"input": 2.5, "output": 10, "cached_input": 1.25}
# The fake upstream reports 11 prompt tokens (4 of them cached) and 7 completion tokens:
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
         "prompt_tokens_details": {"cached_tokens": 4}}
# 7 fresh input at 2.5, 4 cached at 1.25, 7 output at 10, per million tokens:
EXPECTED = (7 * 2.5 + 4 * 1.25 + 7 * 10) / 1_000_000


def priced_config(url: str, **sections):
    config = make_config(url, **sections)
    config["providers"]["openai"]["models"]["gpt-4o"]["pricing"] = PRICING
    return config


async def test_a_plain_answer_carries_its_cost_in_usage_and_a_header(gateway, fake_openai, log_lines) -> None:
    fake, url = fake_openai
    fake.usage = USAGE
    client = await gateway(priced_config(url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    answer = await resp.json()
    assert answer["usage"]["cost"] == pytest.approx(EXPECTED, abs=1e-12)
    assert float(resp.headers["X-Gateway-Cost"]) == pytest.approx(EXPECTED, abs=1e-10)
    line = [entry for entry in log_lines.flushed() if entry["event"] == "request"][-1]
    assert line["cost_usd"] == pytest.approx(EXPECTED, abs=1e-12) and line["cached_tokens"] == 4


@pytest.mark.parametrize("single_write", [False, True])
async def test_a_streamed_answer_costs_exactly_what_the_plain_one_does(gateway, fake_openai, single_write) -> None:
    fake, url = fake_openai
    fake.usage, fake.single_write = USAGE, single_write
    client = await gateway(priced_config(url))
    plain = (await (await client.post("/v1/chat/completions", json=CHAT)).json())["usage"]["cost"]
    resp = await client.post("/v1/chat/completions",
                             json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_data(await resp.text())
    assert events[-1] == "[DONE]"
    usage_chunk = orjson.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["cost"] == plain
    assert usage_chunk["usage"]["prompt_tokens"] == 11 and usage_chunk["id"] == "chatcmpl-fake"
    assert "X-Gateway-Cost" not in resp.headers


async def test_a_stream_without_include_usage_gets_no_usage_chunk(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(priced_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = sse_data(await resp.text())
    assert all('"usage":{' not in e for e in events) and events[-1] == "[DONE]"


async def test_a_cache_hit_costs_nothing_and_records_what_it_saved(gateway, fake_openai, log_lines) -> None:
    fake, url = fake_openai
    fake.usage = USAGE
    client = await gateway(priced_config(url, caching={"enabled": True}))
    first = await client.post("/v1/chat/completions", json=CHAT)
    assert first.headers["X-Cache"] == "MISS"
    import asyncio
    await asyncio.sleep(0.05)
    hit = await client.post("/v1/chat/completions", json=CHAT)
    assert hit.headers["X-Cache"] == "HIT" and hit.headers["X-Gateway-Cost"] == "0"
    assert (await hit.json())["usage"]["cost"] == 0
    streamed = await client.post("/v1/chat/completions",
                                 json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_data(await streamed.text())
    assert orjson.loads(events[-2])["usage"]["cost"] == 0
    lines = [entry for entry in log_lines.flushed() if entry["event"] == "request"]
    assert lines[-1]["saved_usd"] == pytest.approx(EXPECTED, abs=1e-12) and lines[-1]["cost_usd"] == 0


async def test_a_model_with_no_price_costs_null_not_zero(gateway, fake_openai, log_lines) -> None:
    fake, url = fake_openai
    config = make_config(url)
    config["providers"]["openai"]["type"] = "openai_compatible"  # no pricing dataset entry
    config["providers"]["openai"]["models"]["gpt-4o"]["upstream_model"] = "local-llama-unpriced"
    client = await gateway(config)
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert (await resp.json())["usage"]["cost"] is None and "X-Gateway-Cost" not in resp.headers
    lines = log_lines.flushed()
    warning = [entry for entry in lines if entry["event"] == "models_unpriced"]
    assert warning and "openai/gpt-4o" in warning[0]["models"]
    assert "cost_usd" not in [entry for entry in lines if entry["event"] == "request"][-1]
