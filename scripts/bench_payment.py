"""Benchmark: payments end to end on the running stack (`make bench-payment` starts it like `make up`).

N prepaid top-up orders are created through the payment API (a partner client's token from the gateway),
each is paid at its provider (the simulator, with the stack's key bundle, signs the WeChat / Alipay / bank
callbacks exactly as the providers do) and called back once to the payment service's callback endpoint,
then billing's consumer settles each (its `settlements` table). Prints:
  - created + called back + settled per second (the wall time from the first create to the last settlement);
  - p50 / p99 of the create request and of the callback request (verification, the order lock, the event);
  - the same direct `/livez` of the payment API as the bare baseline measured in the same run.
Target (issue 5): at least 300 payments/s end to end and callback p99 under 800 ms. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as platform_mod
import time
import uuid

import asyncpg
import httpx

from bench_view import KeepAliveClient, pct
from gateway.adapters.crypto import SecretHasher
from gateway.service_layer import admin
from gateway.settings import Settings as GatewaySettings
from payment.adapters.providers.simulator import ProviderSimulator
from utilis_shared import devstack
from utilis_shared.db import UnitOfWork, create_engine, create_session_factory

CHANNELS = ["wechat", "alipay", "bank:icbc"]  # bank:boc signs SM2 (pure-Python gmssl, ~30 ms a check)


async def partner_token(platform: devstack.Platform, gateway: str) -> str:
    env = devstack.service_env(platform.services["gateway"], platform=platform)
    settings = GatewaySettings(environment="development", database_url=env["UTILIS_DATABASE_URL"])
    engine = create_engine(settings)
    client_id, secret = f"bench-{uuid.uuid4().hex[:6]}", f"secret-{uuid.uuid4().hex}"
    try:
        async with UnitOfWork(create_session_factory(engine), settings) as uow:
            await admin.add_client(
                uow,
                SecretHasher(),
                client_id=client_id,
                scopes=["payments:write"],
                secret=secret,
                channel="bank",
            )
            await uow.commit()
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=gateway) as client:
        r = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        r.raise_for_status()
        return r.json()["access_token"]


async def run(args) -> None:
    platform = devstack.load_platform()
    gateway = devstack.gateway_url(platform)
    keys = devstack.LOCAL_DIR / "keys" / "payment-providers.json"
    simulator = ProviderSimulator.from_keys(keys.read_text(encoding="utf-8"))
    token = await partner_token(platform, gateway)
    headers = {"Authorization": f"Bearer {token}"}
    stem = f"8{uuid.uuid4().int % 10**6:06d}"
    port = platform.services["payment"].processes["api"]
    # The lean keep-alive client of bench_view, one connection per worker: httpx's pool would cost more
    # CPU than the requests measured (the load generator shares the two cores with the services).
    workers = [KeepAliveClient("127.0.0.1", port) for _ in range(args.concurrency)]
    idle: asyncio.Queue[KeepAliveClient] = asyncio.Queue()
    for w in workers:
        idle.put_nowait(w)

    async def call(
        method: str, path: str, hdrs: dict[str, str], body: bytes = b""
    ) -> tuple[float, int, bytes]:
        worker = await idle.get()
        try:
            started = time.perf_counter()
            status, content = await worker.request(method, path, hdrs, body)
            return time.perf_counter() - started, status, content
        finally:
            idle.put_nowait(worker)

    started = time.perf_counter()
    base = await asyncio.gather(*(call("GET", "/livez", {}) for _ in range(args.payments)))
    base_rps = args.payments / (time.perf_counter() - started)

    async def create(i: int):
        body = {
            "account_no": f"{stem}{i:04d}",
            "purpose": "prepaid",
            "amount_fen": 1_000 + i,
            "channel": CHANNELS[i % len(CHANNELS)],
        }
        hdrs = {**headers, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
        return await call("POST", "/v1/payment-orders", hdrs, json.dumps(body).encode())

    async def callback(order: dict):
        simulator.register_order(order["channel"], order["order_no"], order["amount"]["amount_fen"])
        cb = simulator.callback(order["channel"], order["order_no"], order["amount"]["amount_fen"])
        return await call("POST", cb.path, cb.headers, cb.body)

    t0 = time.perf_counter()
    created = await asyncio.gather(*(create(i) for i in range(args.payments)))
    t_created = time.perf_counter()
    orders = [json.loads(content) for _, status, content in created if status == 201]
    called = await asyncio.gather(*(callback(o) for o in orders))
    t_called = time.perf_counter()
    for w in workers:
        await w.close()
    url = devstack.database_url(platform.services["metering-and-billing"].database)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        ids = [o["order_no"] for o in orders]
        deadline = time.monotonic() + 300
        while True:
            settled = await conn.fetchval(
                "SELECT count(*) FROM settlements WHERE payment_id = ANY($1::varchar[])", ids
            )
            if settled >= len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        t_settled = time.perf_counter()
    finally:
        await conn.close()

    create_lat = [s for s, _, _ in created]
    callback_lat = [s for s, _, _ in called]
    bad_creates = sum(1 for _, status, _ in created if status != 201)
    bad_callbacks = sum(1 for _, status, _ in called if status != 200)
    print(f"machine: {platform_mod.node()} {os.cpu_count()} cores; python {platform_mod.python_version()}")
    print(
        f"{args.payments} prepaid payments over {', '.join(CHANNELS)}, concurrency {args.concurrency}; "
        "payment api (1 uvicorn worker), relay, billing consumer, PostgreSQL, Kafka, Redis and this load "
        "generator on the same machine"
    )
    print(f"{'what':<44}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    print(f"{'baseline GET /livez (payment api)':<44}{base_rps:>9.0f}{pct([s for s, _, _ in base], 50):>9.1f}"
          f"{pct([s for s, _, _ in base], 99):>9.1f}{0:>8}")  # fmt: skip
    print(f"{'create order (POST /v1/payment-orders)':<44}{len(created) / (t_created - t0):>9.0f}"
          f"{pct(create_lat, 50):>9.1f}{pct(create_lat, 99):>9.1f}{bad_creates:>8}")  # fmt: skip
    print(f"{'provider callback (POST /callbacks/...)':<44}{len(called) / (t_called - t_created):>9.0f}"
          f"{pct(callback_lat, 50):>9.1f}{pct(callback_lat, 99):>9.1f}{bad_callbacks:>8}")  # fmt: skip
    print(f"{'end to end: created + called back + settled':<44}{settled / (t_settled - t0):>9.0f}"
          f"{'':>9}{'':>9}{len(orders) - settled:>8}")  # fmt: skip
    failures: dict[str, int] = {}
    for _, status, content in [*created, *called]:
        if status not in (200, 201):
            label = f"{status} {content[:80].decode(errors='replace')}"
            failures[label] = failures.get(label, 0) + 1
    for label, count in sorted(failures.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  failed x{count}: {label}")
    print(
        f"settled by billing: {settled} of {len(orders)}; the last settlement "
        f"{(t_settled - t_called) * 1000:.0f} ms after the last callback; "
        f"end to end {settled / (t_settled - t0) / 300:.0%} of the 300 payments/s target, callback p99 "
        f"{pct(callback_lat, 99):.0f} ms against 800 ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
