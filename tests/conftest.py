"""Shared fixtures: a fake OpenAI upstream and a gateway built on a config dict."""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import orjson
import pytest
from aiohttp.test_utils import TestClient

from proxy.app import create_app
from proxy.config import parse_config
from proxy.observability import logs
from tests.fakes import FakeOpenAI
from tests.own_redis import own_redis  # noqa: F401 - a fixture, for every test module
from tests.process import GatewayProcess, write_config

GatewayFactory = Callable[..., Awaitable[TestClient]]


class RecordingObserver:
    """A request observer that keeps every finished request's context."""

    def __init__(self) -> None:
        self.finished: list[Any] = []
        self.reloads: list[bool] = []

    def request_started(self, ctx: Any) -> None:
        pass

    def request_finished(self, ctx: Any) -> None:
        self.finished.append(ctx)

    def config_reloaded(self, config: Any, ok: bool) -> None:
        self.reloads.append(ok)

BASE_CONFIG: dict[str, Any] = {
    "api": {"host": "127.0.0.1", "port": 0, "timeout": 5, "shutdown_timeout": 5},
    "providers": {
        "mock": {
            "type": "mock",
            "mock": {"chunk_count": 4},
            "models": {"mock-gpt": {"max_tokens": 1000}, "mock-embed": {}},
        }
    },
    "routing": {"default_provider": "mock", "default_model": "mock-gpt"},
}


def make_config(upstream_url: str | None = None, **sections: Any) -> dict[str, Any]:
    """A config dict: the mock provider, plus an ``openai`` provider at ``upstream_url``."""
    config = copy.deepcopy(BASE_CONFIG)
    if upstream_url is not None:
        config["providers"]["openai"] = {
            "type": "openai",
            "api_key": "sk-upstream-secret",
            "base_url": upstream_url,
            "models": {
                "gpt-4o": {"max_tokens": 4096, "temperature": 0.3},
                "fast": {"upstream_model": "gpt-4o-mini"},
                "text-embedding-3-small": {},
            },
        }
    for name, value in sections.items():
        config[name] = value
    return config


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of a whole SSE body, in order."""
    return [block[len("data: "):] for block in text.split("\n\n") if block.startswith("data: ")]


class LogCapture:
    """The gateway's JSON log lines, captured in memory (written by the log thread)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        """Every complete line written so far, parsed."""
        text = self.buffer.getvalue()
        return [orjson.loads(line) for line in text.splitlines()[: text.count("\n")]]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines whose ``event`` is ``name``."""
        return [line for line in self.lines() if line["event"] == name]

    async def wait_for(self, name: str, timeout: float = 2.0) -> list[dict[str, Any]]:
        """The lines of event ``name``, waiting up to ``timeout`` s for the writer to write one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (found := self.events(name)) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return found

    def flushed(self) -> list[dict[str, Any]]:
        """Wait for the writer to write everything queued, then every line."""
        logs.stop_logging()
        return self.lines()


_LOG_SINK: list[Any] = []


@pytest.fixture(autouse=True, scope="session")
def private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ledgers of the packaged default config go to a temporary data home, not the user's."""
    path = tmp_path_factory.mktemp("data-home")
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


@pytest.fixture(autouse=True, scope="session")
def quiet_logs() -> Iterator[None]:
    """In-process gateways log to nowhere unless a test captures the lines (``log_lines``)."""
    with open(os.devnull, "w") as sink:
        _LOG_SINK.append(sink)
        logs.setup_logging("INFO", stream=sink)
        yield
        logs.stop_logging()
    for name in logs.BRIDGED_LOGGERS:
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


@pytest.fixture
def log_lines() -> Iterator[LogCapture]:
    """Capture the gateway's log lines for the test."""
    capture = LogCapture()
    logs.setup_logging("INFO", stream=capture.buffer)
    yield capture
    logs.setup_logging("INFO", stream=_LOG_SINK[0])


@pytest.fixture
async def fake_openai(aiohttp_server: Any) -> tuple[FakeOpenAI, str]:
    """A running fake OpenAI upstream and its base URL (``.../v1``)."""
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("/v1"))


@pytest.fixture
def gateway(aiohttp_client: Any) -> GatewayFactory:
    """Start the gateway in-process on a config dict; returns a test client for it."""

    async def start(config: dict[str, Any], **app_options: Any) -> TestClient:
        app = create_app(parse_config(config), **app_options)
        return await aiohttp_client(app)

    return start


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Any]:
    """Start ``python -m proxy`` on a config dict; every process is killed in teardown.

    ``start(config, *args)`` writes ``config`` to ``tmp_path/gateway.json``,
    passes ``--config`` and ``--port 0`` (unless ``port`` says otherwise) and
    returns the :class:`GatewayProcess` without waiting for it.
    """
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any] | None, *args: str, port: str | None = "0",
              env: dict[str, str] | None = None, cwd: Path | None = None,
              command: list[str] | None = None) -> GatewayProcess:
        argv: list[str] = []
        path = None
        if config is not None:
            path = write_config(tmp_path / "gateway.json", config)
            argv += ["--config", str(path)]
        if port is not None and "--port" not in args:
            argv += ["--port", port]
        argv += args
        gw = GatewayProcess(argv, env=env, cwd=cwd or tmp_path, command=command)
        gw.config_path = path
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.kill()
