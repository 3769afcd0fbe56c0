"""The ledger's migrations: a database made by version 1 gains the per-reason savings columns, its old rows
read as having saved nothing by reason, and an older gateway's spool still replays."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from proxy.usage.ledger import Ledger
from proxy.usage.record import UsageRecord
from proxy.usage.schema import MIGRATIONS, TABLE, V1_FIELDS, V2_FIELDS
from proxy.usage.store import MIGRATIONS_DDL
from tests.usage.test_ledger import ledger_database, pg_url, usage  # noqa: F401 - fixtures

OLD_ROW = {"record_id": "old-1", "request_id": "req-old", "time": time.time() - 3600, "endpoint": "chat",
           "status": 200, "caller": "alice", "model": "gpt", "prompt_tokens": 3, "completion_tokens": 4,
           "cost_usd": 0.25, "saved_usd": 0.5, "cache": "HIT", "stream": 0}


def new_record() -> UsageRecord:
    return UsageRecord(record_id="new-1", request_id="req-new", time=time.time(), endpoint="chat", status=200,
                       cost_usd=0.1, saved_usd=0.3, saved_routing_usd=0.2, saved_trim_usd=0.1)


def version_one_sqlite(path: Path) -> None:
    """A ledger file as a gateway before version 2 left it, with one record."""
    with sqlite3.connect(path) as conn:
        conn.execute(MIGRATIONS_DDL["sqlite"])
        for statement in MIGRATIONS[1]["sqlite"]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)")
        columns = ", ".join(f'"{name}"' for name in OLD_ROW)
        conn.execute(f"INSERT INTO {TABLE} ({columns}) VALUES ({', '.join('?' for _ in OLD_ROW)})",
                     list(OLD_ROW.values()))


def test_version_one_is_what_it_always_was() -> None:
    """A migration that has shipped never changes: version 1 creates exactly the first 25 columns."""
    (create, *_) = MIGRATIONS[1]["sqlite"]
    assert [line.strip().split('"')[1] for line in create.splitlines()[1:-1]] == list(V1_FIELDS)
    assert all(name not in create for name in V2_FIELDS)


async def test_a_version_one_sqlite_ledger_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    version_one_sqlite(tmp_path / "usage.db")
    ledger = await Ledger.open(usage("sqlite:///usage.db", tmp_path))
    ledger.record(new_record())
    assert await ledger.drain(10)
    await ledger.close()
    with sqlite3.connect(tmp_path / "usage.db") as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        rows = conn.execute(f"SELECT record_id, saved_usd, {', '.join(V2_FIELDS)} FROM {TABLE} "
                            "ORDER BY record_id").fetchall()
    assert versions == sorted(MIGRATIONS)
    assert rows == [("new-1", 0.3, 0.0, 0.2, 0.0, 0.1), ("old-1", 0.5, 0.0, 0.0, 0.0, 0.0)]


async def test_a_version_one_postgres_ledger_is_migrated_once_by_gateways_starting_together(
        pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    conn = await asyncpg.connect(pg_url)
    await conn.execute(MIGRATIONS_DDL["postgresql"])
    for statement in MIGRATIONS[1]["postgresql"]:
        await conn.execute(statement)
    await conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)")
    row = {**OLD_ROW, "stream": False}
    await conn.execute(f"INSERT INTO {TABLE} ({', '.join(row)}) VALUES "
                       f"({', '.join(f'${i}' for i in range(1, len(row) + 1))})", *row.values())
    ledgers = await asyncio.gather(*(Ledger.open(usage(pg_url, tmp_path)) for _ in range(4)))
    ledgers[0].record(new_record())
    assert await ledgers[0].drain(10)
    await asyncio.gather(*(ledger.close() for ledger in ledgers))
    versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    rows = [tuple(r) for r in await conn.fetch(
        f"SELECT record_id, saved_usd, {', '.join(V2_FIELDS)} FROM {TABLE} ORDER BY record_id")]
    await conn.close()
    assert versions == sorted(MIGRATIONS)
    assert rows == [("new-1", 0.3, 0.0, 0.2, 0.0, 0.1), ("old-1", 0.5, 0.0, 0.0, 0.0, 0.0)]


async def test_an_older_gateways_spool_replays_with_nothing_saved_by_reason(tmp_path: Path) -> None:
    spool = tmp_path / "usage.db.spool"
    spool.mkdir()
    old_line: dict[str, Any] = {**OLD_ROW, "stream": False}  # what a version-1 gateway spooled: no saved_* fields
    (spool / "usage-oldhost-1-abcdef12-1.jsonl").write_bytes(orjson.dumps(old_line) + b"\n")
    ledger = await Ledger.open(usage("sqlite:///usage.db", tmp_path))
    assert await ledger.drain(10)
    await ledger.close()
    with sqlite3.connect(tmp_path / "usage.db") as conn:
        rows = conn.execute(f"SELECT record_id, saved_usd, {', '.join(V2_FIELDS)} FROM {TABLE}").fetchall()
    assert rows == [("old-1", 0.5, 0.0, 0.0, 0.0, 0.0)]
    assert not list(spool.glob("usage-*.jsonl"))


@pytest.mark.parametrize("field", V2_FIELDS)
def test_a_record_without_the_new_fields_reads_them_as_zero(field: str) -> None:
    assert getattr(UsageRecord.from_dict({**OLD_ROW, "stream": False}), field) == 0.0
