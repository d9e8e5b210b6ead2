"""Benchmark: billing-run throughput at 10,000 and 100,000 accounts, and the residents' cached bill lookups
next to the bare framework measured in the same run.

1. A throwaway database (`metering_and_billing_bench`), the Harbin heating-by-area seed plan, N generated
   heating accounts (areas as a northern city's housing stock has them: a few hundred floor plans, so
   many households share an area), and one billing run for the heating season through the real
   ``process_run`` (chunks of ``billing_chunk_size``; bills, receivables and two outbox events per bill).
   Prints bills/s and the per-bill cost at 100k as a ratio to 10k.
2. The real ``metering-and-billing api`` process (uvicorn, 1 worker) on that database and the real Redis:
   GET /livez (the bare-framework ceiling) and GET /v1/accounts/{no}/balance with resident tokens, the
   statements warmed into the cache first (the collection peak's steady state). Prints req/s, p50, p99
   and the ratio to /livez at concurrency 1 and 32. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform as platform_mod
import random
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from bench_view import drive, free_port, measure, pct, print_table
from billing.service_layer import billing_runs
from billing.service_layer.seeds import load_seeds
from billing.settings import Settings
from utilis_shared import devstack
from utilis_shared.db import UnitOfWork, create_engine, create_session_factory
from utilis_shared.devtokens import DevIssuer
from utilis_shared.migrations import run_migrations

SERVICE = devstack.REPO_ROOT / "services" / "metering-and-billing"
PLAN = "harbin-residential-heating-area"
DISTRICTS = ["南岗区", "道里区", "道外区", "香坊区", "松北区", "平房区"]


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


def floor_plans(rng: random.Random, n: int = 400) -> list[Decimal]:
    """A city's few hundred apartment layouts (45–140 m², to the hundredth)."""
    return [Decimal(rng.randint(4500, 14000)) / 100 for _ in range(n)]


async def load_accounts(
    url: str, first: int, count: int, rng: random.Random, plans: list[Decimal]
) -> list[str]:
    conn = await asyncpg.connect(plain(url))
    now = dt.datetime.now(dt.UTC)
    try:
        rows = [
            (
                f"3{first + i:010d}",
                "heating",
                "residential",
                rng.choice((1, 2, 3, 3, 4, 5)),
                "suspended" if rng.random() < 0.03 else "active",
                rng.choice(plans),
                rng.choice(DISTRICTS),
            )
            for i in range(count)
        ]
        await conn.copy_records_to_table(
            "billing_accounts",
            records=[(*r, now) for r in rows],
            columns=[
                "account_no",
                "utility",
                "customer_class",
                "household_size",
                "status",
                "heated_area_m2",
                "district",
                "last_event_at",
            ],
        )
        return [r[0] for r in rows]
    finally:
        await conn.close()


async def bill_run(settings: Settings, factory, cycle: str, selection: dict) -> tuple[float, object]:
    async with UnitOfWork(factory, settings) as uow:
        run = await billing_runs.create_run(
            uow,
            request=billing_runs.RunRequest(
                cycle=cycle,
                tariff_plan_code=PLAN,
                period_start=dt.date(2026, 10, 20),
                period_end=dt.date(2027, 4, 21),
                issue_date=dt.date(2026, 10, 1),
                due_date=dt.date(2026, 12, 31),
                selection=selection,
            ),
            requested_by="bench",
        )
        await uow.commit()
    started = time.perf_counter()
    done = await billing_runs.process_run(factory, settings, run.id)
    return time.perf_counter() - started, done


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--floor-plans", type=int, default=400, help="distinct heated areas (fewer: more memo hits)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(7)  # noqa: S311  # generated test data, not secrets
    db = "metering_and_billing_bench"
    print(f"machine: {platform_mod.node()} {os.cpu_count()} cores; python {platform_mod.python_version()}")
    await devstack.create_database(db, drop_first=True)
    url = devstack.database_url(db)
    await asyncio.to_thread(run_migrations, SERVICE / "migrations", url)
    settings = Settings(
        environment="development",
        database_url=url,
        redis_url=devstack.redis_url(),
        redis_prefix="billing_bench:",
    )
    engine = create_engine(settings)
    factory = create_session_factory(engine)
    await load_seeds(factory, settings, [SERVICE / "seeds" / "tariffs" / f"{PLAN}.json"])
    plans = floor_plans(rng, args.floor_plans)
    sample: list[str] = []
    try:
        first = 0
        results = []
        for size in sizes:
            nos = await load_accounts(url, first, size, rng, plans)
            first += size
            sample = nos[:1000]
            # One run per size over exactly its accounts: a district of its own.
            conn = await asyncpg.connect(plain(url))
            district = f"bench-{size}"
            await conn.execute(
                "UPDATE billing_accounts SET district = $1 WHERE account_no = ANY($2::varchar[])",
                district,
                nos,
            )
            await conn.execute("VACUUM ANALYZE billing_accounts")
            await conn.close()
            elapsed, run = await bill_run(
                settings, factory, "2026S", {"kind": "district", "district": district}
            )
            results.append((size, elapsed, run))
        print(f"\nbilling runs (plan {PLAN}, {args.floor_plans} distinct areas, chunks of "
              f"{settings.billing_chunk_size}; per bill: bill row, receivable, 2 outbox events)")  # fmt: skip
        print(
            f"{'accounts':>9}{'bills':>9}{'seconds':>9}{'bills/s':>10}{'µs/bill':>9}{'vs first':>10}  skipped"
        )
        base = None
        for size, elapsed, run in results:
            per_bill = elapsed / max(run.bills_issued, 1) * 1e6
            base = base or per_bill
            print(
                f"{size:>9}{run.bills_issued:>9}{elapsed:>9.2f}{run.bills_issued / elapsed:>10.0f}"
                f"{per_bill:>9.0f}{per_bill / base:>10.2f}  {run.skipped}"
            )
    finally:
        await engine.dispose()

    # ---- cached lookups through the real API process
    workdir = Path(tempfile.mkdtemp(prefix="utilis-bench-"))
    issuer = DevIssuer(workdir / "keys")
    port = free_port()
    env = {
        **os.environ,
        "UTILIS_ENVIRONMENT": "development",
        "UTILIS_DATABASE_URL": url,
        "UTILIS_REDIS_URL": devstack.redis_url(),
        "UTILIS_REDIS_PREFIX": "billing_bench:",
        "UTILIS_HTTP_PORT": str(port),
        "UTILIS_JWKS_URL": issuer.jwks_url,
        "UTILIS_LOG_LEVEL": "WARNING",
    }
    api = await asyncio.create_subprocess_exec(
        devstack.venv_bin("metering-and-billing"),
        "api",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            residents = [
                {"Authorization": f"Bearer {issuer.resident(f'r{i}', [no], ttl_seconds=3600)}"}
                for i, no in enumerate(sample)
            ]
            paths = [f"/v1/accounts/{no}/balance" for no in sample]
            # Cold: the first lookup of each account reads the database and fills the cache.
            elapsed, lat, errors = await drive(port, paths, residents, len(paths), 1)
            cold = (len(paths) / elapsed, pct(lat, 50), pct(lat, 99), errors)
            scenarios = {
                "baseline GET /livez": (["/livez"], [{}]),
                "balance, cached (resident)": (paths, residents),
            }
            for concurrency, requests in ((1, args.requests // 4), (args.concurrency, args.requests)):
                results = await measure(port, scenarios, requests, concurrency)
                if concurrency == 1:
                    results["balance, cold (fills cache)"] = cold
                print_table(results, "baseline GET /livez", requests, concurrency)
    finally:
        api.terminate()
        await asyncio.wait_for(api.wait(), 30)
        await devstack.drop_database(db)


if __name__ == "__main__":
    asyncio.run(main())
