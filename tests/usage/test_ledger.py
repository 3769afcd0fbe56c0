"""The usage ledger against a real SQLite file and real PostgreSQL servers.

PostgreSQL tests use the shared server (127.0.0.1:5432) in a database of their
own, ``ledger_tests``, one schema per test (through ``search_path`` in the
URL); the outage tests start their own server in a temp dir and stop it.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import asyncpg  # noqa: E402  (a dependency: never skipped)
import orjson
import pytest

from proxy.config.model import UsageConfig
from proxy.usage.ledger import Ledger, LedgerError
from proxy.usage.record import UsageRecord
from proxy.usage.schema import MIGRATIONS

SHARED = "postgresql://postgres@127.0.0.1:5432"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def rec(i: int | str, **fields: Any) -> UsageRecord:
    values: dict[str, Any] = dict(record_id=f"rec-{i}", request_id=f"req-{i}", time=time.time(), endpoint="/v1/chat/completions",
                                  status=200, caller="alice", model="gpt", prompt_tokens=3, completion_tokens=4,
                                  cost_usd=0.25, latency_ms=12.5, stream=True)
    values.update(fields)
    return UsageRecord(**values)


async def pg_count(url: str, distinct: bool = False) -> int:
    conn = await asyncpg.connect(url)
    try:
        what = "count(DISTINCT request_id)" if distinct else "count(*)"
        return await conn.fetchval(f"SELECT {what} FROM usage_records")
    finally:
        await conn.close()


def sqlite_rows(path: Path, sql: str = "SELECT request_id, prompt_tokens FROM usage_records") -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# --- the shared server: one schema per test ------------------------------------------


@pytest.fixture(scope="module")
def ledger_database() -> str:
    async def create() -> None:
        try:
            conn = await asyncpg.connect(f"{SHARED}/postgres", timeout=3)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not available: {exc}")
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'ledger_tests'"):
                try:
                    await conn.execute("CREATE DATABASE ledger_tests")
                except asyncpg.DuplicateDatabaseError:
                    pass
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{SHARED}/ledger_tests"


@pytest.fixture
async def pg_url(ledger_database: str) -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(ledger_database)
    await conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{ledger_database}?search_path={schema}&application_name=ledger-{schema}"
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()


def usage(database: str, config_dir: Path, **fields: Any) -> UsageConfig:
    return UsageConfig(database=database, config_dir=str(config_dir), **fields)


# --- a server of our own, to stop and start ---------------------------------------------


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self.data = self.base / "data"
        self.port = _free_port()
        subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                    "--no-sync", "--no-instructions"), check=True, capture_output=True)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                                    "-l", str(self.base / "log"), "-w", "-t", "20", "start"),
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                       check=False, capture_output=True)

    async def reset(self) -> None:
        conn = await asyncpg.connect(self.url)
        await conn.execute("DROP TABLE IF EXISTS usage_records, schema_migrations")
        await conn.close()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 binaries are not installed")
    server = OwnPostgres()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture
async def own_pg(own_postgres: OwnPostgres) -> OwnPostgres:
    status = subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(own_postgres.data), "status"),
                            capture_output=True)
    if status.returncode != 0:  # a failed test left it stopped
        own_postgres.start()
    await own_postgres.reset()
    return own_postgres


def spool_lines(folder: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for path in sorted(folder.glob("usage-*.jsonl"))
            for line in path.read_bytes().splitlines()]


# --- writing once ---------------------------------------------------------------------


async def test_sqlite_records_arrive_within_the_flush_interval_each_once(tmp_path: Path) -> None:
    ledger = await Ledger.open(usage("sqlite:///ledger/usage.db", tmp_path))
    db = tmp_path / "ledger" / "usage.db"
    assert db.exists()  # relative to config_dir
    for i in range(3):
        ledger.record(rec(i))
    await asyncio.sleep(1.5)  # no drain: the writer's own pace (at least once a second)
    assert sorted(sqlite_rows(db)) == [(f"req-{i}", 3) for i in range(3)]

    for i in range(2500):  # more than two batches, with duplicates of what is there and of each other
        ledger.record(rec(i, prompt_tokens=99 if i < 3 else 3))
    for i in range(100):
        ledger.record(rec(i, prompt_tokens=77))
    assert await ledger.drain(10)
    rows = sqlite_rows(db)
    assert len(rows) == 2500 and len({r[0] for r in rows}) == 2500
    assert dict(rows)["req-0"] == 3  # the first write of an id is the one kept
    assert ledger.stats.written == 2603 and ledger.stats.dropped == 0
    await ledger.close()


async def test_postgres_records_written_once_with_their_values(pg_url: str, tmp_path: Path) -> None:
    ledger = await Ledger.open(usage(pg_url, tmp_path))
    assert ledger.store.dialect == "postgresql"
    for i in range(3000):
        ledger.record(rec(i, cost_usd=None if i == 7 else 0.25, stream=i % 2 == 0))
    for i in range(500):
        ledger.record(rec(i, prompt_tokens=1000))
    assert await ledger.drain(10)
    conn = await asyncpg.connect(pg_url)
    row = await conn.fetchrow("SELECT * FROM usage_records WHERE request_id = 'req-7'")
    total = await conn.fetchval("SELECT count(*) FROM usage_records WHERE prompt_tokens = 1000")
    await conn.close()
    assert await pg_count(pg_url) == 3000 and total == 0
    assert row["cost_usd"] is None and row["stream"] is False and row["latency_ms"] == 12.5
    assert row["caller"] == "alice" and row["completion_tokens"] == 4
    await ledger.close()


async def test_two_gateways_write_to_one_postgres_each_record_once(pg_url: str, tmp_path: Path) -> None:
    one, two = await asyncio.gather(Ledger.open(usage(pg_url, tmp_path)), Ledger.open(usage(pg_url, tmp_path)))
    for i in range(6000):
        one.record(rec(f"a{i}"))
        two.record(rec(f"b{i}"))
        if i % 3 == 0:  # some requests recorded by both (a retried delivery)
            one.record(rec(f"both{i}"))
            two.record(rec(f"both{i}"))
        if i % 1000 == 0:
            await asyncio.sleep(0.01)
    assert all(await asyncio.gather(one.drain(15), two.drain(15)))
    assert await pg_count(pg_url) == 12000 + 2000
    await asyncio.gather(one.close(), two.close())


async def test_migrations_applied_once_when_many_gateways_start_together(pg_url: str, tmp_path: Path) -> None:
    ledgers = await asyncio.gather(*(Ledger.open(usage(pg_url, tmp_path)) for _ in range(6)))
    sqlite_ledgers = await asyncio.gather(*(Ledger.open(usage("sqlite:///shared.db", tmp_path)) for _ in range(6)))
    for n, ledger in enumerate(ledgers + sqlite_ledgers):
        for i in range(200):
            ledger.record(rec(f"{n % 6}-{i}"))  # the SQLite ledgers write the same ids as the PostgreSQL ones
    assert all(await asyncio.gather(*(ledger.drain(15) for ledger in ledgers + sqlite_ledgers)))
    conn = await asyncpg.connect(pg_url)
    versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    await conn.close()
    assert versions == sorted(MIGRATIONS)
    assert sqlite_rows(tmp_path / "shared.db", "SELECT version FROM schema_migrations") == [(v,) for v in
                                                                                          sorted(MIGRATIONS)]
    assert await pg_count(pg_url) == 1200
    assert len(sqlite_rows(tmp_path / "shared.db")) == 1200
    await asyncio.gather(*(ledger.close() for ledger in ledgers + sqlite_ledgers))


async def test_connections_killed_mid_load_lose_and_double_nothing(pg_url: str, tmp_path: Path,
                                                                    log_lines: Any) -> None:
    outages: list[bool] = []
    ledger = await Ledger.open(usage(pg_url, tmp_path), on_outage=outages.append)
    app = pg_url.rsplit("application_name=", 1)[1]
    admin = await asyncpg.connect(f"{SHARED}/ledger_tests")
    for i in range(20000):
        ledger.record(rec(i))
    killed = 0
    while ledger.pending and killed < 4:  # kill the writer's connection while it runs a batch
        written = ledger.stats.written
        found = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                     "WHERE application_name = $1 AND state = 'active'", app)
        killed += found
        if found:  # then let it reconnect and write some before the next kill
            await until(lambda: _true(ledger.stats.written > written or not ledger.pending))
        await asyncio.sleep(0.001)
    assert await ledger.drain(30)
    await admin.close()
    assert killed >= 3
    assert len(log_lines.events("usage_ledger_recovered")) >= 3
    assert await pg_count(pg_url) == 20000
    assert ledger.stats.written >= 20000 and ledger.stats.dropped == 0
    assert outages and outages[-1] is False  # recovered after each outage
    assert log_lines.events("usage_ledger_unavailable")
    assert all(line["url"] == pg_url and line["error"] for line in log_lines.events("usage_ledger_unavailable"))
    await ledger.close()


async def test_a_record_the_database_refuses_is_kept_aside_and_blocks_nothing(pg_url: str, tmp_path: Path) -> None:
    ledger = await Ledger.open(usage(pg_url, tmp_path, spool_path="spool"))
    for i in range(300):
        ledger.record(rec(i, endpoint=None) if i == 123 else rec(i))  # endpoint is NOT NULL
    assert await ledger.drain(10)
    assert await pg_count(pg_url) == 299
    assert ledger.stats.rejected == 1
    rejected = [orjson.loads(line) for path in (tmp_path / "spool").glob("rejected-*.jsonl")
                for line in path.read_bytes().splitlines()]
    assert [r["record"]["request_id"] for r in rejected] == ["req-123"]
    await ledger.close()


# --- outages: queue, spool, replay ------------------------------------------------------


async def test_server_stopped_mid_load_and_restarted_every_record_once(own_pg: OwnPostgres, tmp_path: Path,
                                                                        log_lines: Any) -> None:
    outages: list[bool] = []
    ledger = await Ledger.open(usage(own_pg.url, tmp_path, max_queued=1000), on_outage=outages.append)
    for i in range(3000):
        ledger.record(rec(i))
    await asyncio.sleep(0.05)
    own_pg.stop()
    for i in range(3000, 9000):  # past max_queued: into the spool
        ledger.record(rec(i))
        if i % 500 == 0:
            await asyncio.sleep(0.01)
    await until(lambda: _true(ledger.stats.spooled >= 4000))
    assert spool_lines(tmp_path / "usage-spool")  # the default spool folder for PostgreSQL
    assert outages == [True]
    own_pg.start()
    assert await ledger.drain(30)
    assert await pg_count(own_pg.url) == 9000
    assert ledger.stats.dropped == 0 and ledger.stats.spooled >= 4000
    assert outages == [True, False]
    assert not list((tmp_path / "usage-spool").glob("usage-*.jsonl"))  # replayed, then deleted
    assert len(log_lines.events("usage_ledger_unavailable")) == 1
    assert len(log_lines.events("usage_ledger_recovered")) == 1
    await ledger.close()


async def _true(value: bool) -> bool:
    return value


async def test_spooled_and_unflushed_records_are_written_by_the_next_start(own_pg: OwnPostgres,
                                                                            tmp_path: Path) -> None:
    config = usage(own_pg.url, tmp_path, max_queued=500, spool_path="spool")
    first = await Ledger.open(config)
    own_pg.stop()
    for i in range(3000):
        first.record(rec(i))
    await until(lambda: _true(first.stats.spooled >= 2500))  # past max_queued, on disk while the first runs
    started = time.monotonic()
    await first.close(timeout=2)  # the database is down: the 500 in memory go to the spool too
    assert time.monotonic() - started < 2.5
    lines = spool_lines(tmp_path / "spool")
    assert sorted(line["request_id"] for line in lines) == sorted(f"req-{i}" for i in range(3000))
    first.record(rec("late"))  # after close: straight to the spool
    assert len(spool_lines(tmp_path / "spool")) == 3001

    own_pg.start()
    second = await Ledger.open(config)
    assert await second.drain(20)
    assert await pg_count(own_pg.url) == 3001
    assert not list((tmp_path / "spool").glob("usage-*.jsonl"))
    await second.close()


async def test_a_running_gateways_spool_file_is_not_taken_by_another(own_pg: OwnPostgres, tmp_path: Path) -> None:
    config = usage(own_pg.url, tmp_path, max_queued=10, spool_path="spool")
    running = await Ledger.open(config)
    own_pg.stop()
    for i in range(200):
        running.record(rec(i))
    await until(lambda: _true(running.stats.spooled >= 190))
    own_pg.start()
    other = await Ledger.open(config)  # a second worker starting: the first still holds its file
    await asyncio.sleep(0.3)
    assert other.stats.written == 0
    assert await running.drain(20)
    assert await pg_count(own_pg.url) == 200
    await asyncio.gather(running.close(), other.close())


# --- opening --------------------------------------------------------------------------


async def test_a_database_that_cannot_be_opened_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/nowhere"
    with pytest.raises(LedgerError) as raised:
        await Ledger.open(usage(url, tmp_path))
    assert "hunter2" not in str(raised.value)
    assert "postgresql://postgres:***@127.0.0.1:" in str(raised.value)

    (tmp_path / "a-file").write_text("")
    with pytest.raises(LedgerError) as raised:
        await Ledger.open(usage("sqlite:///a-file/usage.db", tmp_path))
    assert "sqlite:///a-file/usage.db" in str(raised.value)


async def test_a_ledger_path_inside_the_package_goes_to_the_user_data_dir(tmp_path: Path,
                                                                          monkeypatch: Any) -> None:
    import proxy

    defaults = Path(proxy.__file__).resolve().parent / "defaults"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    ledger = await Ledger.open(usage("sqlite:///usage-ledger-test.db", defaults))
    try:
        ledger.record(rec(1))
        assert await ledger.drain(5)
        assert sqlite_rows(tmp_path / "data" / "llm-gateway" / "usage-ledger-test.db") == [("req-1", 3)]
        assert not (defaults / "usage-ledger-test.db").exists()
    finally:
        await ledger.close()


# --- pruning, and record() under every failure -----------------------------------------


async def test_retention_deletes_only_old_rows(tmp_path: Path) -> None:
    first = await Ledger.open(usage("sqlite:///usage.db", tmp_path))
    old = time.time() - 3 * 86400
    for i in range(12000):  # more than one pruning batch
        first.record(rec(f"old{i}", time=old))
    for i in range(100):
        first.record(rec(f"new{i}", time=time.time() - 86400))
    assert await first.drain(10)
    await first.close()
    assert len(sqlite_rows(tmp_path / "usage.db")) == 12100

    second = await Ledger.open(usage("sqlite:///usage.db", tmp_path, retention_days=2))
    await until(lambda: _true(len(sqlite_rows(tmp_path / "usage.db")) == 100))
    assert all(r[0].startswith("req-new") for r in sqlite_rows(tmp_path / "usage.db"))
    await second.close()


async def test_record_never_raises_when_the_queue_is_full_and_the_spool_unwritable(tmp_path: Path,
                                                                                   log_lines: Any) -> None:
    (tmp_path / "not-a-folder").write_text("")
    ledger = await Ledger.open(usage("sqlite:///usage.db", tmp_path, max_queued=10,
                                     spool_path="not-a-folder/spool"))
    blocker = sqlite3.connect(tmp_path / "usage.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the ledger's writes wait
    started = time.perf_counter()
    for i in range(100):
        assert ledger.record(rec(i)) is None
    ledger.record(None)  # type: ignore[arg-type]
    ledger.record("not a record")  # type: ignore[arg-type]
    assert time.perf_counter() - started < 0.05
    await until(lambda: _true(ledger.stats.dropped >= 90))
    assert log_lines.events("usage_spool_failed")
    blocker.execute("ROLLBACK")
    blocker.close()
    await until(lambda: _true(len(sqlite_rows(tmp_path / "usage.db")) == 10))
    assert ledger.stats.dropped == 92 and ledger.stats.queued == 10  # the two non-records too: no spool to keep them
    await ledger.close()
