"""Benchmark the legacy-archive import: validation alone and the whole import (validation + load).

uv run python scripts/bench_import.py [--rows 100000] [--seed 2026] [--batch-size 2000] [--keep]

Generates the demo archive into a temporary CSV (not timed), creates a fresh, migrated database
(``customer_bench_import``) on the local PostgreSQL (scripts/infra.sh start), validates the file without
a database, imports it (the archive is empty: an initial load), imports it again (nothing new: the re-run
path), then imports it into a second fresh database incrementally (``initial_load=False``: the path of
any import into a non-empty archive), and prints plain lines. The databases are dropped at the end unless
--keep. The target is 10,000 rows/s for the whole import.

CPU per row: the Python figure is the importing process (an initial load: with polars' threads) plus,
on the incremental path, its validating child process; the PostgreSQL figure is the CPU of the import's
two database backends (from /proc). The last line is the initial load's speed as a multiple of the
incremental path's, both measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from customer.domain.demo import generate_rows, write_csv
from customer.service_layer.importer import import_archive, validate_archive
from customer.settings import Settings
from utilis_shared import devstack
from utilis_shared.db import create_engine
from utilis_shared.migrations import run_migrations
from utilis_shared.pii import PiiCipher

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "services" / "customer" / "migrations"
DATABASE = "customer_bench_import"
TARGET_ROWS_PER_SECOND = 10_000


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _database(name: str) -> tuple[Settings, Any]:
    await devstack.create_database(name, drop_first=True)
    url = devstack.database_url(name)
    await asyncio.to_thread(run_migrations, MIGRATIONS, url)
    settings = Settings(environment="development", database_url=url, kafka_topic_prefix="bench.")
    return settings, create_engine(settings, pool_size=2, max_overflow=0)


async def _measured_import(
    label: str, engine: Any, settings: Settings, cipher: PiiCipher, csv_path: Path, **options: Any
) -> Any:
    """One import, with the CPU it cost: this process, its validating child, the two database backends."""
    # Open both pool connections now, so that the import's database backends can be found (CPU time).
    async with engine.connect() as a, engine.connect() as b:
        pids = [(await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in (a, b)]
    pg_before = [_cpu_seconds(p) for p in pids]
    cpu_before, child_before = time.process_time(), _children_cpu()
    summary = await import_archive(engine, settings, cipher, csv_path, **options)
    loader_cpu, child_cpu = time.process_time() - cpu_before, _children_cpu() - child_before
    pg_after = [_cpu_seconds(p) for p in pids]
    mode = "initial load" if summary.initial_load else "incremental"
    print(f"{label:<18}{summary.rows_read} rows in {summary.elapsed_seconds:.2f} s = "
          f"{summary.rows_per_second:,.0f} rows/s ({mode}; target {TARGET_ROWS_PER_SECOND:,})")  # fmt: skip
    if None not in pg_before and None not in pg_after:
        pg_cpu = sum(pg_after) - sum(pg_before)  # type: ignore[arg-type]
        per_row = 1e6 / max(summary.rows_read, 1)
        python = f"python {(loader_cpu + child_cpu) * per_row:.0f} us"
        if child_cpu:  # the incremental path validates in a child process
            python += f" (loader {loader_cpu * per_row:.0f} + validating process {child_cpu * per_row:.0f})"
        else:  # the initial load: one process, polars' threads included
            python += " (one process, polars' threads included)"
        print(f"  cpu per row:    {python}, postgresql {pg_cpu * per_row:.0f} us "
              f"({os.cpu_count()} cores)")  # fmt: skip
    return summary


async def bench(args: argparse.Namespace, csv_path: Path) -> None:
    settings, engine = await _database(DATABASE)
    cipher = PiiCipher.from_settings(settings)
    options = {
        "actor": "bench",
        "reject_report_path": csv_path.with_suffix(".rejects.csv"),
        "batch_size": args.batch_size,
        "progress": False,
    }
    try:
        validated = validate_archive(csv_path)
        print(f"validation alone: {validated.rows_read} rows in {validated.elapsed_seconds:.2f} s = "
              f"{validated.rows_per_second:,.0f} rows/s")  # fmt: skip

        summary = await _measured_import("whole import:", engine, settings, cipher, csv_path, **options)
        print(f"loaded:           {summary.customers_created} customers, "
              f"{summary.accounts_created} accounts, "
              f"{summary.events_written} outbox events, {summary.rows_rejected} rejected, "
              f"{summary.duplicates_flagged} duplicate flags")  # fmt: skip

        again = await import_archive(engine, settings, cipher, csv_path, **options)
        print(f"re-run:           {again.rows_read} rows in {again.elapsed_seconds:.2f} s = "
              f"{again.rows_per_second:,.0f} rows/s, {again.accounts_created} accounts created, "
              f"{again.accounts_already_present} already present")  # fmt: skip
    finally:
        await engine.dispose()
        if not args.keep:
            await devstack.drop_database(DATABASE)
    if args.skip_incremental:
        return
    settings, engine = await _database(DATABASE + "_incr")
    try:
        incremental = await _measured_import(
            "incremental:", engine, settings, cipher, csv_path, initial_load=False, **options
        )
        print(f"initial load / incremental: {summary.rows_per_second / incremental.rows_per_second:.2f}x "
              "(same file, same run)")  # fmt: skip
    finally:
        await engine.dispose()
        if not args.keep:
            await devstack.drop_database(DATABASE + "_incr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE}")
    parser.add_argument(
        "--skip-incremental", action="store_true", help="skip the incremental import into a fresh database"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        csv_path = Path(tmp) / "archive.csv"
        started = time.perf_counter()
        written = write_csv(generate_rows(args.rows, seed=args.seed), csv_path)
        print(f"generated:        {written} rows in {time.perf_counter() - started:.2f} s "
              f"({csv_path.stat().st_size / 1e6:.1f} MB, not timed)")  # fmt: skip
        try:
            asyncio.run(bench(args, csv_path))
        except OSError as exc:
            print(
                f"bench_import: cannot reach PostgreSQL ({exc}); run scripts/infra.sh start", file=sys.stderr
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
