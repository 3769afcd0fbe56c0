"""A gateway in front of a fake Anthropic and a fake OpenAI upstream, for the Messages API tests.

Import the ``messages_env`` fixture into a test module (``from tests.messages_env
import messages_env  # noqa: F401``). ``await messages_env.start(**sections)``
starts the gateway on :func:`messages_config` and returns its test client;
``sdk()`` and ``sync_sdk()`` give the official anthropic SDK pointed at it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest
from aiohttp.test_utils import TestClient

from proxy.app import create_app
from proxy.config import parse_config
from proxy.observability.observers import OBSERVERS
from tests.conftest import RecordingObserver, make_config
from tests.fake_anthropic import FakeAnthropic
from tests.fakes import FakeOpenAI

CALLER_KEY = "sk-gateway-dev-0001"
UPSTREAM_SECRET = "sk-ant-upstream-secret-9999"
CLAUDE = "claude-sonnet-4-6"
CLAUDE_UPSTREAM = "claude-sonnet-4-6-20260217"
CLAUDE_PRICE = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
GPT = "fast"
GPT_UPSTREAM = "gpt-4o-mini"
GPT_PRICE = {"input": 0.15, "output": 0.6}
REASONER = "reasoner"
REASONER_UPSTREAM = "o4-mini"


def messages_config(anthropic_url: str, openai_url: str, **sections: Any) -> dict[str, Any]:
    """A config with an ``anthropic`` provider (model ``claude-sonnet-4-6``), the fake OpenAI
    (``fast`` = ``gpt-4o-mini``, ``reasoner`` = ``o4-mini``, among others) and the mock, and one caller key."""
    config = make_config(openai_url)
    config["providers"]["anthropic"] = {
        "type": "anthropic", "api_key": UPSTREAM_SECRET, "base_url": anthropic_url,
        "models": {CLAUDE: {"upstream_model": CLAUDE_UPSTREAM, "pricing": CLAUDE_PRICE}},
    }
    config["providers"]["openai"]["models"][GPT]["pricing"] = GPT_PRICE
    config["providers"]["openai"]["models"][REASONER] = {"upstream_model": REASONER_UPSTREAM}
    config["auth"] = {"keys": [{"name": "dev", "key": CALLER_KEY}]}
    for name, value in sections.items():
        config[name] = copy.deepcopy(value)
    return config


@dataclass
class MessagesEnv:
    """The two fakes, their URLs, and a way to start gateways in front of them."""

    anthropic: FakeAnthropic
    openai: FakeOpenAI
    anthropic_url: str
    openai_url: str
    aiohttp_client: Any
    observer: RecordingObserver = field(default_factory=RecordingObserver)
    client: TestClient | None = None

    def config(self, **sections: Any) -> dict[str, Any]:
        """:func:`messages_config` for these fakes."""
        return messages_config(self.anthropic_url, self.openai_url, **sections)

    async def start(self, config: dict[str, Any] | None = None, **sections: Any) -> TestClient:
        """Start a gateway on ``config`` (default: :meth:`config` with ``sections``)."""
        app = create_app(parse_config(config if config is not None else self.config(**sections)))
        app[OBSERVERS].append(self.observer)
        self.client = await self.aiohttp_client(app)
        return self.client

    @property
    def base_url(self) -> str:
        assert self.client is not None
        return str(self.client.make_url("")).rstrip("/")

    def sdk(self, **options: Any) -> anthropic.AsyncAnthropic:
        """The async anthropic SDK against the gateway (no retries unless asked)."""
        options.setdefault("api_key", CALLER_KEY)
        options.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.base_url, **options)

    def sync_sdk(self, **options: Any) -> anthropic.Anthropic:
        """The sync anthropic SDK against the gateway (call it from a thread)."""
        options.setdefault("api_key", CALLER_KEY)
        options.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.base_url, **options)

    def finished(self) -> Any:
        """The context of the last finished request."""
        return self.observer.finished[-1]


@pytest.fixture
async def messages_env(aiohttp_server: Any, aiohttp_client: Any) -> MessagesEnv:
    """The fakes running, no gateway yet."""
    fake_anthropic = FakeAnthropic()
    fake_openai = FakeOpenAI()
    anthropic_server = await aiohttp_server(fake_anthropic.app())
    openai_server = await aiohttp_server(fake_openai.app())
    return MessagesEnv(fake_anthropic, fake_openai, str(anthropic_server.make_url("")).rstrip("/"),
                       str(openai_server.make_url("/v1")), aiohttp_client)
