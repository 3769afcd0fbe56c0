"""Ledger tables filled by hand, for the readers' tests: a real SQLite file or a real PostgreSQL schema.

The tables are created from ``proxy/usage/schema.py``'s migrations and rows
are inserted directly, so the reader is tested against the schema the writer
uses without depending on the writer. PostgreSQL is the server at
127.0.0.1:5432 (user ``postgres``, trust auth); each test gets its own schema
in the database ``usage_query_tests`` (selected with ``search_path`` in the
URL), dropped afterwards.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import defaultdict
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Sequence

import pytest

from proxy.app import create_app
from proxy.config import parse_config
from proxy.config.model import UsageConfig
from proxy.usage.query import METRICS, SAVED_FIELDS, usage_reader_context
from proxy.usage.record import FIELDS, UsageRecord
from proxy.usage.schema import MIGRATIONS, TABLE
from proxy.usage.store import MIGRATIONS_DDL

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = "usage_query_tests"


def ts(text: str) -> float:
    """An ISO time (naive is UTC) as Unix seconds."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def record(when: str, **fields: Any) -> UsageRecord:
    """A record at ``when`` with defaults for what a test does not care about."""
    fields.setdefault("request_id", uuid.uuid4().hex)
    fields.setdefault("record_id", uuid.uuid4().hex)
    fields.setdefault("endpoint", "chat")
    fields.setdefault("status", 200)
    return UsageRecord(time=ts(when), **fields)


def _values(rec: UsageRecord, dialect: str) -> list[Any]:
    doc = rec.as_dict()
    if dialect == "sqlite":
        doc["stream"] = int(doc["stream"])
    return [doc[name] for name in FIELDS]


class Ledger:
    """One ledger database a test fills: ``insert`` rows, ``usage`` for the config, ``database`` its URL."""

    def __init__(self, dialect: str, database: str, usage: UsageConfig) -> None:
        self.dialect = dialect
        self.database = database
        self.usage = usage
        self.records: list[UsageRecord] = []

    async def create(self) -> None:
        """Run the migrations and record them as run (the writer's job in production)."""
        mark = "INSERT INTO schema_migrations (version, applied_at) VALUES " + (
            "(?, 0)" if self.dialect == "sqlite" else "($1, 0)")
        await self._run([(MIGRATIONS_DDL[self.dialect], [])]
                        + [(statement, []) for version in sorted(MIGRATIONS)
                           for statement in MIGRATIONS[version][self.dialect]]
                        + [(mark, [version]) for version in sorted(MIGRATIONS)])

    async def insert(self, records: Iterable[UsageRecord]) -> None:
        records = list(records)
        self.records += records
        columns = ", ".join(f'"{name}"' for name in FIELDS)
        if self.dialect == "sqlite":
            marks = ", ".join("?" for _ in FIELDS)
        else:
            marks = ", ".join(f"${i}" for i in range(1, len(FIELDS) + 1))
        sql = f"INSERT INTO {TABLE} ({columns}) VALUES ({marks})"
        await self._run([(sql, _values(rec, self.dialect)) for rec in records])

    async def _run(self, statements: Sequence[tuple[str, list[Any]]]) -> None:
        if self.dialect == "sqlite":
            path = self.database[len("sqlite:///"):]
            path = path if path.startswith("/") else str(Path(self.usage.config_dir) / path)
            with closing(sqlite3.connect(path)) as conn:
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.commit()
            return
        import asyncpg

        conn = await asyncpg.connect(self.database)
        try:
            for sql, params in statements:
                await conn.execute(sql, *params)
        finally:
            await conn.close()


def sqlite_ledger(tmp_path: Path, name: str = "usage.db") -> Ledger:
    """A ledger in ``tmp_path/name``, named relatively (``sqlite:///name``) against ``tmp_path``."""
    database = f"sqlite:///{name}"
    return Ledger("sqlite", database, UsageConfig(database=database, config_dir=str(tmp_path)))


async def postgres_ledger() -> tuple[Ledger, Any]:
    """A ledger in a fresh schema of ``usage_query_tests``, and the coroutine function that drops it."""
    import asyncpg

    admin = await asyncpg.connect(f"{PG_SERVER}/test")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE):
            try:
                await admin.execute(f"CREATE DATABASE {PG_DATABASE}")
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await admin.close()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(f"{PG_SERVER}/{PG_DATABASE}")
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/{PG_DATABASE}")
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()

    database = f"{PG_SERVER}/{PG_DATABASE}?search_path={schema}"
    return Ledger("postgresql", database, UsageConfig(database=database, config_dir="/")), drop


# ------------------------------------------------------------------ fixtures (import them into a test module)
# A test module imports ``ledger_fixture`` and ``usage_gateway_fixture`` to have ``ledger`` and ``usage_gateway``.


@pytest.fixture(name="ledger", params=["sqlite", "postgresql"])
async def ledger_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    """An empty ledger table in SQLite or PostgreSQL."""
    if request.param == "sqlite":
        found = sqlite_ledger(tmp_path)
        await found.create()
        yield found
        return
    found, drop = await postgres_ledger()
    await found.create()
    try:
        yield found
    finally:
        await drop()


def database_url(ledger: Ledger) -> str:
    """The ledger's URL as a config given as a dict (no file, so no folder to be relative to) names it."""
    if ledger.dialect == "sqlite":
        return "sqlite:///" + str(Path(ledger.usage.config_dir) / ledger.database[len("sqlite:///"):])
    return ledger.database


@pytest.fixture(name="usage_gateway")
def usage_gateway_fixture(aiohttp_client: Any) -> Any:
    """The gateway on a config dict, with the usage reader opened as app.py opens it."""

    async def start(config: dict[str, Any]) -> Any:
        parsed = parse_config(config)
        app = create_app(parsed)
        app.cleanup_ctx.append(usage_reader_context(parsed.usage))
        return await aiohttp_client(app)

    return start


# ------------------------------------------------------------------ the expected answer, computed plainly


def bucket(name: str, when: float) -> str:
    moment = datetime.fromtimestamp(when, timezone.utc)
    return moment.strftime("%Y-%m-%d") if name == "day" else moment.strftime("%Y-%m-%dT%H:00:00Z")


def expected(records: Iterable[UsageRecord], start: float, end: float, group_by: Sequence[str],
             caller: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (as a list sorted by group values) and totals a summary should give, by plain Python."""
    def zero() -> dict[str, Any]:
        return {name: 0 for name in METRICS}

    def add(sums: dict[str, Any], rec: UsageRecord) -> None:
        sums["requests"] += 1
        sums["prompt_tokens"] += rec.prompt_tokens
        sums["completion_tokens"] += rec.completion_tokens
        sums["cached_tokens"] += rec.cached_tokens
        sums["cost_usd"] += rec.cost_usd or 0
        sums["unpriced_requests"] += rec.cost_usd is None
        sums["saved_usd"] += rec.saved_usd
        sums["errors"] += rec.status >= 400 or rec.error is not None
        for name in SAVED_FIELDS:
            sums[name] += getattr(rec, name)

    groups: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(zero)
    totals = zero()
    for rec in records:
        if not (start <= rec.time < end) or (caller is not None and rec.caller != caller):
            continue
        key = tuple(bucket(name, rec.time) if name in ("day", "hour") else getattr(rec, name)
                    for name in group_by)
        add(groups[key], rec)
        add(totals, rec)
    rows = [{**dict(zip(group_by, key)), **sums} for key, sums in groups.items()]
    if not group_by and not totals["requests"]:
        rows = []
    return sorted(rows, key=lambda row: group_key(row, group_by)), totals


def group_key(row: dict[str, Any], group_by: Sequence[str]) -> tuple[Any, ...]:
    return tuple((row[name] is None, row[name] or "") for name in group_by)


def close_enough(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Equal, money compared to a billionth of a dollar."""
    if got.keys() != want.keys():
        return False
    for name, value in want.items():
        if name.endswith("_usd"):
            if abs(got[name] - value) > 1e-8:
                return False
        elif got[name] != value:
            return False
    return True
