"""Benchmark: what the gateway costs. The same service call, direct and through the gateway, in one run.

Builds throwaway databases (`customer_bench_gw`, `gateway_bench_gw`), loads generated accounts through the
real importer, starts the real `gateway api` (routing to the customer service) and `customer api`
(trusting the gateway's JWKS) processes, signs a staff member in through the gateway, and drives
GET /v1/accounts/{no} with the same token:
  - direct:  http://customer/v1/accounts/{no}
  - gateway: http://gateway/api/customer/v1/accounts/{no} (token verified, policy, rate limits and the
             revocation deny list in Redis, proxied over a pooled keep-alive connection)
at concurrency 1 (service time: the latency the gateway adds) and at a fixed concurrency (throughput),
and prints req/s, p50, p99 and the ratios. Asserts nothing. Target (issue 3): the gateway keeps at least
60% of the direct throughput and adds under 3 ms at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as platform_mod
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import httpx

from bench_view import drive, free_port, load, pct
from gateway.adapters.crypto import SecretHasher
from gateway.service_layer import admin
from gateway.settings import Settings as GatewaySettings
from utilis_shared import devstack
from utilis_shared.db import UnitOfWork, create_engine, create_session_factory

GATEWAY_MIGRATIONS = devstack.REPO_ROOT / "gateway" / "migrations"
BENCH_PASSWORD = "bench-password-1"  # noqa: S105  # a throwaway database's only user


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), immune to the machine's other load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(300):
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


async def start_profiles(
    folder: Path | None, scenario: str, concurrency: int, gateway_pid: int, customer_pid: int
) -> list[asyncio.subprocess.Process]:
    if folder is None:
        return []
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    label = scenario.split()[0]
    spies = [
        await asyncio.create_subprocess_exec(
            "py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-p", str(pid),
            "-o", str(folder / f"{label}-c{concurrency}-{process}.txt"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for process, pid in (("gateway", gateway_pid), ("customer", customer_pid))
    ]  # fmt: skip
    await asyncio.sleep(1.0)  # py-spy attaches
    return spies


async def stop_profiles(spies: list[asyncio.subprocess.Process]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
    for spy in spies:
        await spy.wait()


async def staff_token(gateway_db_url: str, gateway_url: str) -> str:
    settings = GatewaySettings(environment="development", database_url=gateway_db_url)
    engine = create_engine(settings)
    try:
        async with UnitOfWork(create_session_factory(engine), settings) as uow:
            await admin.add_staff(
                uow, SecretHasher(), username="bench-agent", roles=["agent"], password=BENCH_PASSWORD
            )
            await uow.commit()
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=gateway_url) as client:
        issued = await client.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": "bench-agent",
                "password": BENCH_PASSWORD,
                "client_id": "staff-console",
            },
        )
        issued.raise_for_status()
        return issued.json()["access_token"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--profile",
        type=Path,
        help="a folder: py-spy samples both processes during each measured run (collapsed stacks, "
        "<scenario>-c<concurrency>-<process>.txt); the CPU figures then include py-spy's own overhead",
    )
    args = parser.parse_args()
    print(f"machine: {platform_mod.node()} {os.cpu_count()} cores; python {platform_mod.python_version()}")
    workdir = Path(tempfile.mkdtemp(prefix="utilis-bench-gw-"))
    customer_db, gateway_db = "customer_bench_gw", "gateway_bench_gw"
    customer_settings = await load(customer_db, args.accounts, workdir)
    await devstack.create_database(gateway_db, drop_first=True)
    gateway_db_url = devstack.database_url(gateway_db)
    from utilis_shared.migrations import run_migrations

    await asyncio.to_thread(run_migrations, GATEWAY_MIGRATIONS, gateway_db_url)
    conn = await asyncpg.connect(host="127.0.0.1", port=devstack.pg_port(), user="app", database=customer_db)
    account_nos = [r["account_no"] for r in await conn.fetch("SELECT account_no FROM accounts LIMIT 1000")]
    await conn.close()

    gw_port, customer_port = free_port(), free_port()
    gateway_url, customer_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{customer_port}"
    common = {**os.environ, "UTILIS_ENVIRONMENT": "development", "UTILIS_LOG_LEVEL": "WARNING"}
    gateway_env = {
        **common,
        "UTILIS_DATABASE_URL": gateway_db_url,
        "UTILIS_HTTP_PORT": str(gw_port),
        "UTILIS_REDIS_URL": devstack.redis_url(),
        "UTILIS_REDIS_PREFIX": f"bench-gw-{os.getpid()}:",
        "UTILIS_UPSTREAMS": json.dumps({"customer": customer_url}),
        "UTILIS_PUBLIC_URL": gateway_url,
        # One bench user and one address: the limits are not what is measured.
        "UTILIS_RATE_LIMIT_USER_PER_MINUTE": "100000000",
        "UTILIS_RATE_LIMIT_IP_PER_MINUTE": "100000000",
    }
    customer_env = {
        **common,
        "UTILIS_DATABASE_URL": customer_settings.database_url,
        "UTILIS_HTTP_PORT": str(customer_port),
        "UTILIS_JWKS_URL": f"{gateway_url}/.well-known/jwks.json",
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    gateway = await asyncio.create_subprocess_exec(
        devstack.venv_bin("gateway"), "api", env=gateway_env, **quiet
    )
    customer = await asyncio.create_subprocess_exec(
        devstack.venv_bin("customer"), "api", env=customer_env, **quiet
    )
    try:
        await asyncio.gather(wait_ready(gateway_url), wait_ready(customer_url))
        token = await staff_token(gateway_db_url, gateway_url)
        headers = [{"Authorization": f"Bearer {token}"}]
        scenarios = {
            "direct   GET /v1/accounts/{no}": (customer_port, [f"/v1/accounts/{n}" for n in account_nos]),
            "gateway  GET /api/customer/v1/accounts/{no}": (
                gw_port,
                [f"/api/customer/v1/accounts/{n}" for n in account_nos],
            ),
        }
        for concurrency, requests in ((1, args.requests // 4), (args.concurrency, args.requests)):
            results = {}
            for name, (port, paths) in scenarios.items():
                await drive(port, paths, headers, 200, concurrency)  # warm-up (keys, pools, caches)
                spies = await start_profiles(args.profile, name, concurrency, gateway.pid, customer.pid)
                cpu_before = [cpu_seconds(p.pid) for p in (gateway, customer)]
                elapsed, lat, errors = await drive(port, paths, headers, requests, concurrency)
                await stop_profiles(spies)
                cpu = [
                    (cpu_seconds(p.pid) - b) / requests * 1000
                    for p, b in zip((gateway, customer), cpu_before, strict=True)
                ]
                results[name] = (requests / elapsed, pct(lat, 50), pct(lat, 99), errors, *cpu)
            print(
                f"\n{requests} requests per scenario, concurrency {concurrency}; one process each (uvicorn, "
                "1 worker), PostgreSQL, Redis and the load generator on the same machine"
            )
            print(
                f"{'scenario':<46}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
                f"{'gw CPU ms/req':>15}{'svc CPU ms/req':>16}"
            )
            for name, (rps, p50, p99, errors, gw_cpu, svc_cpu) in results.items():
                print(
                    f"{name:<46}{rps:>9.0f}{p50:>9.2f}{p99:>9.2f}{errors:>8}{gw_cpu:>15.2f}{svc_cpu:>16.2f}"
                )
            direct, through = results.values()
            print(
                f"gateway keeps {through[0] / direct[0]:.0%} of the direct throughput (target >= 60%); "
                f"adds {through[1] - direct[1]:.2f} ms at p50 (target < 3 ms); "
                f"its own CPU per request: {through[4]:.2f} ms (the service's: {through[5]:.2f} ms)"
            )
    finally:
        for proc in (gateway, customer):
            proc.terminate()
        for proc in (gateway, customer):
            await asyncio.wait_for(proc.wait(), 30)
        await devstack.drop_database(customer_db)
        await devstack.drop_database(gateway_db)


if __name__ == "__main__":
    asyncio.run(main())
