"""Issue 5's exactly-once acceptance on the running stack: 200 payments through the gateway, each provider
callback (signed by the provider simulator with the stack's key bundle) delivered three times,
concurrently and out of order, to the gateway's public /callbacks/...; the payment service applies each
once and billing settles each once: the sum of the provider-confirmed amounts equals, to the fen, what
billing allocated to bills plus what it added to prepaid balances."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import pytest

from utilis_shared import devstack

PAYMENTS = 200
CHANNELS = ["wechat", "alipay", "bank:icbc", "wechat", "alipay", "bank:boc"]


@pytest.fixture(scope="session")
def simulator():
    from payment.adapters.providers.simulator import ProviderSimulator

    keys = devstack.LOCAL_DIR / "keys" / "payment-providers.json"
    assert keys.is_file(), "the stack writes the providers' key bundle (payment dev-keys): run `make test`"
    return ProviderSimulator.from_keys(keys.read_text(encoding="utf-8"))


async def billing_settlements(platform, payment_ids: list[str]) -> list[asyncpg.Record]:
    spec = platform.services["metering-and-billing"]
    url = devstack.database_url(spec.database).replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(
            "SELECT payment_id, amount_fen, allocations, prepaid_added_fen FROM settlements "
            "WHERE payment_id = ANY($1::varchar[])",
            payment_ids,
        )
    finally:
        await conn.close()


async def test_200_payments_called_back_three_times_concurrently_settle_exactly_once(
    gateway_url, gateway_api, partner_client, platform, simulator
):
    from payment.adapters.providers.simulator import deliver

    client_id, secret = await partner_client("payments:write", "payments:read")
    issued = await gateway_api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert issued.status_code == 200, issued.text
    partner = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    stem = f"9{uuid.uuid4().int % 10**6:06d}"
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/payment", timeout=30) as api:

        async def order(i: int) -> dict:
            channel = CHANNELS[i % len(CHANNELS)]
            r = await api.post(
                "/v1/payment-orders",
                headers={**partner, "Idempotency-Key": str(uuid.uuid4())},
                json={
                    "account_no": f"{stem}{i:04d}",
                    "purpose": "prepaid",  # a declared top-up: billing adds it to the prepaid balance
                    "amount_fen": 1_000 + 37 * i,
                    "channel": channel,
                },
            )
            assert r.status_code == 201, r.text
            return r.json()

        orders = []
        for start in range(0, PAYMENTS, 20):
            orders += await asyncio.gather(*(order(i) for i in range(start, min(start + 20, PAYMENTS))))
    for o in orders:
        simulator.register_order(o["channel"], o["order_no"], o["amount"]["amount_fen"])
    callbacks = [simulator.callback(o["channel"], o["order_no"], o["amount"]["amount_fen"]) for o in orders]
    deliveries = await deliver(gateway_url, callbacks, copies=3, concurrency=24, seed=5, request_timeout=60)
    errors = [d.error for d in deliveries if d.status_code is None]
    assert not errors, errors[:3]
    confirmed = {o["order_no"]: o["amount"]["amount_fen"] for o in orders}

    deadline = time.monotonic() + 120
    while True:
        rows = await billing_settlements(platform, list(confirmed))
        if len(rows) == PAYMENTS:
            break
        assert time.monotonic() < deadline, f"billing settled {len(rows)} of {PAYMENTS} payments"
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # any duplicate settlement would land now
    rows = await billing_settlements(platform, list(confirmed))
    assert sorted(r["payment_id"] for r in rows) == sorted(confirmed)  # one settlement per payment
    import json

    allocated = sum(
        a["late_fee_fen"] + a["principal_fen"]
        for r in rows
        for a in (json.loads(r["allocations"]) if isinstance(r["allocations"], str) else r["allocations"])
    )
    prepaid_added = sum(r["prepaid_added_fen"] for r in rows)
    assert sum(confirmed.values()) == allocated + prepaid_added == sum(r["amount_fen"] for r in rows)
    for r in rows:
        assert r["amount_fen"] == confirmed[r["payment_id"]]

    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/payment", timeout=30) as api:
        some = orders[:: PAYMENTS // 10]
        for o in some:
            seen = await api.get(f"/v1/payment-orders/{o['order_no']}", headers=partner)
            assert seen.status_code == 200 and seen.json()["status"] == "succeeded", seen.text
