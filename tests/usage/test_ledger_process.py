"""The usage ledger in the real ``python -m proxy`` process: every request recorded, SIGTERM loses nothing,
a ledger that cannot be opened stops the start."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import make_config
from tests.process import GatewayProcess, free_port, write_config

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_sigterm_right_after_a_burst_writes_every_record_once(gateway_process: Any, tmp_path: Path) -> None:
    config = make_config(usage={"database": "sqlite:///usage.db"})
    config["providers"]["mock"]["models"]["mock-gpt"]["pricing"] = {"input": 1, "output": 2}
    gw = gateway_process(config)
    port = await gw.await_started()
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> str:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                    json={**CHAT, "stream": i % 2 == 0}) as resp:
                await resp.read()
                return resp.headers["X-Request-Id"]
        ids = await asyncio.gather(*(one(i) for i in range(300)))
        async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "nope",
                                "messages": []}) as bad:
            failed_id = bad.headers["X-Request-Id"]
    gw.send(signal.SIGTERM)
    assert await gw.await_exit() == 0
    rows = sqlite_rows(tmp_path / "usage.db", "SELECT request_id, status, cost_usd, stream FROM usage_records")
    assert len(rows) == 301 and {r[0] for r in rows} == {*ids, failed_id}
    by_id = {r[0]: r for r in rows}
    assert by_id[failed_id][1] == 400 and by_id[failed_id][2] is None
    assert all(by_id[i][2] and by_id[i][2] > 0 for i in ids)  # streamed and plain, all priced
    assert sum(1 for i in ids if by_id[i][3]) == 150


async def test_a_ledger_that_cannot_be_opened_stops_the_start_without_the_password(gateway_process: Any) -> None:
    url = f"postgresql://ledger:hunter2secret@127.0.0.1:{free_port()}/usage"
    gw = gateway_process(make_config(usage={"database": url}))
    assert await gw.await_exit(timeout=20) != 0
    output = gw.output()
    assert "hunter2secret" not in output
    assert "127.0.0.1" in gw.stderr and "***" in gw.stderr


async def test_two_gateways_share_one_postgres_ledger_and_usage_sums_both(gateway_process: Any,
                                                                         tmp_path: Path) -> None:
    schema = f"two_gateways_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        url = f"postgresql://postgres@127.0.0.1:5432/test?search_path={schema}"
        keys = {"keys": [{"name": "ops", "key": "sk-ops-admin-000001", "admin": True},
                         {"name": "app-a", "key": "sk-app-a-000000001"},
                         {"name": "app-b", "key": "sk-app-b-000000001"}]}
        gateways = []
        for name in ("a", "b"):
            config = make_config(usage={"database": url}, auth=keys)
            config["providers"]["mock"]["models"]["mock-gpt"]["pricing"] = {"input": 1, "output": 2}
            folder = tmp_path / name
            folder.mkdir()
            path = write_config(folder / "gateway.json", config)
            gw = GatewayProcess(["--config", str(path), "--port", "0"], cwd=folder)
            gateways.append(gw)
        try:
            ports = [await gw.await_started() for gw in gateways]
            async with aiohttp.ClientSession() as session:
                async def chat(port: int, key: str) -> None:
                    async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT,
                                            headers={"Authorization": f"Bearer {key}"}) as resp:
                        assert resp.status == 200
                await asyncio.gather(*(chat(ports[0], "sk-app-a-000000001") for _ in range(30)),
                                     *(chat(ports[1], "sk-app-b-000000001") for _ in range(20)))
                for _ in range(100):  # the ledgers write at least once a second
                    if await conn.fetchval(f"SELECT count(*) FROM {schema}.usage_records") >= 50:
                        break
                    await asyncio.sleep(0.1)

                async def usage(port: int, key: str) -> dict[str, Any]:
                    async with session.get(f"http://127.0.0.1:{port}/v1/usage?group_by=caller",
                                           headers={"Authorization": f"Bearer {key}"}) as resp:
                        assert resp.status == 200
                        return await resp.json()

                everyone = await usage(ports[1], "sk-ops-admin-000001")
                own = await usage(ports[0], "sk-app-b-000000001")
            assert everyone["totals"]["requests"] == 50, everyone
            assert {row["caller"]: row["requests"] for row in everyone["data"]} == {"app-a": 30, "app-b": 20}
            assert everyone["totals"]["cost_usd"] > 0
            assert [row["caller"] for row in own["data"]] == ["app-b"] and own["totals"]["requests"] == 20
            assert await conn.fetchval(f"SELECT count(DISTINCT request_id) FROM {schema}.usage_records") == 50
        finally:
            for gw in gateways:
                gw.kill()
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_a_caller_reusing_its_request_id_has_every_request_recorded(gateway_process: Any,
                                                                        tmp_path: Path) -> None:
    gw = gateway_process(make_config(usage={"database": "sqlite:///usage.db"}))
    port = await gw.await_started()
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT,
                                    headers={"X-Request-Id": "the-same-id"}) as resp:
                assert resp.status == 200 and resp.headers["X-Request-Id"] == "the-same-id"
    gw.send(signal.SIGTERM)
    assert await gw.await_exit() == 0
    rows = sqlite_rows(tmp_path / "usage.db", "SELECT record_id FROM usage_records WHERE request_id = 'the-same-id'")
    assert len(rows) == 5 and len({r[0] for r in rows}) == 5
