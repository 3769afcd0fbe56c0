"""The answers to "who spent what": usage summed over a time window, grouped by whatever the caller asks.

:class:`UsageQuery` is what a caller may ask (``start``, ``end``, ``group_by``),
checked and bounded; :func:`summary_sql` turns one into parameterised SQL for
SQLite or PostgreSQL (values are always parameters; group columns come only
from :data:`GROUP_FIELDS`); :class:`UsageReader` runs it against the ledger's
``usage_records`` table with its own connections (``sqlite3`` in a thread,
``asyncpg`` for PostgreSQL) and shapes the answer ``GET /v1/usage`` and
``llm-gateway usage --json`` return. The reader never writes: a database or
table the writer has not created yet reads as no usage at all.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, Sequence

from aiohttp import web

from proxy.errors import ErrorCode, GatewayError
from proxy.usage.ledger import resolve_paths
from proxy.usage.schema import TABLE

if TYPE_CHECKING:
    from proxy.config.model import UsageConfig

GROUP_FIELDS: tuple[str, ...] = ("caller", "team", "user", "agent", "task_type", "provider", "model",
                                 "day", "hour")
"""What ``group_by`` may name: seven record columns and two UTC time buckets (``day``, ``hour``)."""
PARAMETERS: tuple[str, ...] = ("start", "end", "group_by")
DEFAULT_WINDOW = 24 * 3600.0
MAX_WINDOW_DAYS = 400
MAX_WINDOW = MAX_WINDOW_DAYS * 86400.0
MAX_ROWS = 10_000
"""Rows of ``data`` at most (the most expensive first); ``truncated`` says when more matched."""
_SPACED_OFFSET = re.compile(r"^(.*T[0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)$")
MONEY_DIGITS = 9  # sums of USD are rounded to a billionth of a dollar

_BUCKET_SECONDS = {"day": 86400, "hour": 3600}
_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens")
SAVED_FIELDS: tuple[str, ...] = ("saved_cache_usd", "saved_routing_usd", "saved_prompt_cache_usd", "saved_trim_usd")
"""``saved_usd`` by reason (the ledger's columns of the same names)."""
METRICS: tuple[str, ...] = ("requests", *_TOKEN_FIELDS, "cost_usd", "unpriced_requests", "saved_usd", "errors",
                            *SAVED_FIELDS)
"""The sums every row and the totals carry, in order."""
_COUNT_METRICS = frozenset(METRICS) - {"cost_usd", "saved_usd", *SAVED_FIELDS}


# ------------------------------------------------------------------ the question


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """One question: records with ``start <= time < end`` (Unix seconds, UTC), summed per ``group_by``."""

    start: float
    end: float
    group_by: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, str], now: float) -> "UsageQuery":
        """The query a caller's parameters ask for; a :class:`GatewayError` (400) naming what is wrong.

        ``start`` and ``end`` are ISO 8601 times (naive ones are UTC; ``Z`` is
        accepted); by default the window is the 24 hours before ``now``.
        ``group_by`` is a comma-separated list of :data:`GROUP_FIELDS`.
        """
        getall = getattr(params, "getall", None)  # a MultiDict (the query string) may repeat a name
        for name in params:
            if name not in PARAMETERS:
                raise _bad(name[:100], f"Unknown parameter '{name[:100]}'. /v1/usage takes start, end and group_by.")
            if getall is not None and len(getall(name)) > 1:
                raise _bad(name, f"Send '{name}' once.")
        end = parse_time(params["end"], "end") if "end" in params else float(math.floor(now) + 1)  # through the current second
        start = parse_time(params["start"], "start") if "start" in params else end - DEFAULT_WINDOW
        if end <= start:
            raise _bad("end", f"'end' ({format_time(end)}) must be after 'start' ({format_time(start)}).")
        if end - start > MAX_WINDOW:
            raise _bad("start", f"The window from 'start' to 'end' is at most {MAX_WINDOW_DAYS} days; "
                                "ask for a shorter one.")
        return cls(start, end, parse_group_by(params.get("group_by", "")))


def _bad(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, code=ErrorCode.INVALID_REQUEST, param=param)


def parse_time(text: str, param: str) -> float:
    """An ISO 8601 time (``2025-05-01``, ``2025-05-01T12:00``, ``...Z``, ``...+02:00``) as Unix seconds."""
    value = text.strip()
    if value[-1:] == "z":
        value = value[:-1] + "Z"
    # an unescaped "+02:00" in a query string arrives as " 02:00"
    value = _SPACED_OFFSET.sub(r"\1+\2", value)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise _bad(param, f"'{param}' must be an ISO 8601 time such as 2025-05-01T00:00:00Z "
                          f"(no timezone means UTC); got {text[:100]!r}.") from None


def format_time(seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC with ``Z``; microseconds only when there are any."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def parse_group_by(text: str) -> tuple[str, ...]:
    """``"agent,model"`` as ``("agent", "model")``; empty means no grouping (the totals only)."""
    if not text.strip():
        return ()
    names = tuple(part.strip() for part in text.split(","))
    for name in names:
        if name not in GROUP_FIELDS:
            shown = f"'{name[:100]}'" if name else "an empty name"
            raise _bad("group_by", f"'group_by' has {shown}; it is a comma-separated list of "
                                   f"{', '.join(GROUP_FIELDS)}.")
    if len(set(names)) != len(names):
        raise _bad("group_by", "'group_by' names a field twice; name each at most once.")
    return names


# ------------------------------------------------------------------ the SQL


def _group_expression(name: str, dialect: str) -> str:
    seconds = _BUCKET_SECONDS.get(name)
    if seconds is None:
        return f'"{name}"'  # only ever a name from GROUP_FIELDS
    if dialect == "postgresql":
        return f'floor("time" / {seconds})::bigint'
    return f'CAST("time" / {seconds} AS INTEGER)'  # times are positive: truncation is floor


def _order_expression(name: str, dialect: str) -> str:
    expr = _group_expression(name, dialect)
    if name in _BUCKET_SECONDS:
        return expr
    collated = f'{expr} COLLATE "C"' if dialect == "postgresql" else expr  # byte order in both
    return f"({expr} IS NULL), {collated}"  # nulls last in both


_AGGREGATES = (
    ("requests", "COUNT(*)"),
    ("prompt_tokens", "COALESCE(SUM(prompt_tokens), 0)"),
    ("completion_tokens", "COALESCE(SUM(completion_tokens), 0)"),
    ("cached_tokens", "COALESCE(SUM(cached_tokens), 0)"),
    ("cost_usd", "COALESCE(SUM(cost_usd), 0)"),
    ("unpriced_requests", "SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)"),
    ("saved_usd", "COALESCE(SUM(saved_usd), 0)"),
    ("errors", "SUM(CASE WHEN status >= 400 OR error IS NOT NULL THEN 1 ELSE 0 END)"),
    *((name, f'COALESCE(SUM("{name}"), 0)') for name in SAVED_FIELDS),
)
assert tuple(name for name, _ in _AGGREGATES) == METRICS


@dataclass(frozen=True, slots=True)
class SummarySQL:
    """The two statements of a summary and their parameters (``rows`` also takes the row limit)."""

    rows: str
    rows_params: tuple[Any, ...]
    totals: str
    totals_params: tuple[Any, ...]


def summary_sql(query: UsageQuery, dialect: str, caller: str | None, limit: int = MAX_ROWS) -> SummarySQL:
    """Parameterised SQL for ``query`` in ``dialect`` (``sqlite`` or ``postgresql``).

    The rows statement selects ``g0, g1, ...`` (one per group field) then
    :data:`METRICS`, most expensive first, at most ``limit + 1`` rows (so the
    caller can tell when it cut); ``caller`` keeps only that caller's records.
    """
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown dialect {dialect!r}")
    params: list[Any] = [query.start, query.end]
    where = '"time" >= {} AND "time" < {}'
    if caller is not None:
        params.append(caller)
        where += " AND caller = {}"
    marks = [("?" if dialect == "sqlite" else f"${i}") for i in range(1, len(params) + 2)]
    where = where.format(*marks[: len(params)])
    aggregates = ", ".join(f"{expr} AS {name}" for name, expr in _AGGREGATES)
    totals = f"SELECT {aggregates} FROM {TABLE} WHERE {where}"
    groups = [_group_expression(name, dialect) for name in query.group_by]
    select = ", ".join([*(f"{expr} AS g{i}" for i, expr in enumerate(groups)), aggregates])
    rows = f"SELECT {select} FROM {TABLE} WHERE {where}"
    if groups:
        rows += " GROUP BY " + ", ".join(groups)
    order = ["COALESCE(SUM(cost_usd), 0) DESC", *(_order_expression(n, dialect) for n in query.group_by)]
    rows += f" ORDER BY {', '.join(order)} LIMIT {marks[len(params)]}"
    return SummarySQL(rows, (*params, limit + 1), totals, tuple(params))


# ------------------------------------------------------------------ shaping the answer


def _metrics(values: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(METRICS, values):
        if name in _COUNT_METRICS:
            out[name] = int(value or 0)
        else:
            out[name] = round(float(value or 0), MONEY_DIGITS)
    return out


def _group_value(name: str, value: Any) -> Any:
    seconds = _BUCKET_SECONDS.get(name)
    if seconds is None or value is None:
        return value
    moment = datetime.fromtimestamp(int(value) * seconds, timezone.utc)
    return moment.strftime("%Y-%m-%d") if name == "day" else moment.strftime("%Y-%m-%dT%H:00:00Z")


def shape_summary(query: UsageQuery, rows: Sequence[Sequence[Any]], totals: Sequence[Any] | None,
                  limit: int = MAX_ROWS) -> dict[str, Any]:
    """The answer document from the statements' raw rows (``totals`` is None when there is no table)."""
    width = len(query.group_by)
    data = []
    for row in rows[:limit]:
        item = {name: _group_value(name, row[i]) for i, name in enumerate(query.group_by)}
        item.update(_metrics(row[width:]))
        if item["requests"]:  # without group_by, an aggregate over nothing is still one row
            data.append(item)
    return {
        "object": "list",
        "data": data,
        "totals": _metrics(totals if totals is not None else [0] * len(METRICS)),
        "start": format_time(query.start),
        "end": format_time(query.end),
        "group_by": list(query.group_by),
        "truncated": len(rows) > limit,
    }


# ------------------------------------------------------------------ the reader


class UsageReader:
    """Reads the ledger's database; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, dialect: str, *, path: str | None = None, pool: Any = None,
                 limit: int = MAX_ROWS) -> None:
        self.dialect = dialect
        self.path = path
        self.pool = pool
        self.limit = limit

    @classmethod
    async def open(cls, usage: "UsageConfig", *, limit: int = MAX_ROWS) -> "UsageReader":
        """A reader for ``usage.database``; no connection is made until the first question."""
        database = usage.database
        if database.startswith("sqlite:///"):
            # The file the ledger writes: the same resolution, the package's own folder avoided.
            _, path, _ = resolve_paths(usage)
            return cls("sqlite", path=path, limit=limit)
        if database.startswith(("postgresql://", "postgres://")):
            import asyncpg

            pool = await asyncpg.create_pool(database, min_size=0, max_size=4, command_timeout=60)
            return cls("postgresql", pool=pool, limit=limit)
        raise ValueError("usage.database must start with sqlite:/// or postgresql://")

    async def summary(self, query: UsageQuery, caller: str | None) -> dict[str, Any]:
        """The answer to ``query``: everyone's records (``caller=None``) or only ``caller``'s.

        Raises :class:`GatewayError` 503 (``usage_unavailable``) when the
        database cannot be read; a missing database or table is no usage.
        """
        sql = summary_sql(query, self.dialect, caller, self.limit)
        try:
            if self.dialect == "sqlite":
                rows, totals = await asyncio.to_thread(self._read_sqlite, sql)
            else:
                rows, totals = await self._read_postgresql(sql)
        except (OSError, sqlite3.Error) as exc:
            raise _unavailable(exc) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("asyncpg"):
                raise _unavailable(exc) from exc
            raise
        return shape_summary(query, rows, totals, self.limit)

    def _read_sqlite(self, sql: SummarySQL) -> tuple[list[Any], Any]:
        assert self.path is not None
        if not os.path.exists(self.path):
            return [], None
        uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (TABLE,)).fetchone()
            if found is None:
                return [], None
            conn.execute("BEGIN")  # one snapshot for both statements
            rows = conn.execute(sql.rows, sql.rows_params).fetchall()
            totals = conn.execute(sql.totals, sql.totals_params).fetchone()
            conn.rollback()
            return rows, totals

    async def _read_postgresql(self, sql: SummarySQL) -> tuple[list[Any], Any]:
        async with self.pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", TABLE) is not True:
                    return [], None
                rows = await conn.fetch(sql.rows, *sql.rows_params)
                totals = await conn.fetchrow(sql.totals, *sql.totals_params)
        return [tuple(row) for row in rows], tuple(totals)

    async def close(self) -> None:
        """Close the PostgreSQL pool (SQLite connections last one question each)."""
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


def _unavailable(exc: BaseException) -> GatewayError:
    # The exception's type only: its text could carry the database URL (and its password).
    return GatewayError(503, f"The usage ledger's database cannot be read right now ({type(exc).__name__}).",
                        code=ErrorCode.USAGE_UNAVAILABLE)


USAGE_READER = web.AppKey("usage_reader", UsageReader)
"""The app's reader of the ledger; absent when the config has no ``usage`` section."""


def usage_reader_context(usage: "UsageConfig | None") -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: opens the reader on start-up (when ``usage`` is set), closes it on clean-up."""

    async def reader_context(app: web.Application) -> AsyncIterator[None]:
        if usage is None:
            yield
            return
        reader = await UsageReader.open(usage)
        app[USAGE_READER] = reader
        try:
            yield
        finally:
            await reader.close()

    return reader_context
