"""``count_tokens``: an Anthropic upstream's own count, else the gateway's (exact for text with OpenAI's tokenizer)."""

from __future__ import annotations

import pytest

from proxy.config import ModelConfig
from proxy.errors import GatewayError
from proxy.tokens.counting import counter_for, prompt_tokens
from proxy.upstream.count_tokens import ESTIMATE, EXACT, local_count
from tests.messages_env import CALLER_KEY, CLAUDE, CLAUDE_UPSTREAM, MessagesEnv, messages_env  # noqa: F401

GPT4O = ModelConfig(name="fast", provider="openai", upstream_model="gpt-4o-mini")
LLAMA = ModelConfig(name="local", provider="vllm", upstream_model="llama-3.1-70b")
TEXT = {"messages": [{"role": "user", "content": "How many tokens is this sentence?"}], "system": "Be brief."}
WEATHER = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def test_text_counted_with_openais_tokenizer_is_exact() -> None:
    tokens, method = local_count(TEXT, GPT4O)
    assert method == EXACT
    chat = {"messages": [{"role": "system", "content": "Be brief."}, TEXT["messages"][0]]}
    assert tokens == prompt_tokens(chat, counter_for("gpt-4o-mini")).total


@pytest.mark.parametrize("body", [
    {**TEXT, "tools": [WEATHER]},
    {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]}]},
    {"messages": [{"role": "user", "content": "x"},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]},
])
def test_tools_images_and_tool_calls_make_it_an_estimate(body: dict) -> None:
    tokens, method = local_count(body, GPT4O)
    assert method == ESTIMATE and tokens > 0


def test_models_without_a_shipped_tokenizer_are_estimated() -> None:
    tokens, method = local_count(TEXT, LLAMA)
    assert method == ESTIMATE
    assert tokens >= local_count(TEXT, GPT4O)[0]  # the estimate leans high


def test_what_the_model_could_not_take_is_a_400_naming_it() -> None:
    with pytest.raises(GatewayError) as refused:
        local_count({**TEXT, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, GPT4O)
    assert (refused.value.status, refused.value.param) == (400, "tools[0].type")


async def test_an_anthropic_models_count_is_forwarded_with_its_headers(messages_env: MessagesEnv) -> None:
    client = await messages_env.start()
    resp = await client.post("/v1/messages/count_tokens?beta=true", json={"model": CLAUDE, **TEXT,
                                                                           "metadata": {"task_type": "x"}},
                             headers={"Authorization": f"Bearer {CALLER_KEY}", "anthropic-beta": "token-counting"})
    assert (await resp.json()) == {"input_tokens": messages_env.anthropic.input_tokens}
    sent = messages_env.anthropic.received[0]
    assert sent.body == {"model": CLAUDE_UPSTREAM, **TEXT}
    assert sent.headers["anthropic-beta"] == "token-counting" and messages_env.anthropic.queries == ["beta=true"]
    ctx = messages_env.finished()
    assert ctx.endpoint == "count_tokens" and ctx.prompt_tokens is None and ctx.cost_usd is None


async def test_an_anthropic_count_that_fails_is_an_anthropic_error(messages_env: MessagesEnv) -> None:
    client = await messages_env.start()
    messages_env.anthropic.fail_status = 400
    resp = await client.post("/v1/messages/count_tokens", json={"model": CLAUDE, **TEXT},
                             headers={"x-api-key": CALLER_KEY})
    assert resp.status == 400
    assert (await resp.json())["error"] == {"type": "invalid_request_error",
                                            "message": messages_env.anthropic.fail_message}
