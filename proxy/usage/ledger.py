"""The usage ledger: every record written to the database once, off the request path, nothing lost.

``record()`` (on the request path) appends to an in-memory deque and returns;
a background task writes what gathered in batches of up to
:data:`BATCH_SIZE`, at least every :data:`FLUSH_INTERVAL` seconds while any
are pending, one transaction and one multi-row insert a batch. The insert
skips request ids already stored, so a batch retried after an error (the
connection killed mid-commit, a server restart) or replayed from the spool
never doubles a record.

While the database is slow or gone, records wait in memory up to
``usage.max_queued``; the ones past that are appended to a spool file (JSON
lines of ``UsageRecord.as_dict()``, fsync'd a batch at a time) in
``usage.spool_path``. A failed batch is retried with backoff (0.5 s doubling
to 5 s). The outage is logged once (``usage_ledger_unavailable``) and its end
once (``usage_ledger_recovered``); then the spool is replayed into the
database and its files deleted. Spool files are named per process and held
under an exclusive ``flock`` while written, so another process (a worker
starting while this one still spools) replays only files nobody holds: those
of stopped or crashed processes. ``close()`` flushes what it can in its time
and spools the rest, to be written by the next start. Only a record that even
the spool cannot take (a full disk, an unwritable folder) is dropped, and
counted. A record the database refuses as such (a value it cannot store) is
kept in a ``rejected-*.jsonl`` file beside the spool, logged and counted, and
never blocks the rest.

Records older than ``usage.retention_days`` are deleted in the background at
start and every hour, :data:`PRUNE_BATCH` rows a statement.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import operator
import os
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Iterable
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from proxy.config.model import UsageConfig
from proxy.observability.logs import error_summary, log_event
from proxy.usage.record import FIELDS, UsageRecord
from proxy.usage.store import LedgerError, Store, redacted_url, scrub

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: spool files are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = ["Ledger", "LedgerError", "LedgerStats", "Spool", "redacted_url", "resolve_paths"]

BATCH_SIZE = 1000
FLUSH_INTERVAL = 1.0
SPOOL_INTERVAL = 0.1
"""Seconds between writes of the overflow to the spool file (a local append, kept prompt)."""
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
SPOOL_BACKLOG = 50_000  # records on their way to the spool file, at most (or max_queued if larger)
PRUNE_BATCH = 5000
PRUNE_INTERVAL = 3600.0
SPOOL_PREFIX = "usage-"
REJECTED_PREFIX = "rejected-"
DATA_DIR_NAME = "llm-gateway"

_row = operator.attrgetter(*FIELDS)


class LedgerStats:
    """Counters since start, plain ints (for ``llm_gateway_usage_records_total{result}``).

    ``queued``: records taken into memory by ``record()``; ``spooled``: records
    appended to a spool file; ``written``: records the database has (replayed
    ones included; a duplicate the database already had counts too);
    ``dropped``: records lost because even the spool could not take them;
    ``rejected``: records the database refused, kept in a ``rejected-*`` file.
    """

    __slots__ = ("queued", "spooled", "written", "dropped", "rejected")

    def __init__(self) -> None:
        self.queued = 0
        self.spooled = 0
        self.written = 0
        self.dropped = 0
        self.rejected = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"LedgerStats({self.as_dict()})"


# --- where things go ------------------------------------------------------------


def _package_dir() -> Path:
    import proxy

    return Path(proxy.__file__).resolve().parent


def data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/llm-gateway`` (``~/.local/share/llm-gateway``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / DATA_DIR_NAME


def _outside_package(path: Path) -> Path:
    """``path``, or the same name in :func:`data_dir` when it would be inside the installed ``proxy`` package."""
    resolved = path.resolve()
    if resolved.is_relative_to(_package_dir()):
        return data_dir() / resolved.name
    return resolved


def resolve_paths(usage: UsageConfig) -> tuple[str, str, Path]:
    """``(dialect, target, spool_dir)``: target is the SQLite file's path or the PostgreSQL DSN.

    ``sqlite:///relative.db`` is relative to ``usage.config_dir``;
    ``sqlite:////absolute.db`` is absolute. A SQLite file or spool folder that
    would land inside the installed package (the embedded default config's
    folder) goes to :func:`data_dir` instead. The spool defaults to
    ``<database file>.spool/`` for SQLite and ``<config_dir>/usage-spool/`` for
    PostgreSQL; a relative ``spool_path`` is relative to ``config_dir``.
    """
    url = usage.database
    scheme = url.split(":", 1)[0].lower()
    config_dir = Path(usage.config_dir or os.getcwd())
    if scheme == "sqlite":
        if not url.lower().startswith("sqlite:///"):
            raise LedgerError(f"usage ledger: {redacted_url(url)}: write sqlite:///relative.db or "
                              f"sqlite:////absolute/path.db")
        raw = urlsplit(url).path[1:] if "?" in url else url[len("sqlite:///"):]
        if not raw or raw == ":memory:":
            raise LedgerError(f"usage ledger: {redacted_url(url)}: the ledger needs a database file")
        path = Path(raw)
        if not path.is_absolute():
            path = config_dir / path
        target = _outside_package(path)
        default_spool = target.with_name(target.name + ".spool")
        dialect = "sqlite"
        target_str = str(target)
    elif scheme in ("postgresql", "postgres"):
        dialect = "postgresql"
        target_str = url
        default_spool = _outside_package(config_dir / "usage-spool")
    else:
        raise LedgerError(f"usage ledger: {redacted_url(url)}: the database URL must start with "
                          f"sqlite:///, postgresql:// or postgres://")
    if usage.spool_path:
        spool = Path(usage.spool_path)
        spool = _outside_package(spool if spool.is_absolute() else config_dir / spool)
    else:
        spool = default_spool
    return dialect, target_str, spool


def _build_store(dialect: str, target: str, url: str) -> Store:
    if dialect == "sqlite":
        from proxy.usage.sqlite_store import SQLiteStore

        return SQLiteStore(target, url)
    from proxy.usage.postgres_store import PostgresStore

    return PostgresStore(target, url)


# --- the spool ------------------------------------------------------------------


def _line(rec: Any) -> bytes:
    doc = dict(zip(FIELDS, _row(rec)))
    try:
        return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, an odd value: still one line
        return json.dumps(doc, default=str).encode("ascii") + b"\n"


class Spool:
    """A folder of JSON-lines files; this process appends to its own, held under ``flock``.

    Thread-safe: the writer appends from a worker thread, ``close()`` and a
    late ``record()`` from the loop.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._lock = threading.Lock()

    def append(self, records: Iterable[Any]) -> int:
        """Append ``records`` and fsync; the number written (not a record: skipped).

        Raises ``OSError`` (then none of them is in the file).
        """
        lines = []
        for rec in records:
            try:
                lines.append(_line(rec))
            except Exception:
                continue
        data = b"".join(lines)
        if not data:
            return 0
        with self._lock:
            if self._file is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._seq += 1
                path = self.folder / f"{SPOOL_PREFIX}{self._name}-{self._seq}.jsonl"
                handle = open(path, "ab")
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                self._file, self._path = handle, path
            handle = self._file
            start = handle.tell()
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                try:  # leave no half line behind
                    handle.truncate(start)
                    handle.seek(start)
                except OSError:
                    self._close_file()
                raise
        return len(lines)

    def reject(self, doc: dict[str, Any], error: str) -> None:
        """Keep a record the database refused (never replayed: look at it, fix, re-import)."""
        line = orjson.dumps({"error": error, "record": doc}, default=str, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / f"{REJECTED_PREFIX}{self._name}.jsonl", "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def rotate(self) -> None:
        """Close this process's current file, so it can be replayed; later records start a new one."""
        with self._lock:
            self._close_file()

    def _close_file(self) -> None:
        handle, self._file, self._path = self._file, None, None
        if handle is not None:
            try:
                handle.close()  # releases the flock
            except OSError:
                pass

    def files(self) -> list[Path]:
        """The spool files there are (this process's open one excluded), oldest first."""
        try:
            names = sorted(self.folder.glob(f"{SPOOL_PREFIX}*.jsonl"), key=_mtime)
        except OSError:
            return []
        with self._lock:
            return [p for p in names if p != self._path]

    @staticmethod
    def claim(path: Path) -> IO[bytes] | None:
        """``path`` opened and locked for replay, or ``None`` if gone or held by a live process."""
        try:
            handle = open(path, "rb")
        except OSError:
            return None
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(handle.fileno()).st_ino != os.stat(path).st_ino:
                raise OSError("replaced")  # replayed and deleted by another process meanwhile
        except OSError:
            handle.close()
            return None
        return handle

    @staticmethod
    def read(handle: IO[bytes], limit: int) -> tuple[list[UsageRecord], int, bool]:
        """Up to ``limit`` records from ``handle``: ``(records, unreadable lines, at end)``."""
        records: list[UsageRecord] = []
        bad = 0
        while len(records) < limit:
            line = handle.readline()
            if not line:
                return records, bad, True
            if not line.strip():
                continue
            try:
                records.append(UsageRecord.from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, TypeError, KeyError):
                bad += 1  # a line torn by a crash mid-write
        return records, bad, False

    def close(self) -> None:
        self.rotate()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- the ledger -----------------------------------------------------------------


class Ledger:
    """Writes usage records to the database in the background; see the module's docstring."""

    def __init__(self, store: Store, spool: Spool, usage: UsageConfig, *,
                 batch_size: int = BATCH_SIZE, flush_interval: float = FLUSH_INTERVAL,
                 on_outage: Callable[[bool], None] | None = None) -> None:
        self.store = store
        self.spool = spool
        self.url = store.url
        self.stats = LedgerStats()
        self.on_outage = on_outage
        self._max_queued = max(1, int(usage.max_queued))
        self._retention = float(usage.retention_days or 0)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue: collections.deque[Any] = collections.deque()
        self._overflow: collections.deque[Any] = collections.deque()
        self._inflight: list[Any] | None = None
        self._max_overflow = max(self._max_queued, SPOOL_BACKLOG)
        self._wake = asyncio.Event()
        self._spool_wake = asyncio.Event()
        self._accepting = True
        self._closing = False
        self._down = False
        self._down_since = 0.0
        self._spool_failing = False
        self._spool_pending = True  # files of an earlier run, maybe
        self._replay_after = 0.0
        self._replay_delay = BACKOFF_FIRST / 2
        self._replaying = False
        self._next_prune = 0.0 if self._retention > 0 else float("inf")
        self._next_rescan = time.monotonic() + PRUNE_INTERVAL
        self._writer: asyncio.Task[None] | None = None
        self._spooler: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, usage: UsageConfig, *, on_outage: Callable[[bool], None] | None = None,
                   batch_size: int = BATCH_SIZE, flush_interval: float = FLUSH_INTERVAL) -> "Ledger":
        """Open (create, migrate) the database and start writing; spool files of earlier runs are replayed.

        Raises :class:`LedgerError` (naming the URL without its password) when
        the database cannot be reached or opened.
        """
        url = redacted_url(usage.database)
        dialect, target, spool_dir = resolve_paths(usage)
        store = _build_store(dialect, target, url)
        try:
            await store.open()
        except Exception as exc:
            await store.close(1.0)
            where = url if dialect == "postgresql" else f"{url} ({target})"
            raise LedgerError(f"usage ledger: cannot open {where}: {scrub(error_summary(exc), usage.database)}") \
                from None
        ledger = cls(store, Spool(spool_dir), usage, batch_size=batch_size, flush_interval=flush_interval,
                     on_outage=on_outage)
        ledger._start()
        log_event("usage_ledger_opened", url=url, dialect=dialect, spool=str(spool_dir))
        return ledger

    def _start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="usage-ledger-writer")
        self._spooler = asyncio.create_task(self._spool_loop(), name="usage-ledger-spooler")

    @property
    def pending(self) -> int:
        """Records in memory, not yet in the database nor the spool."""
        return len(self._queue) + len(self._overflow) + len(self._inflight or ())

    @property
    def available(self) -> bool:
        """False while the database is failing."""
        return not self._down

    # --- the request path ---------------------------------------------------------

    def record(self, rec: UsageRecord) -> None:
        """Take ``rec`` for writing: an append to a deque, never blocking, never raising."""
        try:
            if self._accepting:
                queue = self._queue
                if len(queue) < self._max_queued:
                    queue.append(rec)
                    self.stats.queued += 1
                    if len(queue) == self._batch_size:
                        self._wake.set()
                    return
                overflow = self._overflow
                if len(overflow) < self._max_overflow:
                    overflow.append(rec)  # to the spool, from the spooler task
                    if len(overflow) == self._batch_size:
                        self._spool_wake.set()
                    return
                self._drop(1, "the spool falls behind")
                return
            self._spool_now([rec])  # after close(): straight to disk (and the file let go at once)
            self.spool.rotate()
        except Exception:
            try:
                self.stats.dropped += 1
            except Exception:
                pass

    def _spool_now(self, records: list[Any]) -> None:
        try:
            count = self.spool.append(records)
            self.stats.spooled += count
            self.stats.dropped += len(records) - count
            self._spool_ok()
        except OSError as exc:
            self._drop(len(records), error_summary(exc))

    def _drop(self, count: int, why: str) -> None:
        self.stats.dropped += count
        if not self._spool_failing:
            self._spool_failing = True
            log_event("usage_spool_failed", logging.ERROR, spool=str(self.spool.folder), error=why,
                      note="usage records are being lost until the spool can be written")

    def _spool_ok(self) -> None:
        if self._spool_failing:
            self._spool_failing = False
            log_event("usage_spool_recovered", spool=str(self.spool.folder))

    # --- the spooler: overflow to disk ------------------------------------------------

    async def _spool_loop(self) -> None:
        while not self._closing:
            self._spool_wake.clear()
            try:
                await asyncio.wait_for(self._spool_wake.wait(), SPOOL_INTERVAL)
            except asyncio.TimeoutError:
                pass
            try:
                await self._spool_overflow()
            except Exception as exc:  # never let the spooler die
                log_event("usage_ledger_error", logging.ERROR, error=error_summary(exc))

    async def _spool_overflow(self) -> None:
        overflow = self._overflow
        if not overflow:
            return
        records = [overflow.popleft() for _ in range(len(overflow))]
        try:
            count = await asyncio.to_thread(self.spool.append, records)
        except OSError as exc:
            self._drop(len(records), error_summary(exc))
            return
        self.stats.spooled += count
        self.stats.dropped += len(records) - count
        self._spool_pending = True
        self._spool_ok()

    # --- the writer ---------------------------------------------------------------

    async def _write_loop(self) -> None:
        while not self._closing:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the writer die
                log_event("usage_ledger_error", logging.ERROR, error=error_summary(exc))
                await asyncio.sleep(BACKOFF_FIRST)

    async def _step(self) -> None:
        queue = self._queue
        if len(queue) < self._batch_size and not self._closing:
            self._wake.clear()
            if not queue and self._spool_pending and time.monotonic() >= self._replay_after:
                if not await self._replay():  # the database failed again: wait before the next try
                    self._replay_delay = min(self._replay_delay * 2, BACKOFF_MAX)
                    self._replay_after = time.monotonic() + self._replay_delay
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            except asyncio.TimeoutError:
                pass
        if queue:
            count = min(len(queue), self._batch_size)
            await self._write([queue.popleft() for _ in range(count)])
        now = time.monotonic()
        if now >= self._next_prune and not self._down and len(queue) < self._batch_size:
            await self._prune_step()
        if now >= self._next_rescan:
            self._next_rescan = now + PRUNE_INTERVAL
            self._spool_pending = True  # files a crashed sibling left

    async def _write(self, batch: list[Any], retry: bool = True, live: bool = True) -> bool:
        """Write ``batch`` (retrying with backoff while the database fails); False if given up.

        A live batch (from the queue) is ``_inflight`` meanwhile, for ``close()``
        to spool if it is cut short; a replayed one is still in its spool file.
        """
        try:
            rows = _rows(batch)
        except Exception:
            batch = self._keep_convertible(batch)
            rows = _rows(batch)
        if live:
            self._inflight = batch
        delay = BACKOFF_FIRST
        cancelled = False
        try:
            while rows:
                try:
                    await self.store.write(rows)
                except asyncio.CancelledError:
                    cancelled = True  # close(): the batch stays _inflight, to be spooled
                    raise
                except Exception as exc:
                    if self.store.is_data_error(exc):
                        await self._bisect(batch, rows)
                        self._recovered()
                        return True
                    self._failed(exc)
                    if not retry or self._closing:
                        return False
                    try:
                        await asyncio.sleep(delay * random.uniform(0.8, 1.0))
                    except asyncio.CancelledError:
                        cancelled = True
                        raise
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                self.stats.written += len(batch)
                self._recovered()
                break
            return True
        finally:
            if live and not cancelled:
                self._inflight = None

    def _keep_convertible(self, batch: list[Any]) -> list[Any]:
        kept = []
        for rec in batch:
            try:
                _row(rec)
            except Exception as exc:
                self._reject(rec, exc)
            else:
                kept.append(rec)
        return kept

    async def _bisect(self, batch: list[Any], rows: list[tuple[Any, ...]]) -> None:
        """Write ``batch`` in halves until the records the database refuses are alone; keep those aside."""
        if len(batch) == 1:
            try:
                await self.store.write(rows)
            except Exception as exc:
                if not self.store.is_data_error(exc):
                    raise
                self._reject(batch[0], exc)
                return
            self.stats.written += 1
            return
        middle = len(batch) // 2
        for part, part_rows in ((batch[:middle], rows[:middle]), (batch[middle:], rows[middle:])):
            try:
                await self.store.write(part_rows)
            except Exception as exc:
                if not self.store.is_data_error(exc):
                    raise
                await self._bisect(part, part_rows)
            else:
                self.stats.written += len(part)

    def _reject(self, rec: Any, exc: BaseException) -> None:
        try:
            doc = dict(zip(FIELDS, _row(rec)))
        except Exception:
            doc = {"repr": repr(rec)[:2000]}
        error = error_summary(exc)
        try:
            self.spool.reject(doc, error)
            self.stats.rejected += 1
        except OSError:
            self.stats.dropped += 1
        log_event("usage_record_rejected", logging.ERROR, request_id=doc.get("request_id"), error=error,
                  kept_in=str(self.spool.folder))

    def _failed(self, exc: BaseException) -> None:
        if self._down:
            return
        self._down = True
        self._down_since = time.monotonic()
        log_event("usage_ledger_unavailable", logging.WARNING, url=self.url, dialect=self.store.dialect,
                  error=error_summary(exc), spool=str(self.spool.folder),
                  note=f"records wait in memory (up to {self._max_queued}), then in the spool; "
                       f"retrying until the database answers")
        self._notify(True)

    def _recovered(self) -> None:
        if not self._down:
            return
        self._down = False
        log_event("usage_ledger_recovered", url=self.url, dialect=self.store.dialect,
                  down_seconds=round(time.monotonic() - self._down_since, 3), pending=self.pending)
        self._spool_pending = True
        self._replay_after = 0.0
        self._replay_delay = BACKOFF_FIRST / 2
        self._notify(False)

    def _notify(self, down: bool) -> None:
        if self.on_outage is not None:
            try:
                self.on_outage(down)
            except Exception:
                pass

    # --- replay -------------------------------------------------------------------

    async def _replay(self) -> bool:
        """Write every spool file nobody holds, deleting each once all of it is in the database.

        False if the database failed meanwhile (the file stays, for the next try).
        """
        self._spool_pending = False
        self._replaying = True
        try:
            return await self._replay_files()
        finally:
            self._replaying = False

    async def _replay_files(self) -> bool:
        await asyncio.to_thread(self.spool.rotate)
        for path in await asyncio.to_thread(self.spool.files):
            if self._closing:
                self._spool_pending = True
                return True
            handle = await asyncio.to_thread(Spool.claim, path)
            if handle is None:
                continue
            done = False
            try:
                done = await self._replay_file(path, handle)
            finally:
                if not done:
                    handle.close()
            if not done:
                self._spool_pending = True
                return False
        return True

    async def _replay_file(self, path: Path, handle: IO[bytes]) -> bool:
        total = bad = 0
        while True:
            records, unreadable, at_end = await asyncio.to_thread(Spool.read, handle, self._batch_size)
            bad += unreadable
            if records:
                if not await self._write(records, retry=False, live=False):
                    return False
                total += len(records)
            if len(self._queue) >= self._batch_size:  # live records first
                count = min(len(self._queue), self._batch_size)
                if not await self._write([self._queue.popleft() for _ in range(count)], retry=False):
                    return False
            if at_end:
                break
        await asyncio.to_thread(_unlink_and_close, path, handle)
        log_event("usage_spool_replayed", file=path.name, records=total, unreadable_lines=bad)
        return True

    # --- pruning ------------------------------------------------------------------

    async def _prune_step(self) -> None:
        before = time.time() - self._retention * 86400
        try:
            deleted = await self.store.prune(before, PRUNE_BATCH)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_event("usage_prune_failed", logging.WARNING, error=error_summary(exc))
            self._next_prune = time.monotonic() + 60
            return
        self._next_prune = time.monotonic() + (0 if deleted >= PRUNE_BATCH else PRUNE_INTERVAL)

    # --- draining and closing -------------------------------------------------------

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far (and the spool) is in the database; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (not self._queue and not self._overflow and self._inflight is None
                    and not self._spool_pending and not self._replaying and not self._down):
                return True
            self._wake.set()
            await asyncio.sleep(0.01)
        return False

    async def close(self, timeout: float = 5.0) -> None:
        """Write what can be written within ``timeout`` seconds, spool the rest, close the connection."""
        if not self._accepting:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        reserve = min(0.5, timeout * 0.2)  # for the spool and the connection
        self._spool_pending = False  # no replays now: the next start does them
        flush_until = deadline - reserve
        while time.monotonic() < flush_until and (self._queue or self._inflight is not None):
            if self._down:
                break  # the database is failing: spool now, the next start writes them
            self._wake.set()
            await asyncio.sleep(0.005)
        self._accepting = False
        self._closing = True
        if self._writer is not None:
            self._writer.cancel()
        tasks = [task for task in (self._writer, self._spooler) if task is not None]
        if tasks:  # the spooler finishes its append and stops
            await asyncio.wait(tasks)
        rest = list(self._inflight or ()) + list(self._queue) + list(self._overflow)
        self._inflight = None
        self._queue.clear()
        self._overflow.clear()
        if rest:
            try:
                count = await asyncio.to_thread(self.spool.append, rest)
                self.stats.spooled += count
                self.stats.dropped += len(rest) - count
            except OSError as exc:
                self._drop(len(rest), error_summary(exc))
            log_event("usage_ledger_spooled_at_close", records=len(rest), spool=str(self.spool.folder))
        await asyncio.to_thread(self.spool.close)
        await self.store.close(max(0.1, deadline - time.monotonic()))


def _rows(batch: list[Any]) -> list[tuple[Any, ...]]:
    return [_row(rec) for rec in batch]


def _unlink_and_close(path: Path, handle: IO[bytes]) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    finally:
        handle.close()


LEDGER = web.AppKey("usage_ledger", Ledger)
"""The application's ledger, when the config has a ``usage`` section."""
