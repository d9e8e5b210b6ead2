"""Benchmark: the 360° view's latency and throughput, next to a bare endpoint measured in the same run.

Builds a throwaway database (`customer_bench_view`), loads generated accounts through the real importer,
starts the real `customer api` process, and drives it over HTTP with a fixed concurrency:
  - baseline: GET /livez (the framework and middleware, no I/O)
  - resident: GET /v1/accounts/{no}/view with a resident token (no audit write)
  - staff:    GET /v1/customers/{id}/view with an agent token (one audit row per read)
Prints req/s, p50 and p99 for each and the ratio to the baseline. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as platform_mod
import random
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from customer.domain.demo import generate_rows, write_csv
from customer.service_layer.importer import import_archive
from customer.settings import Settings
from utilis_shared import devstack
from utilis_shared.devtokens import DevIssuer
from utilis_shared.migrations import run_migrations
from utilis_shared.pii import PiiCipher

MIGRATIONS = devstack.REPO_ROOT / "services" / "customer" / "migrations"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(db: str, accounts: int, workdir: Path) -> Settings:
    await devstack.create_database(db, drop_first=True)
    url = devstack.database_url(db)
    await asyncio.to_thread(run_migrations, MIGRATIONS, url)
    settings = Settings(environment="development", database_url=url)
    archive = workdir / "archive.csv"
    write_csv(generate_rows(accounts, seed=7, dirty_share=0.0, duplicate_share=0.0), archive)
    from utilis_shared.db import engine_scope

    async with engine_scope(settings) as engine:
        await import_archive(
            engine, settings, PiiCipher.from_settings(settings), archive, actor="bench", progress=False
        )
    return settings


class KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, one connection per worker.

    httpx's connection pool costs more CPU per request than the endpoints measured here, and the load
    generator shares the machine's two cores with the server: a lean client keeps the figures about the
    server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        return (await self.request("GET", path, headers))[0]

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """One request on the worker's connection: (status, body). The body is sent with its length."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            *(f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"),
        ]
        if body or method != "GET":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def drive(
    port: int, paths: list[str], headers: list[dict], requests: int, concurrency: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))

    async def worker() -> None:
        nonlocal errors
        client = KeepAliveClient("127.0.0.1", port)
        try:
            for i in counter:
                started = time.perf_counter()
                status = await client.get(paths[i % len(paths)], headers[i % len(headers)])
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, errors


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


Scenarios = dict[str, tuple[list[str], list[dict]]]


async def measure(port: int, scenarios: Scenarios, requests: int, concurrency: int) -> dict[str, tuple]:
    """Each scenario (paths and headers, cycled) after a warm-up: req/s, p50 ms, p99 ms, errors."""
    results = {}
    for name, (paths, headers) in scenarios.items():
        await drive(port, paths, headers, 200, concurrency)  # warm-up
        elapsed, lat, errors = await drive(port, paths, headers, requests, concurrency)
        results[name] = (requests / elapsed, pct(lat, 50), pct(lat, 99), errors)
    return results


def print_table(results: dict[str, tuple], baseline: str, requests: int, concurrency: int) -> None:
    base_rps = results[baseline][0]
    print(f"\n{requests} requests per scenario, concurrency {concurrency}, one API process "
          "(uvicorn, 1 worker), load generator on the same machine")  # fmt: skip
    print(f"{'scenario':<32}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs baseline':>13}")
    for name, (rps, p50, p99, errors) in results.items():
        print(f"{name:<32}{rps:>9.0f}{p50:>9.1f}{p99:>9.1f}{errors:>8}{rps / base_rps:>12.0%}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    db = "customer_bench_view"
    workdir = Path(tempfile.mkdtemp(prefix="utilis-bench-"))
    print(f"machine: {platform_mod.node()} {os.cpu_count()} cores; python {platform_mod.python_version()}")
    t0 = time.perf_counter()
    settings = await load(db, args.accounts, workdir)
    print(f"loaded {args.accounts} accounts in {time.perf_counter() - t0:.1f}s")

    conn = await asyncpg.connect(host="127.0.0.1", port=devstack.pg_port(), user="app", database=db)
    rows = await conn.fetch("SELECT account_no, customer_id FROM accounts ORDER BY random() LIMIT 1000")
    await conn.close()
    issuer = DevIssuer(workdir / "keys")
    port = free_port()
    env = {
        **os.environ,
        "UTILIS_ENVIRONMENT": "development",
        "UTILIS_DATABASE_URL": settings.database_url,
        "UTILIS_HTTP_PORT": str(port),
        "UTILIS_JWKS_URL": issuer.jwks_url,
        "UTILIS_LOG_LEVEL": "WARNING",
    }
    api = await asyncio.create_subprocess_exec(
        devstack.venv_bin("customer"), "api", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=30,
            limits=httpx.Limits(max_connections=args.concurrency),
        ) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            staff = {"Authorization": f"Bearer {issuer.staff('bench-agent', 'agent', ttl_seconds=3600)}"}
            residents = [
                {"Authorization": f"Bearer {issuer.resident(f'r{i}', [r['account_no']], ttl_seconds=3600)}"}
                for i, r in enumerate(rows)
            ]
            scenarios = {
                "baseline GET /livez": (["/livez"], [{}]),
                "resident account view": ([f"/v1/accounts/{r['account_no']}/view" for r in rows], residents),
                "staff customer view (+audit)": (
                    [f"/v1/customers/{r['customer_id']}/view" for r in rows],
                    [staff],
                ),
            }
            # Concurrency 1 shows the service time (latency without queueing); 32 shows throughput.
            for concurrency, requests in ((1, args.requests // 4), (args.concurrency, args.requests)):
                results = await measure(port, scenarios, requests, concurrency)
                print_table(results, "baseline GET /livez", requests, concurrency)
    finally:
        api.terminate()
        await asyncio.wait_for(api.wait(), 30)
        await devstack.drop_database(db)


if __name__ == "__main__":
    random.seed(1)
    asyncio.run(main())
