"""The ledger in PostgreSQL, through one asyncpg connection.

A batch is one statement: ``INSERT ... SELECT * FROM unnest($1::text[], ...)
ON CONFLICT (record_id) DO NOTHING``, one array per column, so a thousand
rows cost one round trip and a retried batch inserts nothing twice. The
migrations run in a transaction holding ``pg_advisory_xact_lock``: gateways
starting together apply each one once, the others wait and find it done.
A connection that fails (killed, timed out, the server restarting) is
dropped and a new one opened on the next attempt. asyncpg is imported only
by a gateway configured for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit

from proxy.usage.record import FIELDS
from proxy.usage.schema import MIGRATIONS, TABLE
from proxy.usage.store import MIGRATIONS_DDL

CONNECT_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 15.0
APPLICATION_NAME = "llm-gateway usage ledger"
MIGRATION_LOCK_KEY = 0x6C6C6D67_75736167  # "llmgusag": one key per database, for the migrations only
_COLUMNS = ", ".join(f'"{name}"' for name in FIELDS)
_PRUNE = (f"DELETE FROM {TABLE} WHERE record_id IN "
          f"(SELECT record_id FROM {TABLE} WHERE time < $1 LIMIT $2)")
_COLUMN_TYPES = ("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                 "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped")


class PostgresStore:
    """``usage_records`` in a PostgreSQL database (``postgresql://`` or ``postgres://``)."""

    dialect = "postgresql"

    def __init__(self, dsn: str, url: str) -> None:
        self._dsn = dsn
        self.url = url
        self._conn: Any = None
        self._insert: str | None = None
        query = dict(parse_qsl(urlsplit(dsn).query))
        self._server_settings = {} if "application_name" in query else {"application_name": APPLICATION_NAME}

    async def open(self) -> None:
        """Connect and apply the migrations under the advisory lock."""
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                await conn.execute(MIGRATIONS_DDL["postgresql"])
                done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
                for version in sorted(MIGRATIONS):
                    if version in done:
                        continue
                    for statement in MIGRATIONS[version]["postgresql"]:
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                                       version, time.time())
            await self._prepare(conn)
        except BaseException:
            self._drop()
            raise

    async def _connect(self) -> Any:
        import asyncpg

        self._drop()
        self._conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT, command_timeout=STATEMENT_TIMEOUT,
                                           server_settings=self._server_settings or None)
        return self._conn

    async def _prepare(self, conn: Any) -> None:
        """The insert statement, with each column's array type read from the table itself."""
        types = {name: kind for name, kind in await conn.fetch(_COLUMN_TYPES, TABLE)}
        arrays = ", ".join(f"${i}::{types[name]}[]" for i, name in enumerate(FIELDS, 1))
        self._insert = (f"INSERT INTO {TABLE} ({_COLUMNS}) SELECT * FROM unnest({arrays}) "
                        f"ON CONFLICT (record_id) DO NOTHING")

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> int:
        try:
            conn = self._conn
            if conn is None or conn.is_closed():
                conn = await self._connect()
                await self._prepare(conn)
            assert self._insert is not None
            status = await conn.execute(self._insert, *zip(*rows), timeout=STATEMENT_TIMEOUT)
            return int(status.rsplit(" ", 1)[-1])
        except BaseException as exc:
            if not self.is_data_error(exc):
                self._drop()
            raise

    async def prune(self, before: float, limit: int) -> int:
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = await self._connect()
            await self._prepare(conn)
        status = await conn.execute(_PRUNE, before, limit, timeout=STATEMENT_TIMEOUT)
        return int(status.rsplit(" ", 1)[-1])

    def is_data_error(self, exc: BaseException) -> bool:
        import asyncpg

        return isinstance(exc, (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
                                TypeError, ValueError, ArithmeticError))

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self, timeout: float = 5.0) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout)
        except BaseException:
            conn.terminate()
