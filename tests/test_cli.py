"""The real gateway process: ``python -m proxy`` / ``llm-gateway`` started as a child.

Everything here is what a user of the command sees: the exit code, what is
printed, the port it listens on, what HTTP clients (the official ``openai``
SDK among them) get back, and what a fake upstream receives. The fake upstream
runs in the test's own event loop; the gateway reaches it over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import make_config
from tests.fakes import FakeOpenAI
from tests.process import (
    GatewayProcess,
    child_env,
    console_script,
    event_is,
    free_port,
    run_cli,
    write_config,
)

CALLER_KEY = "sk-caller-3b9e1f7a2c5d8e4f"
OTHER_CALLER_KEY = "sk-caller-other-9d2c4a6b"
WRONG_KEY = "sk-wrong-5e8f1a3c7b9d"
UPSTREAM_KEY = "sk-upstream-secret"  # what make_config() gives the openai provider
AUTH = {"keys": [{"name": "tests", "key": CALLER_KEY}, {"name": "other", "key": OTHER_CALLER_KEY}]}
SECRETS = (CALLER_KEY, OTHER_CALLER_KEY, WRONG_KEY, UPSTREAM_KEY)

ROOT = Path(__file__).resolve().parent.parent
PACKAGED_DEFAULT = ROOT / "proxy" / "defaults" / "local.json"

RELOAD_WITHIN = 2.0  # seconds; the bound for a file change to take effect
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)


# ---------------------------------------------------------------------- fixtures


# ---------------------------------------------------------------------- helpers


def chat_body(model: str | None = None, text: str = "Say hello", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], **extra}
    if model is not None:
        body["model"] = model
    return body


def sse_payloads(raw: bytes) -> list[bytes]:
    """The ``data:`` payloads of a whole SSE body, in order."""
    payloads = []
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: "):
            payloads.append(block[len(b"data: "):])
        else:
            assert not block.strip(), f"unexpected SSE block {block!r}"
    return payloads


def stream_text(raw: bytes) -> str:
    """The assistant text of a whole SSE chat stream."""
    text = ""
    for payload in sse_payloads(raw):
        if payload == b"[DONE]":
            continue
        doc = json.loads(payload)
        assert "error" not in doc, doc
        for choice in doc.get("choices") or []:
            text += choice["delta"].get("content") or ""
    return text


def mock_reply(text: str, model: str = "mock-gpt") -> str:
    return f"Mock reply from {model}: {text}"


async def models_listed(session: aiohttp.ClientSession, base_url: str, **headers: str) -> set[str]:
    async with session.get(f"{base_url}/v1/models", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return {m["id"] for m in (await resp.json())["data"]}


async def eventually_listed(session: aiohttp.ClientSession, base_url: str, model: str,
                            present: bool = True, within: float = RELOAD_WITHIN) -> None:
    """Poll ``/v1/models`` until ``model`` is (or is no longer) listed, at most ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        listed = await models_listed(session, base_url)
        if (model in listed) == present:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {within}s /v1/models still {'lacks' if present else 'has'} "
                                 f"{model!r}: {sorted(listed)}")
        await asyncio.sleep(0.05)


async def eventually(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


async def connection_refused(port: int, within: float = 2.0) -> bool:
    """True once a new TCP connection to ``port`` is refused (polling up to ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)


def assert_clean_output(gw: GatewayProcess, secrets: tuple[str, ...] = SECRETS) -> None:
    """Every stdout line is a JSON log line, request lines are complete, no key leaks, no traceback."""
    assert gw.bad_lines == [], f"stdout lines that are not JSON objects: {gw.bad_lines}"
    for line in gw.lines():
        assert {"time", "level", "event"} <= line.keys(), line
        if line["event"] == "request":
            assert isinstance(line.get("request_id"), str) and line["request_id"], line
            assert line.get("method") in ("GET", "POST"), line
            assert isinstance(line.get("path"), str) and line["path"].startswith("/"), line
            assert isinstance(line.get("status"), int), line
            assert isinstance(line.get("latency_ms"), (int, float)) and line["latency_ms"] >= 0, line
    everything = gw.stdout + "\n" + gw.stderr
    for secret in secrets:
        assert secret not in everything, f"a key appears in the gateway's output:\n{gw.output()}"
    assert "Traceback" not in gw.stderr, gw.output()


def openai_error(doc: Any) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error body, checked for shape."""
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    error = doc["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    return error


# ---------------------------------------------------------------- 1. SDK end to end


@pytest.mark.parametrize("backend", ["mock", "upstream"])
async def test_openai_sdk_end_to_end(backend: str, gateway_process: Any, aiohttp_server: Any) -> None:
    fake: FakeOpenAI | None = None
    if backend == "upstream":
        fake = FakeOpenAI()
        server = await aiohttp_server(fake.app())
        config = make_config(str(server.make_url("/v1")), auth=AUTH)
        chat_model, embed_model, expected = "gpt-4o", "text-embedding-3-small", fake.reply
    else:
        config = make_config(auth=AUTH)
        chat_model, embed_model, expected = "mock-gpt", "mock-embed", mock_reply("Say hello")
    gw = gateway_process(config)
    port = await gw.await_started()
    messages = [{"role": "user", "content": "Say hello"}]
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=CALLER_KEY,
                                max_retries=0, timeout=15)
    async with client:
        # plain chat; task_type is the gateway's own field and must not go upstream
        answer = await client.chat.completions.create(
            model=chat_model, messages=messages, extra_body={"task_type": "summarization"})
        assert answer.choices[0].message.content == expected
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None and answer.usage.total_tokens > 0

        # streaming chat with the final usage chunk
        stream = await client.chat.completions.create(
            model=chat_model, messages=messages, stream=True,
            stream_options={"include_usage": True}, extra_body={"task_type": "summarization"})
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "not streamed"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.total_tokens > 0
        assert all(c.usage is None for c in chunks[:-1])
        assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)

        # streaming chat without it: no usage chunk (the gateway asks upstream for one anyway)
        stream = await client.chat.completions.create(model=chat_model, messages=messages, stream=True)
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
        assert all(c.usage is None and c.choices for c in chunks)

        # embeddings with the SDK's default (base64 on the wire, floats for the caller)
        embedded = await client.embeddings.create(model=embed_model, input=["alpha", "beta"])
        vectors = [item.embedding for item in sorted(embedded.data, key=lambda d: d.index)]
        if fake is not None:
            assert vectors == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
        else:
            as_floats = await client.embeddings.create(model=embed_model, input=["alpha", "beta"],
                                                       encoding_format="float")
            expected_vectors = [item.embedding for item in sorted(as_floats.data, key=lambda d: d.index)]
            assert [len(v) for v in vectors] == [16, 16]
            for got, want in zip(vectors, expected_vectors):
                assert all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-7) for g, w in zip(got, want))
            assert vectors[0] != vectors[1]
            assert math.isclose(math.fsum(v * v for v in vectors[0]), 1.0, rel_tol=1e-5)

    if fake is not None:
        assert [r.path for r in fake.received] == ["/v1/chat/completions"] * 3 + ["/v1/embeddings"]
        for received in fake.received:
            headers = {k.lower(): v for k, v in received.headers.items()}
            assert headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
            assert "x-api-key" not in headers
            assert CALLER_KEY not in repr(list(received.headers.items()))
            assert CALLER_KEY not in json.dumps(received.body)
            assert "task_type" not in received.body
        assert fake.received[3].body["encoding_format"] == "base64"
        assert fake.received[0].body["model"] == "gpt-4o"

    n_requests = 4 if fake is not None else 5
    await gw.await_for("request", count=n_requests)
    requests = gw.requests()
    assert len(requests) == n_requests
    assert all(r["status"] == 200 and r["caller"] == "tests" for r in requests), requests
    assert [r.get("stream") for r in requests[:3]] == [None, True, True]
    assert_clean_output(gw)


# ---------------------------------------------------------------- 2. command line


async def test_host_and_port_flags_override_config(gateway_process: Any) -> None:
    config_port, flag_port = free_port(), free_port()
    config = make_config(api={"host": "localhost", "port": config_port, "shutdown_timeout": 5})
    gw = gateway_process(config, "--host", "127.0.0.1", "--port", str(flag_port))
    started = await gw.await_for("gateway_started", timeout=15)
    assert (started["host"], started["port"]) == ("127.0.0.1", flag_port)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.get(f"http://127.0.0.1:{flag_port}/health") as resp:
            assert resp.status == 200
    assert await connection_refused(config_port, within=0), "the config's port is listening too"


async def test_config_from_environment_variable(gateway_process: Any, tmp_path: Path) -> None:
    config = make_config()
    config["providers"]["mock"]["models"]["env-only-model"] = {}
    path = write_config(tmp_path / "from-env.json", config)
    # cwd has no config/local.json, so only the variable can lead it to a config
    gw = gateway_process(None, env=child_env(LLM_GATEWAY_CONFIG=str(path)), cwd=tmp_path)
    started = await gw.await_for("gateway_started", timeout=15)
    assert started["config"] == str(path)
    gw.port = started["port"]
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        assert "env-only-model" in await models_listed(session, gw.base_url)


def test_config_flag_beats_environment_variable(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.json", make_config())
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    result = run_cli(["--check", "--config", str(good)], env=child_env(LLM_GATEWAY_CONFIG=str(bad)))
    assert result.returncode == 0, result.stderr
    assert str(good) in result.stdout
    result = run_cli(["--check"], env=child_env(LLM_GATEWAY_CONFIG=str(bad)), cwd=tmp_path)
    assert result.returncode != 0 and "not valid JSON" in result.stderr, result


async def chat_on_default(base_url: str) -> None:
    """The packaged default answers a chat call on its mock model, and lists its models."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(f"{base_url}/v1/chat/completions", json=chat_body("mock-gpt")) as resp:
            doc = await resp.json()
            assert resp.status == 200, doc
        assert doc["choices"][0]["message"]["content"] == mock_reply("Say hello")
        assert doc["provider"] == "mock"
        assert await models_listed(session, base_url) == {"mock-gpt", "mock-fast", "mock-embedding"}


async def test_starts_on_the_packaged_default_from_any_directory(gateway_process: Any,
                                                                 tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    # no --config, no LLM_GATEWAY_CONFIG (child_env drops it), and no config/ in the cwd
    gw = gateway_process(None, cwd=elsewhere)
    started = await gw.await_for("gateway_started", timeout=15)
    assert started["config"] == str(PACKAGED_DEFAULT)
    assert (started["host"], started["providers"]) == ("127.0.0.1", ["mock"])
    gw.port = started["port"]
    await chat_on_default(gw.base_url)
    gw.send(signal.SIGTERM)
    assert await gw.await_exit(10) == 0
    assert_clean_output(gw)


def test_help_and_check_name_the_packaged_default(tmp_path: Path) -> None:
    result = run_cli(["--help"], env=child_env(COLUMNS="300"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config_help = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("--config"))
    assert "$LLM_GATEWAY_CONFIG" in config_help and str(PACKAGED_DEFAULT) in config_help, config_help
    result = run_cli(["--check"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"llm-gateway: {PACKAGED_DEFAULT} is valid"


def install_non_editable(target: Path, scratch: Path) -> None:
    """Lay the package out in ``target`` as a wheel install would put it in site-packages.

    ``pip install --target`` cannot build a wheel offline here (setuptools < 70.1
    needs the separate ``wheel`` package for ``bdist_wheel``), so this runs the
    step of a wheel build that decides what gets installed: setuptools'
    ``build_py``, on a copy of the source tree (the repository gets no build/
    directory), honouring ``setup.cfg``'s packages and ``package_data``.
    """
    source = scratch / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "proxy", source / "proxy", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "--build-lib", str(target)],
        cwd=source, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (target / "proxy" / "cli.py").is_file()


async def test_non_editable_install_starts_on_its_packaged_default(gateway_process: Any,
                                                                   tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_non_editable(site, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = child_env(PYTHONPATH=str(site))
    # the venv's interpreter supplies the dependencies; the package is the installed copy
    which = subprocess.run([sys.executable, "-c", "import proxy; print(proxy.__file__)"], env=env,
                           cwd=elsewhere, capture_output=True, text=True, timeout=30)
    assert which.stdout.strip() == str(site / "proxy" / "__init__.py"), which
    gw = gateway_process(None, env=env, cwd=elsewhere)
    started = await gw.await_for("gateway_started", timeout=15)
    assert started["config"] == str(site / "proxy" / "defaults" / "local.json"), started
    gw.port = started["port"]
    await chat_on_default(gw.base_url)
    gw.send(signal.SIGTERM)
    assert await gw.await_exit(10) == 0
    assert_clean_output(gw)


async def test_console_script_starts_and_stops(gateway_process: Any) -> None:
    script = console_script()
    assert os.access(script, os.X_OK), f"{script} is missing: pip install -e '.[test]'"
    gw = gateway_process(make_config(), command=[script])
    await gw.await_started()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.get(f"{gw.base_url}/health") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "healthy"
    gw.send(signal.SIGTERM)
    assert await gw.await_exit(10) == 0
    assert gw.lines("gateway_stopped")


def test_check_validates_and_exits(tmp_path: Path) -> None:
    path = write_config(tmp_path / "gateway.json", make_config(auth=AUTH))
    result = run_cli(["--check", "--config", str(path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"llm-gateway: {path} is valid"
    assert "gateway_started" not in result.stdout


def _invalid(change: Any) -> dict[str, Any]:
    config = make_config()
    change(config)
    return config


INVALID_CONFIGS = {
    "port-type": (lambda c: c["api"].update(port="eighty"), "$.api.port"),
    "unknown-field": (lambda c: c["api"].update(hots="127.0.0.1"), "$.api"),
    "no-models": (lambda c: c["providers"]["mock"].update(models={}), "$.providers.mock.models"),
    "default-model": (lambda c: c["routing"].update(default_model="nope"), "$.routing.default_model"),
    "mock-setting": (lambda c: c["providers"]["mock"]["mock"].update(chunk_count=0),
                     "$.providers.mock.mock.chunk_count"),
}


@pytest.mark.parametrize("mode", ["start", "check"])
@pytest.mark.parametrize("case", sorted(INVALID_CONFIGS))
def test_invalid_config_exits_naming_the_json_path(case: str, mode: str, tmp_path: Path) -> None:
    change, json_path = INVALID_CONFIGS[case]
    path = write_config(tmp_path / "gateway.json", _invalid(change))
    args = ["--config", str(path), "--port", "0"] + (["--check"] if mode == "check" else [])
    result = run_cli(args)
    assert result.returncode == 2 if mode == "check" else result.returncode != 0, result.returncode
    assert json_path in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "gateway_started" not in result.stdout


def test_unreadable_or_broken_config_file(tmp_path: Path) -> None:
    result = run_cli(["--config", str(tmp_path / "missing.json"), "--port", "0"])
    assert result.returncode != 0 and "cannot read config file" in result.stderr, result
    broken = tmp_path / "broken.json"
    broken.write_text('{"api": {')
    result = run_cli(["--config", str(broken), "--port", "0"])
    assert result.returncode != 0 and "not valid JSON" in result.stderr, result
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["config", "flag", "check"])
def test_public_bind_without_keys_is_refused(how: str, tmp_path: Path) -> None:
    config = make_config()
    args = ["--port", "0"]
    if how == "flag":
        args += ["--host", "0.0.0.0"]
    else:
        config["api"]["host"] = "0.0.0.0"
    if how == "check":
        args.append("--check")
    path = write_config(tmp_path / "gateway.json", config)
    result = run_cli(["--config", str(path), *args])
    assert result.returncode == 2 if how == "check" else result.returncode != 0, result.returncode
    assert "refusing to listen on 0.0.0.0" in result.stderr, result.stderr
    assert "auth.keys" in result.stderr and "auth.enabled" in result.stderr
    assert "gateway_started" not in result.stdout and "is valid" not in result.stdout


@pytest.mark.parametrize("auth", [{"enabled": False}, AUTH], ids=["auth-disabled", "keys"])
async def test_public_bind_starts_with_auth_off_or_keys(auth: dict[str, Any], gateway_process: Any) -> None:
    config = make_config(auth=auth)
    config["api"]["host"] = "0.0.0.0"
    gw = gateway_process(config)
    started = await gw.await_for("gateway_started", timeout=15)
    assert started["host"] == "0.0.0.0"
    gw.port = started["port"]
    headers = {"Authorization": f"Bearer {CALLER_KEY}"} if auth.get("keys") else {}
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(f"{gw.base_url}/v1/chat/completions", json=chat_body("mock-gpt"),
                                headers=headers) as resp:
            assert resp.status == 200, await resp.text()


async def test_auth_with_keys(gateway_process: Any) -> None:
    gw = gateway_process(make_config(auth=AUTH))
    await gw.await_started()
    url = f"{gw.base_url}/v1/chat/completions"
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(url, json=chat_body("mock-gpt")) as resp:
            assert resp.status == 401
            error = openai_error(await resp.json())
            assert error["code"] == "missing_api_key" and error["type"] == "authentication_error"
        async with session.post(url, json=chat_body("mock-gpt"),
                                headers={"Authorization": f"Bearer {WRONG_KEY}"}) as resp:
            assert resp.status == 401
            assert openai_error(await resp.json())["code"] == "invalid_api_key"
        async with session.get(f"{gw.base_url}/v1/models") as resp:
            assert resp.status == 401
            openai_error(await resp.json())
        async with session.post(url, json=chat_body("mock-gpt"),
                                headers={"Authorization": f"Bearer {CALLER_KEY}"}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["choices"][0]["message"]["content"] == mock_reply("Say hello")
        async with session.post(url, json=chat_body("mock-gpt"),
                                headers={"x-api-key": OTHER_CALLER_KEY}) as resp:
            assert resp.status == 200, await resp.text()
        async with session.get(f"{gw.base_url}/health") as resp:
            assert resp.status == 200, "health must stay public"
    await gw.await_for("request", count=6)
    assert [(r["status"], r.get("caller")) for r in gw.requests()] == [
        (401, None), (401, None), (401, None), (200, "tests"), (200, "other"), (200, None)]
    assert_clean_output(gw)


# ---------------------------------------------------------------- 3. SIGTERM drains


@pytest.mark.parametrize(("backend", "signum"), [
    ("mock", signal.SIGTERM), ("upstream", signal.SIGTERM), ("mock", signal.SIGINT)],
    ids=["mock-SIGTERM", "upstream-SIGTERM", "mock-SIGINT"])
async def test_sigterm_drains_streams_then_exits_zero(backend: str, signum: int, gateway_process: Any,
                                                      aiohttp_server: Any) -> None:
    grace = 8
    fake: FakeOpenAI | None = None
    if backend == "upstream":
        fake = FakeOpenAI(reply="abcdefghijklmnopqrstuvwxyz0123", chunks=15, chunk_delay=0.1)
        server = await aiohttp_server(fake.app())
        config = make_config(str(server.make_url("/v1")))
        model, expected = "gpt-4o", fake.reply
    else:
        config = make_config()
        config["providers"]["mock"]["mock"] = {"chunk_count": 15, "chunk_delay": 0.1}
        model, expected = "mock-gpt", mock_reply("Say hello")
    config["api"]["shutdown_timeout"] = grace
    gw = gateway_process(config)
    port = await gw.await_started()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(f"{gw.base_url}/v1/chat/completions",
                                json=chat_body(model, stream=True)) as resp:
            assert resp.status == 200
            first = await resp.content.readuntil(b"\n\n")
            signalled = time.monotonic()
            gw.send(signum)
            stopping = await gw.await_for("gateway_stopping", timeout=5)
            assert stopping["grace_seconds"] == grace
            assert await connection_refused(port), "still accepting connections after the signal"
            rest = await asyncio.wait_for(resp.content.read(), timeout=grace + 2)
    body = first + rest
    assert body.endswith(b"data: [DONE]\n\n"), body[-300:]
    assert stream_text(body) == expected
    assert await gw.await_exit(timeout=grace + 2) == 0
    assert time.monotonic() - signalled < grace + 2
    events = [line["event"] for line in gw.lines()]
    assert "gateway_stopped" in events
    assert events.index("gateway_stopping") < events.index("request") < events.index("gateway_stopped")
    assert gw.requests()[0]["status"] == 200
    if fake is not None:
        assert fake.streams_finished == 1 and fake.streams_closed == 0
    assert_clean_output(gw)


async def test_sigterm_cuts_streams_at_the_end_of_the_grace_period(gateway_process: Any) -> None:
    """A stream longer than ``api.shutdown_timeout`` is cut, and the process exits 0 on time."""
    grace = 2
    config = make_config()
    config["api"]["shutdown_timeout"] = grace
    config["providers"]["mock"]["mock"] = {"chunk_count": 30, "chunk_delay": 0.25}  # about 7 s
    gw = gateway_process(config)
    await gw.await_started()
    received = b""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(f"{gw.base_url}/v1/chat/completions",
                                json=chat_body("mock-gpt", stream=True)) as resp:
            received += await resp.content.readuntil(b"\n\n")
            signalled = time.monotonic()
            gw.send(signal.SIGTERM)
            with pytest.raises(aiohttp.ClientPayloadError):  # cut, not ended cleanly
                while chunk := await resp.content.readany():
                    received += chunk
            assert await gw.await_exit(timeout=3 * grace + 5) == 0
            took = time.monotonic() - signalled
    assert b"[DONE]" not in received
    assert b'"code":"gateway_shutdown"' in received  # the mid-stream contract: the caller is told
    problems = []
    if took > grace + 1.0:
        problems.append(f"exited {took:.1f}s after SIGTERM; api.shutdown_timeout is {grace}s")
    line = gw.requests()[0]
    if line.get("error") == "client_disconnected":
        problems.append(f"the stream the gateway cut at shutdown is logged as a caller disconnect: {line}")
    assert not problems, "\n".join(problems)


async def test_sigterm_when_idle_exits_promptly(gateway_process: Any) -> None:
    config = make_config()
    config["api"]["shutdown_timeout"] = 30
    gw = gateway_process(config)
    await gw.await_started()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:  # leaves a keep-alive connection
        async with session.get(f"{gw.base_url}/health") as resp:
            assert resp.status == 200
        gw.send(signal.SIGTERM)
        assert await gw.await_exit(timeout=10) == 0, "an idle keep-alive connection held up the exit"
    assert gw.lines("gateway_stopped")


@pytest.mark.parametrize("workers", [1, 2])
async def test_port_in_use_exits_non_zero(workers: int, gateway_process: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gw = gateway_process(make_config(), "--port", str(port), "--workers", str(workers))
        code = await gw.await_exit(timeout=20)
    assert code != 0
    failed = gw.lines("gateway_failed")
    assert failed and "cannot listen" in failed[0]["error"] and str(port) in failed[0]["error"]
    assert not gw.lines("gateway_started")


# ---------------------------------------------------------------- 4. caller disconnect


async def test_caller_disconnect_closes_upstream_stream(gateway_process: Any, aiohttp_server: Any) -> None:
    fake = FakeOpenAI(reply="x" * 40, chunks=20, chunk_delay=0.2)
    server = await aiohttp_server(fake.app())
    gw = gateway_process(make_config(str(server.make_url("/v1"))))
    await gw.await_started()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        resp = await session.post(f"{gw.base_url}/v1/chat/completions",
                                  json=chat_body("gpt-4o", stream=True),
                                  headers={"X-Request-Id": "disconnect-test"})
        assert resp.status == 200
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"data: {")
        resp.close()  # drops the connection mid-stream
        await eventually(lambda: fake.streams_closed == 1, 2.0, "upstream stream closed")
    line = await gw.await_for(event_is("request", request_id="disconnect-test"), timeout=2)
    assert line["status"] == 499
    assert line.get("error") == "client_disconnected"
    assert fake.streams_finished == 0
    assert_clean_output(gw)


# ---------------------------------------------------------------- 5. hot reload


def with_model(config: dict[str, Any], name: str) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["providers"]["mock"]["models"][name] = {}
    return config


async def test_reload_in_place_write(gateway_process: Any) -> None:
    config = make_config()
    gw = gateway_process(config)
    await gw.await_started()
    inode = gw.config_path.stat().st_ino
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        assert "added-in-place" not in await models_listed(session, gw.base_url)
        with open(gw.config_path, "r+") as fh:  # same file, rewritten
            fh.truncate(0)
            fh.write(json.dumps(with_model(config, "added-in-place")))
        assert gw.config_path.stat().st_ino == inode
        await eventually_listed(session, gw.base_url, "added-in-place")
    line = await gw.await_for("config_reloaded", timeout=1)
    assert line["reason"] == "file_changed" and line["generation"] >= 1


async def test_reload_rename_over(gateway_process: Any, tmp_path: Path) -> None:
    config = make_config()
    gw = gateway_process(config)
    await gw.await_started()
    inode = gw.config_path.stat().st_ino
    new_config = with_model(config, "added-by-rename")
    # restart-only, and not overridden on the command line (--port is): reported, not applied
    new_config["monitoring"] = {"prometheus_port": free_port()}
    staged = write_config(tmp_path / "staged.json", new_config)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        os.replace(staged, gw.config_path)
        assert gw.config_path.stat().st_ino != inode
        await eventually_listed(session, gw.base_url, "added-by-rename")  # still on the old port
    line = await gw.await_for("config_reloaded", timeout=1)
    assert line["reason"] == "file_changed"
    assert line.get("needs_restart") == ["monitoring.prometheus_port"], line


async def test_reload_does_not_report_command_line_overrides_as_changes(gateway_process: Any) -> None:
    """``--host``/``--port`` override the file; a reload of an unchanged ``api`` needs no restart."""
    config = make_config(api={"host": "localhost", "port": free_port(), "shutdown_timeout": 5})
    gw = gateway_process(config, "--host", "127.0.0.1")  # and --port 0
    await gw.await_started()
    write_config(gw.config_path, with_model(config, "added-later"))  # api section untouched
    line = await gw.await_for("config_reloaded", timeout=RELOAD_WITHIN)
    assert "needs_restart" not in line, (
        f"the reload claims a restart is needed though the file's api section did not change: {line}")


async def test_invalid_reload_keeps_old_config(gateway_process: Any) -> None:
    config = make_config()
    gw = gateway_process(config)
    await gw.await_started()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        before = await models_listed(session, gw.base_url)

        gw.config_path.write_text('{"providers": ')
        failed = await gw.await_for("config_reload_failed", timeout=RELOAD_WITHIN + 1)
        assert "not valid JSON" in failed["error"], failed
        assert failed["level"] == "ERROR"

        broken = with_model(config, "never-served")
        broken["routing"]["default_model"] = "no-such-model"
        write_config(gw.config_path, broken)
        failed = await gw.await_for("config_reload_failed", timeout=RELOAD_WITHIN + 1, count=2)
        assert "$.routing.default_model" in failed["error"], failed

        assert await models_listed(session, gw.base_url) == before
        async with session.post(f"{gw.base_url}/v1/chat/completions", json=chat_body()) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["model"] == "mock-gpt"
        assert gw.proc.poll() is None
        assert not gw.lines("config_reloaded")

        write_config(gw.config_path, with_model(config, "fixed-later"))  # and it recovers
        await eventually_listed(session, gw.base_url, "fixed-later")
    assert_clean_output(gw)


async def test_sighup_reloads(gateway_process: Any) -> None:
    config = make_config()
    gw = gateway_process(config)
    await gw.await_started()
    # The file is unchanged, so only the signal can cause this reload.
    gw.send(signal.SIGHUP)
    line = await gw.await_for(event_is("config_reloaded", reason="signal"), timeout=RELOAD_WITHIN)
    assert line["generation"] == 1
    # With a change too: whichever of poller and signal gets there first, the signal reloads.
    write_config(gw.config_path, with_model(config, "added-before-hup"))
    gw.send(signal.SIGHUP)
    await gw.await_for(event_is("config_reloaded", reason="signal"), timeout=RELOAD_WITHIN, count=2)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        assert "added-before-hup" in await models_listed(session, gw.base_url)
    assert gw.proc.poll() is None, "SIGHUP killed the gateway"


async def test_stream_in_flight_survives_reload(gateway_process: Any, aiohttp_server: Any) -> None:
    fake = FakeOpenAI(reply="abcdefghijklmnopqrstuvwxyz0123", chunks=15, chunk_delay=0.1)
    server = await aiohttp_server(fake.app())
    config = make_config(str(server.make_url("/v1")))
    gw = gateway_process(config)
    await gw.await_started()
    without_upstream = copy.deepcopy(config)
    del without_upstream["providers"]["openai"]  # the reload removes the stream's provider
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.post(f"{gw.base_url}/v1/chat/completions",
                                json=chat_body("gpt-4o", stream=True)) as resp:
            assert resp.status == 200
            first = await resp.content.readuntil(b"\n\n")
            write_config(gw.config_path, without_upstream)
            await gw.await_for("config_reloaded", timeout=RELOAD_WITHIN)
            assert fake.streams_finished == 0, "the stream ended before the reload; make it slower"
            rest = await asyncio.wait_for(resp.content.read(), timeout=10)
        body = first + rest
        assert body.endswith(b"data: [DONE]\n\n"), body[-300:]
        assert stream_text(body) == fake.reply
        assert fake.streams_finished == 1
        async with session.post(f"{gw.base_url}/v1/chat/completions", json=chat_body("gpt-4o")) as resp:
            assert resp.status == 404
            assert openai_error(await resp.json())["code"] == "model_not_found"
    assert (await gw.await_for("request"))["status"] == 200


# ---------------------------------------------------------------- 6. several workers


def _server_side_owner(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the accepted socket of the connection from ``client_port``."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if local == server_port and remote == client_port:
                inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def test_workers_share_one_port(gateway_process: Any) -> None:
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc to see which worker accepted a connection")
    port = free_port()
    config = make_config(api={"host": "127.0.0.1", "port": port, "workers": 2, "shutdown_timeout": 5})
    gw = gateway_process(config, port=None)
    supervisor = gw.wait_for("supervisor_started", timeout=15)
    assert supervisor["pid"] == gw.proc.pid and supervisor["workers"] == 2
    gw.wait_for("gateway_started", timeout=30, count=2)
    started = gw.lines("gateway_started")
    worker_pids = sorted({line["pid"] for line in started})
    assert len(worker_pids) == 2 and gw.proc.pid not in worker_pids
    assert {line["port"] for line in started} == {port}

    served_by: list[int | None] = []
    for i in range(40):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection each time
        try:
            conn.request("GET", "/v1/models", headers={"X-Request-Id": f"worker-req-{i}"})
            resp = conn.getresponse()
            assert resp.status == 200
            assert any(m["id"] == "mock-gpt" for m in json.loads(resp.read())["data"])
            served_by.append(_server_side_owner(conn.sock.getsockname()[1], port, worker_pids))
        finally:
            conn.close()
        if i >= 9 and set(served_by) == set(worker_pids):
            break
    assert set(served_by) == set(worker_pids), f"requests were served by {served_by}"
    gw.wait_for("request", count=len(served_by))
    assert all(r["status"] == 200 for r in gw.requests())

    # SIGHUP to the supervisor reaches every worker
    gw.send(signal.SIGHUP)
    gw.wait_for(event_is("config_reloaded", reason="signal"), timeout=RELOAD_WITHIN, count=2)
    assert gw.proc.poll() is None

    # a worker that dies is replaced
    os.kill(worker_pids[0], signal.SIGKILL)
    died = gw.wait_for("worker_died", timeout=10)
    assert died["pid"] == worker_pids[0] and died["exitcode"] != 0
    replacement = gw.wait_for("gateway_started", timeout=30, count=3)["pid"]
    assert replacement not in worker_pids
    live_pids = [worker_pids[1], replacement]
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/health")
            assert conn.getresponse().status == 200
        finally:
            conn.close()

    gw.send(signal.SIGTERM)
    assert gw.wait_exit(timeout=15) == 0
    assert {line["pid"] for line in gw.lines("gateway_stopped")} == set(live_pids)
    assert gw.lines("supervisor_stopped")
    for pid in [*worker_pids, replacement]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert_clean_output(gw)


def test_workers_with_port_zero_share_one_free_port(gateway_process: Any) -> None:
    """``--port 0`` picks a free port: one port, shared by every worker, named in the log."""
    config = make_config()
    config["api"]["workers"] = 2
    gw = gateway_process(config)  # --port 0
    gw.wait_for("gateway_started", timeout=30, count=2)
    ports = sorted({line["port"] for line in gw.lines("gateway_started")})
    gw.send(signal.SIGTERM)
    assert gw.wait_exit(timeout=15) == 0
    assert len(ports) == 1 and ports[0] != 0, (
        f"with --port 0 and 2 workers the workers listen on different ports: {ports}")


# ---------------------------------------------------------------- 7. request log lines


async def test_request_log_lines_are_complete_and_keyless(gateway_process: Any, aiohttp_server: Any) -> None:
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app())
    gw = gateway_process(make_config(str(server.make_url("/v1")), auth=AUTH))
    await gw.await_started()
    bearer = {"Authorization": f"Bearer {CALLER_KEY}"}
    calls: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("POST", "/v1/chat/completions", {}, chat_body("gpt-4o"), 401),
        ("POST", "/v1/chat/completions", {"Authorization": f"Bearer {WRONG_KEY}"}, chat_body("gpt-4o"), 401),
        ("POST", "/v1/chat/completions", {"x-api-key": WRONG_KEY}, chat_body("gpt-4o"), 401),
        ("POST", "/v1/chat/completions", bearer, chat_body("gpt-4o"), 200),
        ("POST", "/v1/chat/completions", {"x-api-key": OTHER_CALLER_KEY}, chat_body("gpt-4o", stream=True), 200),
        ("POST", "/v1/chat/completions", bearer, chat_body("mock-gpt", stream=True), 200),
        ("POST", "/v1/embeddings", bearer, {"model": "text-embedding-3-small", "input": "hi"}, 200),
        ("POST", "/v1/chat/completions", bearer, chat_body("no-such-model"), 404),
        ("POST", "/v1/chat/completions", bearer, b"{not json", 400),
        ("POST", "/v1/chat/completions", bearer, {"messages": "wrong"}, 400),
        ("GET", "/v1/models", bearer, None, 200),
        ("GET", "/v1/nowhere", bearer, None, 404),
        ("GET", "/health", {}, None, 200),
    ]
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        for i, (method, path, headers, body, status) in enumerate(calls):
            request_id = f"log-test-{i}"
            kwargs: dict[str, Any] = {"headers": {**headers, "X-Request-Id": request_id}}
            if isinstance(body, bytes):
                kwargs["data"] = body
                kwargs["headers"]["Content-Type"] = "application/json"
            elif body is not None:
                kwargs["json"] = body
            async with session.request(method, f"{gw.base_url}{path}", **kwargs) as resp:
                raw = await resp.read()
                assert resp.status == status, (path, raw)
                assert resp.headers.get("X-Request-Id") == request_id
                if status >= 400:
                    openai_error(json.loads(raw))
    gw.send(signal.SIGTERM)  # flush everything
    assert await gw.await_exit(10) == 0
    requests = {line["request_id"]: line for line in gw.requests()}
    assert len(gw.requests()) == len(calls)
    for i, (method, path, _headers, _body, status) in enumerate(calls):
        line = requests[f"log-test-{i}"]
        assert (line["method"], line["path"], line["status"]) == (method, path, status), line
    assert requests["log-test-3"]["provider"] == "openai" and requests["log-test-3"]["caller"] == "tests"
    assert requests["log-test-4"]["caller"] == "other" and requests["log-test-4"]["stream"] is True
    assert requests["log-test-3"]["prompt_tokens"] == 11
    for received in fake.received:
        assert received.headers.get("Authorization") == f"Bearer {UPSTREAM_KEY}"
    assert_clean_output(gw)
