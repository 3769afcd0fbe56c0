"""The ledger's tables, as versioned migrations for SQLite and PostgreSQL.

One row per model request in ``usage_records``, keyed by ``record_id`` (the
gateway's own id for the request, so writing a record twice keeps one row;
``request_id``, the caller's ``X-Request-Id``, may repeat). ``time`` is Unix seconds (UTC), which
both dialects group by day and hour with the same arithmetic. Migrations are
applied in order at start; ``schema_migrations`` records which ran. Each is a
list of statements per dialect; never edit one that has shipped, add the next.
"""

from __future__ import annotations

from proxy.usage.record import FIELDS

TABLE = "usage_records"
MIGRATIONS_TABLE = "schema_migrations"

V1_FIELDS: tuple[str, ...] = (
    "record_id", "request_id", "time", "endpoint", "status", "caller", "team", "user", "agent", "task_type",
    "provider", "model", "upstream_model", "prompt_tokens", "completion_tokens", "cached_tokens",
    "cache_write_tokens", "cost_usd", "saved_usd", "latency_ms", "ttft_ms", "error", "cache", "fallback_from",
    "stream",
)
"""The columns version 1 created (fixed: later fields arrive by later migrations)."""
V2_FIELDS: tuple[str, ...] = ("saved_cache_usd", "saved_routing_usd", "saved_prompt_cache_usd", "saved_trim_usd")
"""The columns version 2 adds: what was saved, by reason."""
assert V1_FIELDS + V2_FIELDS == FIELDS, "a new record field needs a migration that adds its column"

_COLUMN_TYPES = {
    "sqlite": {
        "record_id": "TEXT PRIMARY KEY", "request_id": "TEXT NOT NULL", "time": "REAL NOT NULL", "endpoint": "TEXT NOT NULL",
        "status": "INTEGER NOT NULL", "prompt_tokens": "INTEGER NOT NULL DEFAULT 0",
        "completion_tokens": "INTEGER NOT NULL DEFAULT 0", "cached_tokens": "INTEGER NOT NULL DEFAULT 0",
        "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0", "cost_usd": "REAL",
        "saved_usd": "REAL NOT NULL DEFAULT 0", "latency_ms": "REAL NOT NULL DEFAULT 0", "ttft_ms": "REAL",
        "stream": "INTEGER NOT NULL DEFAULT 0",
    },
    "postgresql": {
        "record_id": "TEXT PRIMARY KEY", "request_id": "TEXT NOT NULL", "time": "DOUBLE PRECISION NOT NULL", "endpoint": "TEXT NOT NULL",
        "status": "INTEGER NOT NULL", "prompt_tokens": "BIGINT NOT NULL DEFAULT 0",
        "completion_tokens": "BIGINT NOT NULL DEFAULT 0", "cached_tokens": "BIGINT NOT NULL DEFAULT 0",
        "cache_write_tokens": "BIGINT NOT NULL DEFAULT 0", "cost_usd": "DOUBLE PRECISION",
        "saved_usd": "DOUBLE PRECISION NOT NULL DEFAULT 0", "latency_ms": "DOUBLE PRECISION NOT NULL DEFAULT 0",
        "ttft_ms": "DOUBLE PRECISION", "stream": "BOOLEAN NOT NULL DEFAULT FALSE",
    },
}
for _name in V2_FIELDS:
    _COLUMN_TYPES["sqlite"][_name] = "REAL NOT NULL DEFAULT 0"
    _COLUMN_TYPES["postgresql"][_name] = "DOUBLE PRECISION NOT NULL DEFAULT 0"


def _create_table(dialect: str) -> str:
    types = _COLUMN_TYPES[dialect]
    columns = ",\n  ".join(f'"{name}" {types.get(name, "TEXT")}' for name in V1_FIELDS)
    return f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {columns}\n)"


def _add_column(dialect: str, name: str) -> str:
    """``ALTER TABLE ... ADD COLUMN`` (run once, in the migrations' transaction and lock)."""
    return f'ALTER TABLE {TABLE} ADD COLUMN "{name}" {_COLUMN_TYPES[dialect][name]}'


MIGRATIONS: dict[int, dict[str, list[str]]] = {
    1: {
        dialect: [
            _create_table(dialect),
            f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_caller_time ON {TABLE} (caller, time)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_request_id ON {TABLE} (request_id)",
        ]
        for dialect in ("sqlite", "postgresql")
    },
    2: {dialect: [_add_column(dialect, name) for name in V2_FIELDS] for dialect in ("sqlite", "postgresql")},
}
"""Version -> dialect -> statements. Version 1 creates the records table and its indexes; version 2
adds what each request saved, by reason (0 for the records before it)."""
