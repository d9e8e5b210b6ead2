"""Benchmark: what the gateway costs. The same service call, direct and through the gateway, in one run.

Builds throwaway databases (`customer_bench_gw`, `gateway_bench_gw`), loads generated accounts through the
real importer, starts the real `gateway api` (routing to the customer service) and `customer api`
(trusting the gateway's JWKS) processes, signs a staff member in through the gateway, and drives
GET /v1/accounts/{no} with the same token:
  - direct:  http://customer/v1/accounts/{no}
  - gateway: http://gateway/api/customer/v1/accounts/{no} (token verified, policy, rate limits and the
             revocation deny list in Redis, proxied over a pooled keep-alive connection)
at concurrency 1 (service time: the latency the gateway adds) and at a fixed concurrency (throughput),
in short rounds that alternate direct and gateway (the machine is shared: a burst of other load then hits
both alike), and prints req/s, p50, p99, each process's CPU per request and the ratios (medians of the
rounds). At concurrency 1 it also calls the service direct with a pause as long as the gateway's added
latency between requests: a service that idles between requests spends more CPU on each (cold caches),
which is most of why it costs more behind the gateway at low load. Asserts nothing.
Target (issue 3): the gateway keeps at least 60% of the direct throughput and adds under 3 ms at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as platform_mod
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench_view import KeepAliveClient, drive, free_port, load, pct
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


DIRECT = "direct   GET /v1/accounts/{no}"
THROUGH = "gateway  GET /api/customer/v1/accounts/{no}"


@dataclass
class Round:
    rps: float
    p50: float
    latencies: list[float]
    errors: int
    gw_cpu: float  # seconds, the whole round
    svc_cpu: float
    requests: int


async def measure_round(
    procs: tuple[asyncio.subprocess.Process, ...],
    port: int,
    paths: list[str],
    headers: list[dict],
    requests: int,
    concurrency: int,
    *,
    pause: float = 0.0,
) -> Round:
    before = [cpu_seconds(p.pid) for p in procs]
    if pause:
        elapsed, lat, errors = await drive_paced(port, paths, headers, requests, pause)
    else:
        elapsed, lat, errors = await drive(port, paths, headers, requests, concurrency)
    gw, svc = (cpu_seconds(p.pid) - b for p, b in zip(procs, before, strict=True))
    return Round(requests / elapsed, pct(lat, 50), lat, errors, gw, svc, requests)


async def drive_paced(
    port: int, paths: list[str], headers: list[dict], requests: int, pause: float
) -> tuple[float, list[float], int]:
    """One client, ``pause`` seconds of silence after each answer."""
    client = KeepAliveClient("127.0.0.1", port)
    latencies, errors, started = [], 0, time.perf_counter()
    try:
        for i in range(requests):
            sent = time.perf_counter()
            status = await client.get(paths[i % len(paths)], headers[i % len(headers)])
            latencies.append(time.perf_counter() - sent)
            errors += status != 200
            await asyncio.sleep(pause)
    finally:
        await client.close()
    return time.perf_counter() - started, latencies, errors


def report(
    rounds: dict[str, list[Round]], paced: list[Round], per_round: int, n_rounds: int, concurrency: int
) -> None:
    median = statistics.median
    print(
        f"\nconcurrency {concurrency}: {n_rounds} rounds of {per_round} requests per scenario, direct and "
        "gateway alternating; one process each (uvicorn, 1 worker), PostgreSQL, Redis and the load generator "
        "on the same machine. req/s and p50: median of the rounds; p99: all requests; CPU: all requests"
    )
    print(
        f"{'scenario':<46}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'gw CPU ms/req':>15}{'svc CPU ms/req':>16}"
    )

    def row(name: str, rs: list[Round]) -> tuple[float, float]:
        n = sum(r.requests for r in rs)
        gw, svc = sum(r.gw_cpu for r in rs) / n * 1000, sum(r.svc_cpu for r in rs) / n * 1000
        p99 = pct([x for r in rs for x in r.latencies], 99)
        errors = sum(r.errors for r in rs)
        print(
            f"{name:<46}{median(r.rps for r in rs):>9.0f}{median(r.p50 for r in rs):>9.2f}{p99:>9.2f}"
            f"{errors:>8}{gw:>15.2f}{svc:>16.2f}"
        )
        return gw, svc

    _, svc_direct = row(DIRECT, rounds[DIRECT])
    gw_cpu, svc_through = row(THROUGH, rounds[THROUGH])
    if paced:
        pause = median(max(0.0, t.p50 - d.p50) for d, t in zip(rounds[DIRECT], rounds[THROUGH], strict=True))
        _, svc_paced = row(f"direct, {pause:.1f} ms pause after each (req/s: -)", paced)
    kept = [t.rps / d.rps for d, t in zip(rounds[DIRECT], rounds[THROUGH], strict=True)]
    added = [t.p50 - d.p50 for d, t in zip(rounds[DIRECT], rounds[THROUGH], strict=True)]
    # The latency the gateway adds is its service time, read at concurrency 1; at higher concurrency the
    # p50 is mostly queueing in front of the service.
    latency = (
        f"adds {median(added):.2f} ms at p50 (rounds {min(added):.2f}-{max(added):.2f}; target < 3 ms); "
        if concurrency == 1
        else ""
    )
    print(
        f"gateway keeps {median(kept):.0%} of the direct throughput (rounds {min(kept):.0%}-{max(kept):.0%}; "
        f"target >= 60%); {latency}its own CPU per request: {gw_cpu:.2f} ms; the service's: "
        f"{svc_through:.2f} ms through it, {svc_direct:.2f} ms direct"
        + (f", {svc_paced:.2f} ms direct at the gateway's pace" if paced else "")
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="direct and gateway alternate this many times")
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
            DIRECT: (customer_port, [f"/v1/accounts/{n}" for n in account_nos]),
            THROUGH: (gw_port, [f"/api/customer/v1/accounts/{n}" for n in account_nos]),
        }
        procs = (gateway, customer)
        for concurrency, requests in ((1, args.requests // 4), (args.concurrency, args.requests)):
            for port, paths in scenarios.values():
                await drive(port, paths, headers, 200, concurrency)  # warm-up (keys, pools, caches)
            per_round = max(50, requests // args.rounds)
            rounds: dict[str, list[Round]] = {name: [] for name in scenarios}
            paced: list[Round] = []
            for r in range(args.rounds):
                # Direct and gateway alternate in short rounds (order swapped each round), so a burst of the
                # machine's other load hits both alike; each figure is then the median of the rounds.
                names = list(scenarios) if r % 2 == 0 else list(reversed(scenarios))
                for name in names:
                    port, paths = scenarios[name]
                    spies = await start_profiles(
                        args.profile if r == 0 else None, name, concurrency, gateway.pid, customer.pid
                    )
                    rounds[name].append(
                        await measure_round(procs, port, paths, headers, per_round, concurrency)
                    )
                    await stop_profiles(spies)
                if concurrency == 1:
                    # The service's CPU per request grows with the idle time between its requests (cold caches
                    # on a shared VM): direct again, but pausing as long as the gateway added.
                    direct, through = (rounds[n][-1] for n in scenarios)
                    pause = max(0.0, through.p50 - direct.p50) / 1000
                    port, paths = scenarios[DIRECT]
                    paced.append(await measure_round(procs, port, paths, headers, per_round, 1, pause=pause))
            report(rounds, paced, per_round, args.rounds, concurrency)
    finally:
        for proc in (gateway, customer):
            proc.terminate()
        for proc in (gateway, customer):
            await asyncio.wait_for(proc.wait(), 30)
        await devstack.drop_database(customer_db)
        await devstack.drop_database(gateway_db)


if __name__ == "__main__":
    asyncio.run(main())
