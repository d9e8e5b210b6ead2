"""Issue 4 end to end, through the gateway against the running processes: an account opened at the customer
service reaches billing by its events; a billing clerk publishes a plan and requests a run, which the
scheduler process bills; the resident sees the bill and the amount due in the app; a bank partner looks
the balance up by scope; a cashier takes the money at the service counter through the payment service,
whose event billing settles; the cached lookup shows it paid; the customer 360° view shows it paid."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

PRICE = Decimal("31.50")


@pytest.fixture(scope="session")
async def billing_api(gateway_url, platform):
    port = platform.services["metering-and-billing"].processes["api"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as direct:
        assert (await direct.get("/readyz")).status_code == 200
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/billing", timeout=15) as client:
        yield client


async def eventually(probe, *, within: float = 45.0, what: str = "condition"):
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached in {within}s"
        await asyncio.sleep(0.3)


@pytest.fixture(scope="session")
async def payment_api(gateway_url, platform):
    port = platform.services["payment"].processes["api"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as direct:
        assert (await direct.get("/readyz")).status_code == 200
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/payment", timeout=15) as client:
        yield client


async def test_a_bill_is_issued_looked_up_paid_and_shown_paid(
    billing_api,
    payment_api,
    customer_api,
    staff_login,
    resident_for,
    partner_client,
    gateway_api,
    phone,
    open_account,
):
    agent, clerk = await staff_login("agent"), await staff_login("billing_clerk")
    number = phone()
    no = await open_account(customer_api, agent, number)  # heating, 72.30 m²

    async def billing_knows() -> bool:
        r = await billing_api.get(f"/v1/accounts/{no}/balance", headers=clerk)
        return r.status_code == 200

    await eventually(billing_knows, what="billing knowing the account from customer.events")

    code = f"e2e-heat-{uuid.uuid4().hex[:8]}"
    plan = {
        "code": code,
        "name": "端到端 居民 按面积计收采暖费",
        "utility": "heating",
        "customer_class": "residential",
        "region": "哈尔滨市",
        "effective_from": "2020-10-01",
        "components": [
            {
                "kind": "area_season",
                "price_per_m2": str(PRICE),
                "season_starts_on": "10-20",
                "season_ends_on": "04-20",
            }
        ],
    }
    r = await billing_api.post(
        "/v1/tariff-plans", json=plan, headers={**clerk, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 201, r.text
    due = date.today() + timedelta(days=20)
    run = await billing_api.post(
        "/v1/billing-runs",
        headers=clerk,
        json={
            "cycle": "2026S",
            "tariff_plan_code": code,
            "period_start": "2026-10-20",
            "period_end": "2027-04-21",
            "issue_date": date.today().isoformat(),
            "due_date": due.isoformat(),
            "selection": {"kind": "accounts", "account_nos": [no]},
        },
    )
    assert run.status_code == 202, run.text

    async def completed():
        r = await billing_api.get(f"/v1/billing-runs/{run.json()['id']}", headers=clerk)
        return r.json() if r.json()["status"] == "completed" else None

    done = await eventually(completed, what="the scheduler completing the run")
    assert done["bills_issued"] == 1
    total = int((Decimal("72.30") * PRICE * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert done["billed"]["amount_fen"] == total

    me = await resident_for(number, no)
    balance = await billing_api.get(f"/v1/accounts/{no}/balance", headers=me)
    assert balance.status_code == 200, balance.text
    assert balance.json()["amount_due"]["amount_fen"] == total
    bills = (await billing_api.get(f"/v1/accounts/{no}/bills", headers=me)).json()["items"]
    assert [(b["bill_no"], b["status"]) for b in bills] == [(f"2026S-{no}", "unpaid")]
    detail = await billing_api.get(f"/v1/accounts/{no}/bills/2026S-{no}", headers=me)
    assert detail.json()["lines"][0]["description"] == "采暖费 72.3 m² × 31.50 元/m²·采暖期"

    # A bank partner (scope bills:read) looks the balance up before collecting.
    client_id, secret = await partner_client("bills:read")
    issued = await gateway_api.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    bank = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (await billing_api.get(f"/v1/accounts/{no}/balance", headers=bank)).json()["amount_due"] == {
        "amount_fen": total,
        "currency": "CNY",
    }

    # The cashier at the service counter takes the money (the payment service, from billing's events, knows
    # what the account owes); billing settles from the payment service's event.
    cashier = await staff_login("billing_clerk")

    async def counter_order():
        r = await payment_api.post(
            "/v1/payment-orders",
            headers={**cashier, "Idempotency-Key": order_key},
            json={"account_no": no, "purpose": "dues", "amount_fen": total, "channel": "counter"},
        )
        return r.json() if r.status_code == 201 else None

    order_key = str(uuid.uuid4())
    order = await eventually(counter_order, what="the payment service knowing what the account owes")
    paid_at_counter = await payment_api.post(
        f"/v1/payment-orders/{order['order_no']}/counter-receipt", headers=cashier, json={"shift_id": "E2E-A"}
    )
    assert paid_at_counter.status_code == 200 and paid_at_counter.json()["status"] == "succeeded"

    async def paid():
        r = await billing_api.get(f"/v1/accounts/{no}/balance", headers=me)
        return r.json()["amount_due"]["amount_fen"] == 0

    await eventually(paid, what="the payment settled and visible in the cached lookup")
    bills = (await billing_api.get(f"/v1/accounts/{no}/bills", headers=me)).json()["items"]
    assert bills[0]["status"] == "paid"

    async def shown_in_360():
        view = await customer_api.get(f"/v1/accounts/{no}/view", headers=me)
        items = [b for a in view.json()["accounts"] for b in a["services"]["latest_bills"]]
        return [b for b in items if b.get("bill_no") == f"2026S-{no}" and b.get("status") == "paid"]

    await eventually(shown_in_360, what="the 360° view showing the bill paid")
