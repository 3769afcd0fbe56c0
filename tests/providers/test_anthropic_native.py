"""The Anthropic adapter's native relay for Messages callers: headers, payload, errors, stream events, redaction."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import ApiConfig, ModelConfig, ProviderConfig
from proxy.formats.sse import Event
from proxy.providers.anthropic import AnthropicAdapter, RelayProgress
from proxy.providers.base import ChatStream, StreamInterrupted, UpstreamCall
from proxy.upstream.redaction import Redactor
from tests.fake_anthropic import text_block
from tests.messages_env import CALLER_KEY, CLAUDE, UPSTREAM_SECRET, MessagesEnv, messages_env  # noqa: F401

MODEL = ModelConfig(name=CLAUDE, provider="anthropic", upstream_model="claude-up")


def adapter(headers: dict[str, str] | None = None) -> AnthropicAdapter:
    config = ProviderConfig(name="anthropic", type="anthropic", base_url="http://a.test", models={CLAUDE: MODEL},
                            api_keys=(UPSTREAM_SECRET,), headers=headers or {})
    return AnthropicAdapter(config, ApiConfig(), None, Redactor([UPSTREAM_SECRET]))


def call(body: dict[str, Any], forward: dict[str, str] | None = None) -> UpstreamCall:
    return UpstreamCall(model=MODEL, body=body, request_id="r-1", forward_headers=forward)


def test_the_callers_anthropic_headers_go_upstream_and_configured_ones_win() -> None:
    forward = {"anthropic-version": "2024-01-01", "anthropic-beta": "a,b", "anthropic-workspace-id": "w1"}
    headers = adapter({"anthropic-beta": "operator-pinned"}).request_headers(call({}, forward))
    assert headers["anthropic-version"] == "2024-01-01" and headers["anthropic-workspace-id"] == "w1"
    assert headers["anthropic-beta"] == "operator-pinned"
    assert headers["x-api-key"] == UPSTREAM_SECRET
    assert adapter().request_headers(call({}))["anthropic-version"] == "2023-06-01"


def test_the_payload_is_the_body_with_the_upstream_model_in_its_place() -> None:
    body = {"max_tokens": 5, "model": CLAUDE, "messages": [], "zzz": {"new": "field"}}
    payload = adapter().native_payload(call(body))
    assert payload == orjson.dumps({"max_tokens": 5, "model": "claude-up", "messages": [], "zzz": {"new": "field"}})
    assert body["model"] == CLAUDE  # the caller's body is not changed


@pytest.mark.parametrize("status,relayed", [(400, True), (404, True), (413, True), (429, True),
                                            (401, False), (403, False), (500, False), (529, False)])
def test_only_the_callers_own_refusals_keep_anthropics_document(status: int, relayed: bool) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "x", "message": f"no ({UPSTREAM_SECRET})"}})
    error = adapter().upstream_error(status, body)
    if relayed:
        assert error.document == body.replace(UPSTREAM_SECRET.encode(), b"[REDACTED]")
    else:
        assert error.document is None
    assert adapter().upstream_error(400, b"<html>bad gateway</html>").document is None


def test_stream_events_are_framed_again_and_their_usage_kept() -> None:
    start = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 10, "output_tokens": 1,
                                                                       "cache_read_input_tokens": 90}}}
    events = [Event("message_start", orjson.dumps(start)), Event(None, b'{"type":"ping"}'),
              Event("message_delta", b'{"type":"message_delta","delta":{},"usage":{"output_tokens":7}}'),
              Event("message_stop", b'{"type":"message_stop"}'), Event("ping", b'{"type":"ping"}')]
    stream, progress = ChatStream(), RelayProgress()
    batch, failure = adapter().take_events(events, call({}), stream, progress)
    assert failure is None and progress.finished
    assert batch[1] == b'event: ping\ndata: {"type":"ping"}\n\n' and len(batch) == 4  # nothing after message_stop
    assert stream.usage is not None
    assert (stream.usage["prompt_tokens"], stream.usage["completion_tokens"]) == (100, 7)


def test_an_error_event_ends_the_stream_keeping_its_data() -> None:
    data = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    batch, failure = adapter().take_events([Event("ping", b'{"type":"ping"}'), Event("error", data)],
                                           call({}), ChatStream(), RelayProgress())
    assert len(batch) == 1 and isinstance(failure, StreamInterrupted)
    assert failure.error.document == data and failure.error.status == 503


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_that_echoes_the_key_never_shows_it(messages_env: MessagesEnv, stream: bool) -> None:
    client = await messages_env.start()
    messages_env.anthropic.blocks = [text_block(f"your key is {UPSTREAM_SECRET}")]
    messages_env.anthropic.chunks = 1  # redaction is per event, as for every stream the gateway relays
    resp = await client.post("/v1/messages", json={"model": CLAUDE, "max_tokens": 5, "stream": stream,
                                                   "messages": [{"role": "user", "content": "x"}]},
                             headers={"x-api-key": CALLER_KEY})
    text = await resp.text()
    assert resp.status == 200 and UPSTREAM_SECRET not in text and "[REDACTED]" in text
