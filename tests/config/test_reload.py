"""Hot reload: in-place writes, rename-over, invalid files, requests in flight."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from proxy.config import load_config
from proxy.config.reload import WATCHER
from proxy.state import STATE
from tests.conftest import make_config

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


async def _model_ids(client) -> list[str]:
    return [m["id"] for m in (await (await client.get("/v1/models")).json())["data"]]


async def _wait_for(predicate, seconds: float = 2.0) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(make_config()))
    return path


@pytest.fixture
def start(aiohttp_client):
    from proxy.app import create_app

    async def run(path: Path):
        app = create_app(load_config(path), config_path=str(path), watch_interval=0.05)
        return await aiohttp_client(app)

    return run


def _with_model(name: str) -> dict:
    config = make_config()
    config["providers"]["mock"]["models"][name] = {}
    return config


async def test_in_place_write_takes_effect(start, config_file: Path) -> None:
    client = await start(config_file)
    assert "mock-new" not in await _model_ids(client)
    with open(config_file, "w") as fh:  # same inode, rewritten
        fh.write(json.dumps(_with_model("mock-new")))
    assert await _wait_for(lambda: _has_model(client, "mock-new"))


async def test_rename_over_takes_effect(start, config_file: Path, tmp_path: Path) -> None:
    client = await start(config_file)
    staged = tmp_path / "staged.json"
    staged.write_text(json.dumps(_with_model("mock-renamed")))
    os.replace(staged, config_file)
    assert await _wait_for(lambda: _has_model(client, "mock-renamed"))


async def _has_model(client, name: str) -> bool:
    return name in await _model_ids(client)


async def test_invalid_file_is_refused_and_the_old_config_stays(start, config_file: Path, log_lines) -> None:
    client = await start(config_file)
    bad = make_config()
    bad["routing"]["default_model"] = "ghost"
    config_file.write_text(json.dumps(bad))

    async def refused() -> bool:
        return bool(log_lines.events("config_reload_failed"))

    assert await _wait_for(refused)
    record = log_lines.events("config_reload_failed")[0]
    assert "$.routing.default_model" in record["error"]
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    # A later valid write is picked up again.
    config_file.write_text(json.dumps(_with_model("mock-after")))
    assert await _wait_for(lambda: _has_model(client, "mock-after"))


async def test_signal_path_reloads_without_a_file_change(start, config_file: Path, log_lines) -> None:
    client = await start(config_file)
    holder = client.app[STATE]
    before = holder.current.generation
    client.app[WATCHER].request_reload()

    async def reloaded() -> bool:
        return holder.current.generation == before + 1

    assert await _wait_for(reloaded)
    log_lines.flushed()
    record = log_lines.events("config_reloaded")[0]
    assert record["reason"] == "signal"


async def test_stream_in_flight_survives_a_reload_that_removes_its_model(start, config_file: Path) -> None:
    config = make_config()
    config["providers"]["mock"]["mock"] = {"chunk_count": 10, "chunk_delay": 0.05}
    config["providers"]["mock"]["models"]["mock-old"] = {}
    config_file.write_text(json.dumps(config))
    client = await start(config_file)
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "mock-old", "stream": True})
    assert resp.status == 200
    config_file.write_text(json.dumps(make_config()))  # mock-old is gone
    assert await _wait_for(lambda: _lacks_model(client, "mock-old"))
    text = await resp.text()
    assert text.endswith("data: [DONE]\n\n")
    gone = await client.post("/v1/chat/completions", json={**CHAT, "model": "mock-old"})
    assert gone.status == 404


async def _lacks_model(client, name: str) -> bool:
    return name not in await _model_ids(client)


async def test_reload_refuses_to_drop_all_keys_on_a_public_bind(aiohttp_client, tmp_path: Path, log_lines):
    from proxy.app import create_app

    path = tmp_path / "gw.json"
    path.write_text(json.dumps(make_config(auth={"keys": [{"name": "a", "key": "sk-gw-a"}]})))
    app = create_app(load_config(path), config_path=str(path), bind_host="0.0.0.0", watch_interval=0.05)
    client = await aiohttp_client(app)
    path.write_text(json.dumps(make_config()))

    async def refused() -> bool:
        return bool(log_lines.events("config_reload_failed"))

    assert await _wait_for(refused)
    assert (await client.get("/v1/models")).status == 401
