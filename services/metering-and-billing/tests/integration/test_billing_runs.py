"""Billing runs against the real PostgreSQL: a run for 1,000 accounts, a crash in the middle of a chunk and
the resume, a re-run of the cycle: each account ends with exactly one bill for the cycle and exactly one
``billing.bill.issued`` event; closed accounts and accounts without an area are counted, not billed; bills
are immutable; a prepaid balance is drawn by the new bill."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from billing.adapters.orm import AccountBalance, Bill, BillingAccount, BillingRun, Receivable
from billing.service_layer import billing_runs
from utilis_shared.db import outbox_messages
from utilis_shared.timeutil import utcnow

PRICE = Decimal("29.80")


def area_plan(code: str) -> dict:
    return {
        "code": code,
        "name": "测试 居民 按面积计收采暖费",
        "utility": "heating",
        "customer_class": "residential",
        "region": "测试市",
        "effective_from": "2020-10-01",
        "note": "测试",
        "components": [
            {
                "kind": "area_season",
                "label": "采暖费",
                "price_per_m2": str(PRICE),
                "season_starts_on": "10-20",
                "season_ends_on": "04-20",
                "suspension_share": "0.20",
            }
        ],
    }


def expected_fen(area: Decimal, share: Decimal = Decimal(1)) -> int:
    # A whole season: area × 29.80 元 × share, rounded once half up to the fen.
    return int((area * PRICE * share * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


async def make_accounts(session_factory, district: str, n: int, *, closed=(), no_area=(), suspended=()):
    stem = f"8{uuid.uuid4().int % 10**6:06d}"
    accounts = []
    async with session_factory() as s:
        for i in range(n):
            no = f"{stem}{i:04d}"
            area = None if i in no_area else Decimal(60) + Decimal(i % 40) + Decimal("0.25")
            status = "closed" if i in closed else ("suspended" if i in suspended else "active")
            s.add(
                BillingAccount(
                    account_no=no,
                    utility="heating",
                    customer_class="residential",
                    household_size=3,
                    status=status,
                    heated_area_m2=area,
                    district=district,
                    last_event_at=utcnow(),
                )
            )
            accounts.append((no, area, status))
        await s.commit()
    return accounts


def run_body(code: str, district: str, cycle: str = "2026S") -> dict:
    return {
        "cycle": cycle,
        "tariff_plan_code": code,
        "period_start": "2026-10-20",
        "period_end": "2027-04-21",
        "issue_date": "2026-10-01",
        "due_date": "2026-10-19",
        "selection": {"kind": "district", "district": district},
    }


async def publish(client, auth, code: str) -> None:
    r = await client.post("/v1/tariff-plans", json=area_plan(code), headers=auth("billing_clerk"))
    assert r.status_code == 201, r.text


async def bills_of(session_factory, nos) -> dict[str, list[Bill]]:
    async with session_factory() as s:
        rows = (await s.execute(select(Bill).where(Bill.account_no.in_(nos), Bill.kind == "bill"))).scalars()
        out: dict[str, list[Bill]] = {}
        for b in rows:
            out.setdefault(b.account_no, []).append(b)
        return out


async def issued_events(session_factory, nos) -> int:
    async with session_factory() as s:
        return await s.scalar(
            select(func.count())
            .select_from(outbox_messages)
            .where(outbox_messages.c.event_type == "billing.bill.issued", outbox_messages.c.key.in_(nos))
        )


async def test_a_run_for_1000_accounts_survives_a_crash_and_a_rerun(
    settings, session_factory, client, auth, new_code, monkeypatch
) -> None:
    code, district = new_code("heat"), f"测试区{uuid.uuid4().hex[:6]}"
    await publish(client, auth, code)
    accounts = await make_accounts(
        session_factory, district, 1000, closed={5, 6, 7}, no_area={10, 11}, suspended={20}
    )
    nos = [a[0] for a in accounts]

    r = await client.post("/v1/billing-runs", json=run_body(code, district), headers=auth("billing_clerk"))
    assert r.status_code == 202, r.text
    run_id = uuid.UUID(r.json()["id"])
    assert r.json()["status"] == "pending"

    small = settings.model_copy(update={"billing_chunk_size": 300})
    # Two chunks commit, then the process "dies".
    run = await billing_runs.process_run(session_factory, small, run_id, max_chunks=2)
    assert (run.status, run.accounts_seen) == ("running", 600)

    # The next chunk fails half-way through its writes (bills inserted, then a crash): it rolls back whole.
    real_insert = billing_runs._insert

    async def crash(session, bills, *rest):
        await real_insert(session, bills, *rest)
        raise RuntimeError("killed in the middle of a chunk")

    monkeypatch.setattr(billing_runs, "_insert", crash)
    with pytest.raises(RuntimeError):
        await billing_runs.process_run(session_factory, small, run_id)
    monkeypatch.setattr(billing_runs, "_insert", real_insert)
    assert len(await bills_of(session_factory, nos)) == 600 - 3 - 2  # only the two committed chunks

    # Resumed (as the scheduler would after a restart): it continues after the cursor.
    run = await billing_runs.process_run(session_factory, small, run_id)
    assert run.status == "completed"
    bills = await bills_of(session_factory, nos)
    assert all(len(b) == 1 for b in bills.values())
    assert len(bills) == 995 == run.bills_issued
    assert run.skipped == {"closed": 3, "no_area": 2}
    assert await issued_events(session_factory, nos) == 995

    by_no = {no: (area, status) for no, area, status in accounts}
    for no, (bill,) in bills.items():
        area, status = by_no[no]
        share = Decimal("0.20") if status == "suspended" else Decimal(1)
        assert bill.total_fen == expected_fen(area, share), no
        assert bill.bill_no == f"2026S-{no}"
        assert bill.lines[0]["description"].startswith("采暖费")
    assert run.billed_fen == sum(b[0].total_fen for b in bills.values())

    # Re-running the cycle creates nothing.
    r = await client.post("/v1/billing-runs", json=run_body(code, district), headers=auth("billing_clerk"))
    again = await billing_runs.process_run(session_factory, settings, uuid.UUID(r.json()["id"]))
    assert (again.status, again.bills_issued, again.skipped) == (
        "completed",
        0,
        {"already_billed": 995, "closed": 3, "no_area": 2},
    )
    assert await issued_events(session_factory, nos) == 995

    r = await client.get(f"/v1/billing-runs/{run_id}", headers=auth("analyst"))
    assert r.status_code == 200 and r.json()["bills_issued"] == 995
    assert r.json()["billed"] == {"amount_fen": run.billed_fen, "currency": "CNY"}


async def test_issued_bills_are_immutable(settings, session_factory, client, auth, new_code) -> None:
    code, district = new_code("heat"), f"测试区{uuid.uuid4().hex[:6]}"
    await publish(client, auth, code)
    (no, _, _), *_ = await make_accounts(session_factory, district, 1)
    r = await client.post("/v1/billing-runs", json=run_body(code, district), headers=auth("billing_clerk"))
    await billing_runs.process_run(session_factory, settings, uuid.UUID(r.json()["id"]))
    async with session_factory() as s:
        with pytest.raises(DBAPIError, match="immutable"):
            await s.execute(text("UPDATE bills SET total_fen = 1 WHERE account_no = :no"), {"no": no})
    async with session_factory() as s:
        with pytest.raises(DBAPIError, match="immutable"):
            await s.execute(text("DELETE FROM bills WHERE account_no = :no"), {"no": no})


async def test_a_new_bill_draws_the_prepaid_balance(
    settings, session_factory, client, auth, new_code
) -> None:
    code, district = new_code("heat"), f"测试区{uuid.uuid4().hex[:6]}"
    await publish(client, auth, code)
    (rich, area_rich, _), (poor, area_poor, _) = await make_accounts(session_factory, district, 2)
    total_rich, total_poor = expected_fen(area_rich), expected_fen(area_poor)
    async with session_factory() as s:
        s.add(AccountBalance(account_no=rich, prepaid_fen=total_rich + 500, version=1))
        s.add(AccountBalance(account_no=poor, prepaid_fen=1000, version=1))
        await s.commit()
    r = await client.post("/v1/billing-runs", json=run_body(code, district), headers=auth("billing_clerk"))
    await billing_runs.process_run(session_factory, settings, uuid.UUID(r.json()["id"]))
    async with session_factory() as s:
        rich_r = await s.get(Receivable, f"2026S-{rich}")
        poor_r = await s.get(Receivable, f"2026S-{poor}")
        assert (rich_r.status, rich_r.principal_paid_fen) == ("settled", total_rich)
        assert (poor_r.status, poor_r.principal_paid_fen) == ("open", 1000)
        assert (await s.get(AccountBalance, rich)).prepaid_fen == 500
        assert (await s.get(AccountBalance, poor)).prepaid_fen == 0
    resident = auth(accounts=[poor])
    r = await client.get(f"/v1/accounts/{poor}/balance", headers=resident)
    assert r.status_code == 200, r.text
    body = r.json()
    # Due 2026-10-19, so the late fee has been accruing since: amount due = principal left + late fee.
    assert body["principal_due"]["amount_fen"] == total_poor - 1000
    assert body["late_fee"]["amount_fen"] > 0
    assert body["amount_due"]["amount_fen"] == total_poor - 1000 + body["late_fee"]["amount_fen"]
    assert r.json()["prepaid_balance"]["amount_fen"] == 0


@pytest.mark.parametrize(
    ("patch", "status", "code"),
    [
        ({"cycle": "26"}, 422, "validation_failed"),
        ({"period_end": "2026-10-01"}, 422, "invalid_period"),
        ({"due_date": "2026-09-01"}, 422, "invalid_due_date"),
        ({"tariff_plan_code": "no-such-plan"}, 404, "tariff_plan_not_found"),
        ({"period_start": "2001-01-01"}, 422, "no_tariff_in_force"),
        ({"selection": {"kind": "accounts", "account_nos": []}}, 422, "invalid_selection"),
    ],
)
async def test_bad_run_requests_are_refused_with_a_code(client, auth, new_code, patch, status, code) -> None:
    plan = new_code("heat")
    await publish(client, auth, plan)
    body = run_body(plan, "南岗区") | patch
    r = await client.post("/v1/billing-runs", json=body, headers=auth("billing_clerk"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


async def test_only_billing_clerks_start_runs(client, auth, new_code) -> None:
    plan = new_code("heat")
    await publish(client, auth, plan)
    for headers in (auth("agent"), auth(accounts=["31000000017"]), auth("analyst")):
        r = await client.post("/v1/billing-runs", json=run_body(plan, "南岗区"), headers=headers)
        assert r.status_code == 403, r.text


async def test_a_second_run_of_the_same_cycle_waits_for_the_first(client, auth, new_code) -> None:
    plan = new_code("heat")
    await publish(client, auth, plan)
    body = run_body(plan, f"测试区{uuid.uuid4().hex[:6]}")
    first = await client.post("/v1/billing-runs", json=body, headers=auth("billing_clerk"))
    assert first.status_code == 202
    second = await client.post("/v1/billing-runs", json=body, headers=auth("billing_clerk"))
    assert second.status_code == 409 and second.json()["code"] == "billing_run_in_progress"


async def test_run_rows_record_who_asked(session_factory, client, auth, new_code) -> None:
    plan = new_code("heat")
    await publish(client, auth, plan)
    r = await client.post(
        "/v1/billing-runs",
        json=run_body(plan, f"测试区{uuid.uuid4().hex[:6]}"),
        headers=auth("billing_clerk", subject="billing01"),
    )
    async with session_factory() as s:
        run = await s.get(BillingRun, uuid.UUID(r.json()["id"]))
    assert run.requested_by == "billing01"


async def test_the_scheduler_process_picks_up_a_requested_run(
    settings, engine, session_factory, client, auth, new_code
) -> None:
    import asyncio

    from billing.entrypoints.scheduler import Scheduler

    code, district = new_code("heat"), f"测试区{uuid.uuid4().hex[:6]}"
    await publish(client, auth, code)
    accounts = await make_accounts(session_factory, district, 30)
    r = await client.post("/v1/billing-runs", json=run_body(code, district), headers=auth("billing_clerk"))
    run_id = uuid.UUID(r.json()["id"])
    scheduler = Scheduler(
        settings.model_copy(update={"reminder_sweep_seconds": 3600}), engine, poll_seconds=0.05
    )
    await scheduler.start()
    task = asyncio.create_task(scheduler.run_forever())
    try:
        for _ in range(200):
            async with session_factory() as s:
                run = await s.get(BillingRun, run_id)
            if run.status == "completed":
                break
            await asyncio.sleep(0.05)
    finally:
        scheduler.stop()
        await asyncio.wait_for(task, 30)
        await scheduler.close()
    assert (run.status, run.bills_issued) == ("completed", 30)
    assert len(await bills_of(session_factory, [a[0] for a in accounts])) == 30


async def test_a_run_that_keeps_failing_is_marked_failed_and_does_not_block_the_scheduler(
    settings, engine, session_factory, client, auth, new_code, monkeypatch
) -> None:
    from billing.entrypoints.scheduler import Scheduler

    code = new_code("heat")
    await publish(client, auth, code)
    r = await client.post(
        "/v1/billing-runs",
        json=run_body(code, f"测试区{uuid.uuid4().hex[:6]}"),
        headers=auth("billing_clerk"),
    )
    run_id = uuid.UUID(r.json()["id"])

    async def broken(*args, **kwargs):
        raise RuntimeError("the database said no")

    monkeypatch.setattr(billing_runs, "process_run", broken)
    scheduler = Scheduler(settings, engine)
    await scheduler._process(run_id)
    await scheduler.close()
    async with session_factory() as s:
        run = await s.get(BillingRun, run_id)
    assert run.status == "failed" and run.failure == "RuntimeError: the database said no"


async def test_a_gas_run_bills_the_metered_volume_by_tier_and_carries_the_tier_year(
    settings, session_factory, client, auth, gas_plan, open_account, meter
) -> None:
    from datetime import UTC, datetime

    plan = gas_plan()  # 0–350 m³ at 2.60, 350–500 at 3.12, above at 3.90; the tier year starts on 01-01
    r = await client.post("/v1/tariff-plans", json=plan, headers=auth("billing_clerk"))
    assert r.status_code == 201, r.text
    metered = await open_account(meters=[meter(initial="100")])  # installation reading 100 on 2025-12-01
    unread = await open_account(meters=[meter(initial="100")])

    async def read(value: int, day: datetime) -> None:
        body = {"read_at": day.isoformat(), "value": str(value)}
        response = await client.post(
            f"/v1/accounts/{metered}/readings", json=body, headers=auth("technician")
        )
        assert response.status_code == 201 and response.json()["status"] == "accepted", response.text

    async def bill(cycle: str, start: str, end: str):
        body = {
            "cycle": cycle,
            "tariff_plan_code": plan["code"],
            "period_start": start,
            "period_end": end,
            "issue_date": end,
            "due_date": end,
            "selection": {"kind": "accounts", "account_nos": [metered, unread]},
        }
        r = await client.post("/v1/billing-runs", json=body, headers=auth("billing_clerk"))
        assert r.status_code == 202, r.text
        return await billing_runs.process_run(session_factory, settings, uuid.UUID(r.json()["id"]))

    await read(400, datetime(2026, 1, 31, 2, tzinfo=UTC))
    january = await bill("202601", "2026-01-01", "2026-02-01")
    assert (january.bills_issued, january.skipped) == (1, {"no_reading": 1})
    await read(500, datetime(2026, 2, 27, 2, tzinfo=UTC))
    february = await bill("202602", "2026-02-01", "2026-03-01")
    assert february.bills_issued == 1

    bills = {b.cycle: b for b in (await bills_of(session_factory, [metered]))[metered]}
    # January: 300 m³ (400 − 100), all in the first tier: 300 × 2.60 = 780.00 元.
    jan = bills["202601"]
    assert (jan.volume, jan.year_to_date_before, jan.year_to_date_after) == (300, 0, 300)
    assert jan.total_fen == 78_000
    # February: 100 m³ on top of 300 this tier year: 50 × 2.60 + 50 × 3.12 = 130.00 + 156.00 = 286.00 元.
    feb = bills["202602"]
    assert (feb.volume, feb.year_to_date_before, feb.year_to_date_after) == (100, 300, 400)
    assert [(line["tier"], line["quantity"], line["amount_fen"]) for line in feb.lines] == [
        (1, "50.000", 13_000),
        (2, "50.000", 15_600),
    ]
    assert feb.total_fen == 28_600


async def test_the_runs_events_are_byte_for_byte_what_the_catalog_builds(
    settings, session_factory, client, auth, new_code
) -> None:
    """Runs build their events without pydantic (``EventCatalog.outbox_record``, for speed): each stored
    payload must be exactly what ``catalog.build(payload).to_bytes()`` gives for the same id and time, so
    the fast path cannot drift from the published schemas."""
    import json

    from billing.events import BalanceChanged, BillIssued, catalog
    from utilis_shared.events import Event

    code, district = new_code("heat"), f"测试区{uuid.uuid4().hex[:6]}"
    await publish(client, auth, code)
    (paid, area, _), (unpaid, _, _) = await make_accounts(session_factory, district, 2, suspended={1})
    async with session_factory() as s:
        s.add(AccountBalance(account_no=paid, prepaid_fen=expected_fen(area) + 1, version=1))
        await s.commit()
    r = await client.post("/v1/billing-runs", json=run_body(code, district), headers=auth("billing_clerk"))
    await billing_runs.process_run(session_factory, settings, uuid.UUID(r.json()["id"]))
    async with session_factory() as s:
        rows = (
            await s.execute(
                select(outbox_messages)
                .where(outbox_messages.c.key.in_([paid, unpaid]))
                .order_by(outbox_messages.c.seq)
            )
        ).all()
    models = {"billing.bill.issued": BillIssued, "billing.balance.changed": BalanceChanged}
    assert [row.event_type for row in rows] == list(models) * 2
    statuses = set()
    for row in rows:
        fast = Event.from_bytes(row.payload)
        payload = models[row.event_type].model_validate(fast.data)
        slow = catalog.build(payload, subject=row.key).model_copy(update={"id": fast.id, "time": fast.time})
        assert row.payload == slow.to_bytes()
        assert row.headers == slow.kafka_headers_dict() == json.loads(json.dumps(row.headers))
        if row.event_type == "billing.bill.issued":
            statuses.add(payload.status)
    assert statuses == {"paid", "issued"}
