"""The OpenAI adapter against a fake OpenAI upstream: what goes up, what comes back."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import make_config, sse_data

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}



async def test_plain_chat_round_trip(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": "Bearer caller-key-xyz", "X-Request-Id": "req-42"})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["choices"][0]["message"]["content"] == fake.reply
    assert doc["provider"] == "openai"
    assert without_cost(doc["usage"]) == fake.usage
    assert doc["system_fingerprint"] == "fp_fake"
    assert resp.headers["X-Request-Id"] == "req-42"
    seen = fake.received[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert seen.headers["X-Request-Id"] == "req-42"


async def test_unknown_fields_reach_the_upstream_untouched(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    body = {**CHAT, "reasoning_effort": "low", "metadata": {"k": [1, 2]}, "seed": 7,
            "response_format": {"type": "json_object"}, "temperature": 1.5}
    assert (await client.post("/v1/chat/completions", json=body)).status == 200
    sent = fake.received[-1].body
    for field in ("reasoning_effort", "metadata", "seed", "response_format", "messages"):
        assert sent[field] == body[field]
    assert sent["temperature"] == 1.5


async def test_model_defaults_and_alias_apply(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    await client.post("/v1/chat/completions", json=CHAT)
    assert fake.received[-1].body["temperature"] == 0.3  # the model's configured default
    await client.post("/v1/chat/completions", json={**CHAT, "model": "fast"})
    assert fake.received[-1].body["model"] == "gpt-4o-mini"


async def test_stream_is_forwarded_with_usage_kept_for_accounting(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = sse_data(await resp.text())
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == fake.reply
    # The caller did not ask for usage, so the usage-only chunk is not passed on ...
    assert all(c["choices"] for c in chunks)
    assert all(c["provider"] == "openai" for c in chunks)
    # ... but the gateway asked the upstream for it.
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}


async def test_stream_usage_chunk_when_asked(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_data(await (await client.post("/v1/chat/completions", json=body)).text())
    last = orjson.loads(events[-2])
    assert last["choices"] == [] and without_cost(last["usage"]) == fake.usage


async def test_embeddings_keep_encoding_format(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    for fmt, expected in (("base64", "AACAPwAAAEAAAEBA"), ("float", [1.0, 2.0, 3.0])):
        resp = await client.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                                         "input": ["a", "b"], "encoding_format": fmt})
        assert resp.status == 200
        doc = await resp.json()
        assert [d["embedding"] for d in doc["data"]] == [expected, expected]
        assert doc["provider"] == "openai"
        assert fake.received[-1].body["encoding_format"] == fmt
        assert fake.received[-1].path == "/v1/embeddings"


async def test_embeddings_without_encoding_format_send_none(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    await client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "a"})
    assert "encoding_format" not in fake.received[-1].body


@pytest.mark.parametrize(("upstream", "status", "code"), [
    (400, 400, "fake_failure"),
    (404, 404, "fake_failure"),
    (422, 422, "fake_failure"),
    (401, 502, "upstream_auth_failed"),
    (403, 502, "upstream_auth_failed"),
    (429, 429, "fake_failure"),
    (500, 502, "upstream_error"),
    (502, 502, "upstream_error"),
    (503, 503, "upstream_unavailable"),
    (504, 504, "upstream_timeout"),
])
async def test_upstream_errors_come_back_in_openai_shape(gateway, fake_openai, upstream, status, code):
    fake, url = fake_openai
    fake.fail_status = upstream
    fake.retry_after = "7" if upstream == 429 else None
    for stream in (False, True):
        client = await gateway(make_config(url))  # fresh: a 401 or 429 also rests the provider or key
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert resp.status == status
        error = (await resp.json())["error"]
        assert error["code"] == code
        assert set(error) == {"message", "type", "param", "code"}
        if upstream == 429:
            assert resp.headers["Retry-After"] == "7"
        assert "sk-upstream-secret" not in error["message"]


async def test_upstream_auth_failure_is_not_the_callers_fault(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.fail_status = 401
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 502
    assert "not your key" in (await resp.json())["error"]["message"]


def without_cost(usage: dict) -> dict:
    """An answer's usage without the gateway's ``cost`` (which must be there)."""
    assert "cost" in usage
    return {k: v for k, v in usage.items() if k != "cost"}


async def test_an_error_body_that_arrives_in_pieces_is_read_whole(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.script, fake.split_error_body = [400], True
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "fake_failure" and error["message"] == fake.fail_message


async def test_usage_on_a_chunk_with_choices_is_reported_once(gateway, fake_openai) -> None:
    fake, url = fake_openai
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
    fake.script = [[orjson.dumps(chunk), b"[DONE]"]]
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions",
                             json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    events = [orjson.loads(e) for e in sse_data(await resp.text()) if e != "[DONE]"]
    with_usage = [e for e in events if e.get("usage")]
    assert len(with_usage) == 1 and with_usage[0]["choices"] == []
    assert with_usage[0]["usage"]["total_tokens"] == 6 and "cost" in with_usage[0]["usage"]
