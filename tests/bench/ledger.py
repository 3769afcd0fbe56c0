"""Records/s the usage ledger sustains into SQLite and into PostgreSQL.

Run: ``python -m tests.bench.ledger [--records N] [--postgres URL]``. Records
are built first; the clock runs from the first ``record()`` until the
database has every one (``drain``), so the figure is the writer's sustained
rate, batching included. Also prints what one ``record()`` call costs (the
request path's share). PostgreSQL: a scratch schema in the ``test`` database
of the local server unless ``--postgres`` names another (the schema is dropped
afterwards). Target: at least 20,000 records/s each.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid

from proxy.config.model import UsageConfig
from proxy.usage.ledger import Ledger
from proxy.usage.record import UsageRecord

TARGET = 20_000


def make_records(n: int) -> list[UsageRecord]:
    now = time.time()
    run = uuid.uuid4().hex[:8]
    return [UsageRecord(record_id=f"{run}-{i:08d}", request_id=f"{run}-{i:08d}", time=now + i * 1e-4, endpoint="/v1/chat/completions",
                        status=200, caller="bench", team="perf", provider="openai", model="gpt-4o-mini",
                        upstream_model="gpt-4o-mini-2024-07-18", prompt_tokens=120 + i % 50,
                        completion_tokens=40, cached_tokens=0, cost_usd=0.000042, latency_ms=312.5,
                        ttft_ms=80.0, stream=bool(i % 2)) for i in range(n)]


async def measure(database: str, config_dir: str, records: list[UsageRecord]) -> tuple[float, float]:
    """(records/s into the database, µs per record() call)."""
    ledger = await Ledger.open(UsageConfig(database=database, config_dir=config_dir,
                                           max_queued=len(records) + 1))
    try:
        started = time.perf_counter()
        for rec in records:
            ledger.record(rec)
        handed = time.perf_counter()
        if not await ledger.drain(300):
            raise SystemExit(f"{database}: not drained in 300 s ({ledger.stats})")
        done = time.perf_counter()
        assert ledger.stats.written == len(records) and ledger.stats.spooled == 0, ledger.stats
        return len(records) / (done - started), (handed - started) / len(records) * 1e6
    finally:
        await ledger.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--postgres", default=None, help="a postgresql:// URL (default: a scratch schema locally)")
    args = parser.parse_args()
    records = make_records(args.records)
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = await measure("sqlite:///bench.db", folder, records)
        if args.postgres:
            results["postgresql"] = await measure(args.postgres, folder, make_records(args.records))
        else:
            import asyncpg

            schema = f"ledger_bench_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
            await admin.execute(f"CREATE SCHEMA {schema}")
            try:
                results["postgresql"] = await measure(
                    f"postgresql://postgres@127.0.0.1:5432/test?search_path={schema}", folder,
                    make_records(args.records))
            finally:
                await admin.execute(f"DROP SCHEMA {schema} CASCADE")
                await admin.close()
    print(f"{'store':<12} {'records':>9} {'records/s':>11} {'record() µs':>12}  target {TARGET:,}/s")
    for store, (rate, cost) in results.items():
        verdict = "ok" if rate >= TARGET else "BELOW TARGET"
        print(f"{store:<12} {args.records:>9,} {rate:>11,.0f} {cost:>12.2f}  {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
