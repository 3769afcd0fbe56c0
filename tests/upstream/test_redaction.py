"""No configured upstream secret reaches a caller, a log line or a metric, whatever the upstream sends."""

from __future__ import annotations

import orjson
import pytest

from proxy.config import parse_config
from proxy.state import upstream_secrets
from proxy.upstream.redaction import REDACTED, Redactor, header_secrets
from tests.conftest import make_config, sse_data

KEY = "sk-upstream-secret"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def test_every_secret_is_replaced_and_other_bytes_are_untouched() -> None:
    redactor = Redactor(["sk-abcdefgh", "sk-abcdefgh-longer", "short"])
    assert redactor.scrub(b"key sk-abcdefgh-longer and sk-abcdefgh") == b"key [REDACTED] and [REDACTED]"
    clean = b'{"choices": []}'
    assert redactor.scrub(clean) is clean
    assert redactor.scrub(b"short") == b"short"  # too short to be a secret
    assert redactor.scrub_text("x sk-abcdefgh y") == "x [REDACTED] y"


def test_credential_headers_and_every_providers_keys_are_secrets() -> None:
    assert header_secrets({"Authorization": "Bearer tok-123456789", "X-Title": "my app"}) == [
        "Bearer tok-123456789", "tok-123456789"]
    config = make_config("http://127.0.0.1:9/v1")
    config["providers"]["openai"]["api_keys"] = ["sk-second-key-0001"]
    config["providers"]["openai"]["headers"] = {"X-Org-Token": "org-token-777777"}
    redactor = upstream_secrets(parse_config(config))
    text = f"{KEY} sk-second-key-0001 org-token-777777".encode()
    assert redactor.scrub(text) == b" ".join([REDACTED] * 3)


@pytest.mark.parametrize("status", [400, 401, 404, 422, 429, 500, 503])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_error_quoting_our_key_never_relays_it(gateway, fake_openai, log_lines,
                                                                 status: int, stream: bool) -> None:
    fake, url = fake_openai
    fake.fail_status = status
    fake.fail_message = f"Incorrect API key provided: {KEY}. You can find your key at ..."
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    text = await resp.text()
    assert resp.status >= 400 and KEY not in text
    if status in (400, 404, 422):
        assert "[REDACTED]" in orjson.loads(text)["error"]["message"]
    assert KEY not in orjson.dumps(log_lines.flushed()).decode()


async def test_a_mid_stream_error_event_quoting_our_key_is_redacted(gateway, fake_openai) -> None:
    fake, url = fake_openai
    fake.script = [[b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
                    b'[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}',
                    orjson.dumps({"error": {"message": f"bad key {KEY}", "type": "server_error",
                                            "code": KEY}})]]
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    body = await resp.text()
    assert KEY not in body
    error = orjson.loads(sse_data(body)[-1])["error"]
    assert error["message"].endswith("[REDACTED]") and error["code"] == "upstream_error"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_that_echoes_our_key_is_redacted(gateway, fake_openai, stream: bool) -> None:
    fake, url = fake_openai
    fake.reply, fake.chunks = f"The header said {KEY}, by the way.", 1  # within one chunk: see README
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    body = await resp.text()
    assert resp.status == 200 and KEY not in body and "[REDACTED]" in body
