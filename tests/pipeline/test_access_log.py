"""The per-request JSON log line, request ids, and failures of our own."""

from __future__ import annotations

import orjson

from tests.conftest import make_config

KEYS = {"keys": [{"name": "billing-svc", "key": "sk-gw-caller-secret"}]}
SECRET_PROMPT = "my password is hunter2"


async def test_one_line_per_request_with_its_fields(gateway, fake_openai, log_lines) -> None:
    _, url = fake_openai
    client = await gateway(make_config(url, auth=KEYS))
    headers = {"Authorization": "Bearer sk-gw-caller-secret", "X-Request-Id": "req-1"}
    body = {"model": "gpt-4o", "user": "alice", "task_type": "research",
            "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    await client.post("/v1/chat/completions", json=body, headers=headers)
    await (await client.post("/v1/chat/completions", json={**body, "stream": True},
                             headers={**headers, "X-Request-Id": "req-2"})).read()
    lines = [line for line in log_lines.flushed() if line["event"] == "request"]
    assert [line["request_id"] for line in lines] == ["req-1", "req-2"]
    plain, stream = lines
    assert plain["level"] == "INFO" and plain["time"].endswith("Z")
    assert (plain["method"], plain["path"], plain["status"]) == ("POST", "/v1/chat/completions", 200)
    assert (plain["provider"], plain["model"], plain["caller"], plain["user"]) == (
        "openai", "gpt-4o", "billing-svc", "alice")
    assert plain["task_type"] == "research"
    assert (plain["prompt_tokens"], plain["completion_tokens"]) == (11, 7)
    assert plain["latency_ms"] > 0
    assert stream["stream"] is True
    assert 0 < stream["ttft_ms"] <= stream["latency_ms"]
    assert (stream["prompt_tokens"], stream["completion_tokens"]) == (11, 7)


async def test_no_key_and_no_prompt_in_any_line(gateway, fake_openai, log_lines) -> None:
    _, url = fake_openai
    client = await gateway(make_config(url, auth=KEYS))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-gw-caller-secret"})
    await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-wrong-guess"})
    text = "\n".join(orjson.dumps(line).decode() for line in log_lines.flushed())
    for secret in ("sk-gw-caller-secret", "sk-wrong-guess", "sk-upstream-secret", "hunter2"):
        assert secret not in text


async def test_errors_are_logged_with_their_code(gateway, log_lines) -> None:
    client = await gateway(make_config())
    await client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    line = next(line for line in log_lines.flushed() if line["event"] == "request")
    assert (line["status"], line["error"]) == (404, "model_not_found")


async def test_a_bug_of_ours_is_a_500_without_traceback(gateway, monkeypatch, log_lines) -> None:
    from proxy.providers.mock import MockAdapter

    async def explode(self, call):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(MockAdapter, "chat", explode)
    client = await gateway(make_config())
    resp = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert resp.status == 500
    text = await resp.text()
    assert "Traceback" not in text and "internal detail" not in text
    error = orjson.loads(text)["error"]
    assert error["code"] == "internal_error"
    assert resp.headers["X-Request-Id"] in error["message"]
    lines = log_lines.flushed()
    assert any(line["event"] == "internal_error" and "RuntimeError" in line.get("exception", "") for line in lines)
