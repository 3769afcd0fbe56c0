"""End to end for the Messages API: the real gateway process, the official ``anthropic`` SDK, fake upstreams.

``python -m proxy`` runs on a config with an Anthropic upstream (relayed
natively) and an OpenAI one (translated), both fakes served in the test's
event loop; the test talks to the gateway as Claude Code would (Bearer token,
``?beta=true``, ``anthropic-beta``, its session header) and reads the
request's log line.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.fake_anthropic import FakeAnthropic, text_block, thinking_block
from tests.fakes import FakeOpenAI
from tests.process import event_is

CALLER_KEY = "sk-caller-e2e-messages-41d9"
ANTHROPIC_KEY = "sk-ant-e2e-messages-upstream-7c2e"
OPENAI_KEY = "sk-openai-e2e-messages-upstream-90af"
SESSION = "0f6b2a4e-53c1-4d0e-9a57-2f1c8b7d6e11"
BETA = "claude-code-20250219,interleaved-thinking-2025-05-14"


def config(anthropic_url: str, openai_url: str) -> dict[str, Any]:
    return {
        "api": {"host": "127.0.0.1", "port": 0, "timeout": 10, "shutdown_timeout": 2},
        "providers": {
            "anthropic": {"type": "anthropic", "api_key": ANTHROPIC_KEY, "base_url": anthropic_url,
                          "models": {"claude-sonnet-4-6": {"upstream_model": "claude-sonnet-4-6-20260217",
                                                           "pricing": {"input": 3.0, "output": 15.0}}}},
            "openai": {"type": "openai", "api_key": OPENAI_KEY, "base_url": openai_url,
                       "models": {"claude-alias-gpt": {"upstream_model": "gpt-4o-mini",
                                                       "pricing": {"input": 0.15, "output": 0.6}}}},
        },
        "routing": {"default_provider": "anthropic", "default_model": "claude-sonnet-4-6"},
        "auth": {"keys": [{"name": "dev", "key": CALLER_KEY}]},
    }


@pytest.mark.parametrize("model,provider", [("claude-sonnet-4-6", "anthropic"), ("claude-alias-gpt", "openai")])
async def test_claude_code_style_stream_through_the_process(gateway_process: Any, aiohttp_server: Any,
                                                            model: str, provider: str) -> None:
    fake_anthropic = FakeAnthropic(blocks=[thinking_block("Reading the file."), text_block("Done.")])
    fake_openai = FakeOpenAI(reply="Done.")
    anthropic_server = await aiohttp_server(fake_anthropic.app())
    openai_server = await aiohttp_server(fake_openai.app())
    gw = gateway_process(config(str(anthropic_server.make_url("")).rstrip("/"), str(openai_server.make_url("/v1"))))
    port = await gw.await_started()
    sdk = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", auth_token=CALLER_KEY, max_retries=0,
                                   default_headers={"anthropic-beta": BETA, "x-claude-code-session-id": SESSION,
                                                    "X-Request-Id": f"e2e-messages-{provider}"})
    async with sdk.messages.stream(model=model, max_tokens=512, extra_query={"beta": "true"},
                                   messages=[{"role": "user", "content": "Fix the test"}]) as stream:
        final = await stream.get_final_message()
    assert final.content[-1].text == "Done."
    if provider == "anthropic":
        sent = fake_anthropic.received[0]
        assert fake_anthropic.queries == ["beta=true"] and sent.headers["anthropic-beta"] == BETA
        assert sent.headers["x-api-key"] == ANTHROPIC_KEY and "authorization" not in sent.headers
        assert final.content[0].type == "thinking"
    else:
        assert fake_openai.received[0].body["model"] == "gpt-4o-mini"
    line = await gw.await_for(event_is("request", request_id=f"e2e-messages-{provider}"))
    assert (line["status"], line["path"], line["provider"], line["model"]) == (200, "/v1/messages", provider, model)
    assert line["agent"] == f"claude-code/{SESSION}" and line["stream"] is True
    assert line["completion_tokens"] > 0 and line["cost_usd"] > 0
    output = gw.stdout + gw.stderr
    assert all(secret not in output for secret in (CALLER_KEY, ANTHROPIC_KEY, OPENAI_KEY))
    assert "Traceback" not in gw.stderr
