"""What the ledger needs from a database, and the URL helpers both stores share.

A store writes batches of rows (tuples in :data:`~proxy.usage.record.FIELDS`
order) idempotently: a row whose ``record_id`` is already there is skipped,
so a batch retried after an error, or replayed from the spool, never doubles a
record. ``write`` raises on any trouble; ``is_data_error`` tells the rows'
own fault (a value the database refuses: the batch is split to find it) from
the database's (down, slow, locked: the batch is retried).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MIGRATIONS_DDL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)",
    "postgresql": ("CREATE TABLE IF NOT EXISTS schema_migrations "
                   "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"),
}
"""The table that says which of :data:`proxy.usage.schema.MIGRATIONS` ran."""


class LedgerError(Exception):
    """The usage database cannot be opened (at start); the message names it without its password."""


class Store(Protocol):
    """One database the ledger writes to."""

    dialect: str  # "sqlite" or "postgresql"
    url: str  # redacted: safe to log

    async def open(self) -> None:
        """Connect and apply the migrations (raises on failure)."""

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert ``rows`` in one transaction, skipping known request ids; the number inserted."""

    async def prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` records older than ``before`` (Unix seconds); the number deleted."""

    def is_data_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the rows' fault rather than the database's."""

    async def close(self, timeout: float = 5.0) -> None:
        """Release the connection(s)."""


def redacted_url(url: str) -> str:
    """``url`` with any password (in the authority or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database URL>"
    netloc = parts.netloc
    changed = False
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{hostinfo}"
            changed = True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in ("password", "passfile") for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in ("password", "passfile") else v) for k, v in pairs],
                              safe="*/")
            changed = True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def password_of(url: str) -> str | None:
    """The password in ``url`` if any (to scrub it from error messages)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return parts.password
        for key, value in parse_qsl(parts.query):
            if key.lower() == "password" and value:
                return value
    except ValueError:
        return None
    return None


def scrub(text: str, url: str) -> str:
    """``text`` with ``url``'s password (if any) replaced by ``***``."""
    secret = password_of(url)
    return text.replace(secret, "***") if secret else text
