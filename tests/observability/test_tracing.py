"""OpenTelemetry traces, read the way a collector reads them: an in-process OTLP/HTTP receiver.

:class:`OtlpReceiver` is a small aiohttp app accepting ``POST /v1/traces``; it
decodes each ``ExportTraceServiceRequest`` (protobuf, as the official exporter
sends it) with ``opentelemetry-proto``. Each test points
``monitoring.tracing.otlp_endpoint`` at it, drives the gateway (fake OpenAI
upstreams that record the headers they get), makes the gateway export what it
has, and checks what arrived: span names and kinds, parent links, trace ids,
the ``traceparent`` each upstream received, and the attributes.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxy.app import create_app
from proxy.config import ConfigError, parse_config
from proxy.observability.tracing import TRACING
from tests.conftest import make_config
from tests.fakes import FakeOpenAI
from tests.process import GatewayProcess, write_config

UPSTREAM_KEY = "sk-upstream-secret"
SECRET_PROMPT = "my password is hunter2"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
WAIT = 5.0  # seconds: the bound on every wait


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


@dataclass
class ReceivedSpan:
    """One span as the receiver decoded it."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    start: int
    end: int
    status: int
    attributes: dict[str, Any]
    resource: dict[str, Any]

    @classmethod
    def decode(cls, span: Span, resource: dict[str, Any]) -> "ReceivedSpan":
        return cls(span.name, span.kind, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                   span.start_time_unix_nano, span.end_time_unix_nano, span.status.code,
                   {kv.key: _value(kv.value) for kv in span.attributes}, resource)


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.content_types: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.traces)
        return app

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.content_types.append(request.headers.get("Content-Type", ""))
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(ReceivedSpan.decode(span, resource) for span in scope_spans.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def wait_for(self, count: int) -> list[ReceivedSpan]:
        """The spans, once at least ``count`` arrived (at most ``WAIT`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while len(self.spans) < count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return list(self.spans)

    def server_spans(self) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.kind == Span.SPAN_KIND_SERVER]

    def children(self, parent: ReceivedSpan) -> list[ReceivedSpan]:
        """``parent``'s children, in the order they started."""
        found = [s for s in self.spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id]
        return sorted(found, key=lambda s: s.start)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[OtlpReceiver, str]:
    """A running receiver and its traces URL."""
    found = OtlpReceiver()
    server = await aiohttp_server(found.app())
    return found, str(server.make_url("/v1/traces"))


def traced(config: dict[str, Any], endpoint: str, **tracing: Any) -> dict[str, Any]:
    """``config`` with tracing to ``endpoint``."""
    config.setdefault("monitoring", {})["tracing"] = {"otlp_endpoint": endpoint, **tracing}
    return config


async def exported(client: Any) -> None:
    """Make the gateway export every ended span now (as its batch thread would, later)."""
    assert await asyncio.to_thread(client.app[TRACING].force_flush)


def traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def sent_context(header: str) -> tuple[str, str, bool]:
    """Trace id, span id and the sampled flag of a ``traceparent`` (whatever other flags it sets)."""
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id, bool(int(flags, 16) & 1)


def assert_no_secrets(spans: list[ReceivedSpan]) -> None:
    text = json.dumps([s.attributes for s in spans] + [s.resource for s in spans])
    assert UPSTREAM_KEY not in text and "hunter2" not in text and "sk-gw-caller" not in text


# ------------------------------------------------------------------ plain requests


async def test_a_plain_request_is_a_server_span_with_one_client_span_per_attempt(
        gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint, service_name="gw-under-test"))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.5, "max_tokens": 50},
                             headers={"X-Request-Id": "req-traced-1"})
    assert resp.status == 200
    await exported(client)

    spans = await otlp.wait_for(2)
    assert len(spans) == 2
    [server] = otlp.server_spans()
    [attempt] = otlp.children(server)
    assert (server.name, server.parent_id) == ("POST /v1/chat/completions", "")
    assert (attempt.name, attempt.kind) == ("chat gpt-4o", Span.SPAN_KIND_CLIENT)
    assert server.start <= attempt.start <= attempt.end <= server.end
    assert server.status == attempt.status == Status.STATUS_CODE_UNSET
    assert server.resource["service.name"] == "gw-under-test"
    assert "service.version" in server.resource

    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.provider.name"] == "openai"
    assert server.attributes["gen_ai.request.model"] == "gpt-4o"
    assert server.attributes["gen_ai.response.model"] == "gpt-4o"
    assert server.attributes["gen_ai.request.temperature"] == 0.5
    assert server.attributes["gen_ai.request.max_tokens"] == 50
    assert (server.attributes["gen_ai.usage.input_tokens"], server.attributes["gen_ai.usage.output_tokens"]) == (
        fake.usage["prompt_tokens"], fake.usage["completion_tokens"])
    assert server.attributes["llm_gateway.request_id"] == "req-traced-1"
    assert server.attributes["llm_gateway.attempts"] == 1
    assert "error.type" not in server.attributes

    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["llm_gateway.provider"] == "openai"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o"
    assert attempt.attributes["llm_gateway.attempt.outcome"] == "ok"
    assert attempt.attributes["llm_gateway.attempt.number"] == 1
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["gen_ai.usage.output_tokens"] == fake.usage["completion_tokens"]

    # The upstream was called inside the attempt's span.
    [received] = fake.received
    assert sent_context(received.headers["traceparent"]) == (attempt.trace_id, attempt.span_id, True)
    assert otlp.content_types == ["application/x-protobuf"]
    assert_no_secrets(spans)


async def test_an_incoming_traceparent_is_continued_and_passed_upstream(gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint))
    resp = await client.post("/v1/chat/completions", json=CHAT, headers={
        "traceparent": traceparent(CALLER_TRACE, CALLER_SPAN), "tracestate": "vendor=opaque-value"})
    assert resp.status == 200
    await exported(client)

    await otlp.wait_for(2)
    [server] = otlp.server_spans()
    [attempt] = otlp.children(server)
    assert (server.trace_id, server.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    upstream = fake.received[0].headers
    assert upstream["traceparent"] == traceparent(CALLER_TRACE, attempt.span_id)
    assert upstream["tracestate"] == "vendor=opaque-value"


async def test_without_a_traceparent_each_request_starts_its_own_trace(gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint))
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    await exported(client)

    await otlp.wait_for(4)
    servers = otlp.server_spans()
    assert len(servers) == 2 and all(s.parent_id == "" for s in servers)
    assert len({s.trace_id for s in servers}) == 2
    sent = [r.headers["traceparent"].split("-")[1] for r in fake.received]
    assert sent == [s.trace_id for s in sorted(servers, key=lambda s: s.start)]


async def test_a_trace_the_caller_did_not_sample_exports_nothing_but_still_propagates(
        gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint))
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"traceparent": traceparent(CALLER_TRACE, CALLER_SPAN, sampled=False)})
    assert resp.status == 200
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200  # a sampled one, to wait for
    await exported(client)

    spans = await otlp.wait_for(2)
    assert len(spans) == 2 and CALLER_TRACE not in {s.trace_id for s in spans}  # only the sampled request's
    trace_id, span_id, sampled = sent_context(fake.received[0].headers["traceparent"])
    assert (trace_id, sampled) == (CALLER_TRACE, False) and span_id != CALLER_SPAN


async def test_sample_ratio_zero_starts_no_trace_of_its_own(gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint, sample_ratio=0))
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"traceparent": traceparent(CALLER_TRACE, CALLER_SPAN)})
    assert resp.status == 200  # the caller sampled its trace: it is kept
    await exported(client)

    spans = await otlp.wait_for(2)
    assert {s.trace_id for s in spans} == {CALLER_TRACE}
    assert sent_context(fake.received[0].headers["traceparent"])[2] is False


# ------------------------------------------------------------------ streams, fallback, errors


async def test_a_stream_span_lasts_until_the_stream_ends(gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    fake.chunk_delay = 0.05
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    await resp.read()
    await exported(client)

    await otlp.wait_for(2)
    [server] = otlp.server_spans()
    [attempt] = otlp.children(server)
    assert server.attributes["llm_gateway.stream"] is True
    ttft_ms = server.attributes["llm_gateway.time_to_first_token_ms"]
    assert 0 < ttft_ms < (server.end - server.start) / 1e6
    first_chunk_ms = attempt.attributes["llm_gateway.attempt.first_chunk_ms"]
    # The answering stream's span covers the whole stream, not only its first chunk.
    assert (attempt.end - attempt.start) / 1e6 > first_chunk_ms + 2 * fake.chunk_delay * 1000 * 0.9
    assert attempt.attributes["gen_ai.usage.input_tokens"] == fake.usage["prompt_tokens"]
    assert server.status == attempt.status == Status.STATUS_CODE_UNSET


async def test_a_stream_broken_midway_marks_both_spans_failed(gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    fake.cut_after = 1
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint))
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    await resp.read()
    await exported(client)

    await otlp.wait_for(2)
    [server] = otlp.server_spans()
    [attempt] = otlp.children(server)
    assert server.status == attempt.status == Status.STATUS_CODE_ERROR
    assert server.attributes["error.type"] == attempt.attributes["error.type"] == "upstream_stream_cut"
    assert server.attributes["http.response.status_code"] == 200
    assert attempt.attributes["llm_gateway.attempt.outcome"] == "ok"  # it opened; it broke later


@pytest.fixture
async def two_upstreams(aiohttp_server: Any) -> tuple[FakeOpenAI, FakeOpenAI, dict[str, Any]]:
    """``primary`` serves gpt-4o, which falls back to ``backup``'s ``cheap`` (upstream id ``gpt-4o-mini``)."""
    primary, backup = FakeOpenAI(reply="from primary"), FakeOpenAI(reply="from backup")
    urls = [str((await aiohttp_server(fake.app())).make_url("/v1")) for fake in (primary, backup)]
    config = make_config(
        routing={"default_provider": "primary", "default_model": "gpt-4o"},
        fallback={"enabled": True, "max_retries": 1, "retry_delay": 0.01,
                  "fallback_map": {"primary/gpt-4o": ["backup/cheap"]}},
    )
    config["providers"]["primary"] = {"type": "openai", "api_key": UPSTREAM_KEY, "base_url": urls[0],
                                      "models": {"gpt-4o": {}}}
    config["providers"]["backup"] = {"type": "openrouter", "api_key": UPSTREAM_KEY, "base_url": urls[1],
                                     "models": {"cheap": {"upstream_model": "gpt-4o-mini"}}}
    return primary, backup, config


async def test_retries_and_fallback_are_one_client_span_each(gateway, two_upstreams, receiver) -> None:
    primary, backup, config = two_upstreams
    otlp, endpoint = receiver
    client = await gateway(traced(config, endpoint))
    primary.script = [500, 500]  # primary fails twice (one retry): backup/cheap answers
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200 and resp.headers["X-Gateway-Fallback"] == "primary/gpt-4o"
    await exported(client)

    await otlp.wait_for(4)
    [server] = otlp.server_spans()
    attempts = otlp.children(server)
    assert [a.name for a in attempts] == ["chat gpt-4o", "chat gpt-4o", "chat gpt-4o-mini"]
    assert [a.attributes["llm_gateway.attempt.number"] for a in attempts] == [1, 2, 3]
    assert [a.attributes["llm_gateway.attempt.outcome"] for a in attempts] == [
        "upstream_error", "upstream_error", "ok"]
    assert [a.status for a in attempts] == [Status.STATUS_CODE_ERROR] * 2 + [Status.STATUS_CODE_UNSET]
    assert [a.attributes.get("error.type") for a in attempts] == ["upstream_error", "upstream_error", None]
    assert [a.attributes["http.response.status_code"] for a in attempts] == [502, 502, 200]
    assert attempts[2].attributes["gen_ai.provider.name"] == "openrouter"
    assert attempts[2].attributes["llm_gateway.model"] == "cheap"
    assert "gen_ai.usage.input_tokens" not in attempts[0].attributes
    assert attempts[0].end <= attempts[1].start and attempts[1].end <= attempts[2].start

    assert server.attributes["llm_gateway.fallback_from"] == "primary/gpt-4o"
    assert server.attributes["llm_gateway.attempts"] == 3
    assert server.attributes["gen_ai.request.model"] == "gpt-4o"
    assert server.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert server.attributes["llm_gateway.provider"] == "backup"
    assert server.status == Status.STATUS_CODE_UNSET

    # Each upstream call carried its own attempt's span.
    sent = [sent_context(r.headers["traceparent"]) for r in primary.received + backup.received]
    assert sent == [(a.trace_id, a.span_id, True) for a in attempts]


async def test_a_failed_request_carries_its_error_type(gateway, fake_openai, receiver) -> None:
    fake, url = fake_openai
    fake.fail_status = 500
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(url), endpoint))
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 502
    await exported(client)

    await otlp.wait_for(2)
    [server] = otlp.server_spans()
    [attempt] = otlp.children(server)
    assert server.status == attempt.status == Status.STATUS_CODE_ERROR
    assert server.attributes["error.type"] == attempt.attributes["error.type"] == "upstream_error"
    assert server.attributes["http.response.status_code"] == 502
    assert "gen_ai.response.model" not in server.attributes


async def test_a_caller_mistake_is_traced_without_an_error_status(gateway, receiver) -> None:
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(), endpoint))
    resp = await client.post("/v1/chat/completions", json={"model": "mock-gpt", "messages": "not a list"})
    assert resp.status == 400
    await exported(client)

    [server] = await otlp.wait_for(1)
    assert server.kind == Span.SPAN_KIND_SERVER
    assert server.status == Status.STATUS_CODE_UNSET  # a 4xx is the caller's, not the server's failure
    assert server.attributes["http.response.status_code"] == 400
    assert server.attributes["error.type"] == (await resp.json())["error"]["code"]
    assert otlp.children(server) == []


async def test_embeddings_and_cache_hits_are_traced(gateway, receiver) -> None:
    otlp, endpoint = receiver
    client = await gateway(traced(make_config(caching={"enabled": True}), endpoint))
    resp = await client.post("/v1/embeddings", json={"model": "mock-embed", "input": "embed me"})
    assert resp.status == 200
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "cache me"}]}
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", json=body)).status == 200
    assert (await client.get("/health")).status == 200  # not a model request: no span
    await exported(client)

    await otlp.wait_for(5)
    servers = sorted(otlp.server_spans(), key=lambda s: s.start)
    assert [s.name for s in servers] == ["POST /v1/embeddings", "POST /v1/chat/completions",
                                         "POST /v1/chat/completions"]
    embed, miss, hit = servers
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"
    assert [a.name for a in otlp.children(embed)] == ["embeddings mock-embed"]
    assert embed.attributes["gen_ai.provider.name"] == "mock"
    assert (miss.attributes["llm_gateway.cache"], hit.attributes["llm_gateway.cache"]) == ("MISS", "HIT")
    assert len(otlp.children(miss)) == 1 and otlp.children(hit) == []
    assert hit.attributes["gen_ai.response.model"] == "mock-gpt"
    assert len(otlp.spans) == 5


async def test_cost_and_caller_are_attributes_and_keys_never_are(gateway, fake_openai, receiver) -> None:
    _, url = fake_openai
    otlp, endpoint = receiver
    config = make_config(url, auth={"keys": [{"name": "billing-svc", "key": "sk-gw-caller-secret", "team": "fin"}]})
    config["providers"]["openai"]["models"]["gpt-4o"]["pricing"] = {"input": 2.5, "output": 10}
    client = await gateway(traced(config, endpoint))
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": "Bearer sk-gw-caller-secret"})
    assert resp.status == 200
    cost = (await resp.json())["usage"]["cost"]
    await exported(client)

    spans = await otlp.wait_for(2)
    [server] = otlp.server_spans()
    assert server.attributes["llm_gateway.cost_usd"] == pytest.approx(cost)
    assert (server.attributes["llm_gateway.caller"], server.attributes["llm_gateway.team"]) == ("billing-svc", "fin")
    assert_no_secrets(spans)


# ------------------------------------------------------------------ off, config, the real process


def test_with_tracing_off_no_opentelemetry_module_is_loaded(tmp_path: Path) -> None:
    script = """
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from proxy.app import create_app
from proxy.config import parse_config
from tests.conftest import make_config

async def main():
    async with TestClient(TestServer(create_app(parse_config(make_config())))) as client:
        resp = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert resp.status == 200
        resp = await client.post("/v1/chat/completions",
                                 json={"stream": True, "messages": [{"role": "user", "content": "hi"}]})
        await resp.read()
    print("loaded:", sorted(name for name in sys.modules if name.startswith("opentelemetry")), file=sys.stderr)

asyncio.run(main())
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stderr.splitlines(), done.stderr


async def test_with_tracing_off_no_traceparent_goes_upstream(gateway, fake_openai) -> None:
    fake, url = fake_openai
    client = await gateway(make_config(url))
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"traceparent": traceparent(CALLER_TRACE, CALLER_SPAN)})
    assert resp.status == 200
    assert "traceparent" not in fake.received[0].headers
    assert TRACING not in client.app


def test_tracing_settings_are_parsed_and_checked() -> None:
    endpoint = "http://collector:4318/v1/traces"
    tracing = parse_config(traced(make_config(), endpoint)).monitoring.tracing
    assert tracing is not None
    assert (tracing.otlp_endpoint, tracing.service_name, tracing.sample_ratio) == (endpoint, "llm-gateway", 1.0)
    assert parse_config(make_config()).monitoring.tracing is None
    unset = traced(make_config(), "${OTLP_TRACES_URL:-}")
    assert parse_config(unset, environ={}).monitoring.tracing is None  # an empty endpoint is off
    for bad in ({"otlp_endpoint": "collector:4318"}, {"otlp_endpoint": endpoint, "sample_ratio": 2},
                {"service_name": "no-endpoint"}, {"otlp_endpoint": endpoint, "headers": {}}):
        with pytest.raises(ConfigError, match=r"monitoring\.tracing"):
            parse_config(make_config(monitoring={"tracing": bad}))


async def test_a_tracing_change_on_reload_needs_a_restart(tmp_path: Path, receiver, log_lines,
                                                         aiohttp_client) -> None:
    _, endpoint = receiver
    path = write_config(tmp_path / "gateway.json", make_config())
    client = await aiohttp_client(create_app(parse_config(make_config()), config_path=str(path),
                                             watch_interval=0.05))
    write_config(path, traced(make_config(), endpoint))
    [reloaded] = await log_lines.wait_for("config_reloaded", timeout=WAIT)
    assert "monitoring.tracing" in reloaded["needs_restart"]
    assert TRACING not in client.app


async def test_the_real_gateway_exports_its_spans_at_shutdown(tmp_path: Path, fake_openai, receiver) -> None:
    fake, url = fake_openai
    otlp, endpoint = receiver
    config = traced(make_config(url, api={"host": "127.0.0.1", "port": 0, "shutdown_timeout": 5}), endpoint,
                    service_name="gw-process")
    path = write_config(tmp_path / "gateway.json", config)
    gw = GatewayProcess(["--config", str(path), "--port", "0"], cwd=tmp_path)
    try:
        port = await gw.await_started()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT,
                                    headers={"traceparent": traceparent(CALLER_TRACE, CALLER_SPAN)}) as resp:
                assert resp.status == 200
        gw.send(signal.SIGTERM)
        assert await gw.await_exit(timeout=15) == 0
    finally:
        gw.kill()
    spans = await otlp.wait_for(2)
    assert {(s.name, s.kind) for s in spans} == {("POST /v1/chat/completions", Span.SPAN_KIND_SERVER),
                                                 ("chat gpt-4o", Span.SPAN_KIND_CLIENT)}
    assert {s.trace_id for s in spans} == {CALLER_TRACE}
    assert {s.resource["service.name"] for s in spans} == {"gw-process"}
    assert fake.received[0].headers["traceparent"].split("-")[1] == CALLER_TRACE
