"""The business metrics count what committed, once: a billing run's bills (a chunk that rolls back counts
nothing), the run's outcome, and a payment applied to receivables (a rolled-back application and a replayed
payment count nothing)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from billing.adapters.orm import BillingAccount
from billing.service_layer import billing_runs, receivables
from utilis_shared.db import UnitOfWork
from utilis_shared.timeutil import utcnow

AREA_PLAN = {
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
            "price_per_m2": "29.80",
            "season_starts_on": "10-20",
            "season_ends_on": "04-20",
            "suspension_share": "0.20",
        }
    ],
}


async def make_accounts(session_factory, district: str, n: int, *, closed=()) -> None:
    stem = f"8{uuid.uuid4().int % 10**6:06d}"
    async with session_factory() as s:
        for i in range(n):
            s.add(
                BillingAccount(
                    account_no=f"{stem}{i:04d}",
                    utility="heating",
                    customer_class="residential",
                    household_size=3,
                    status="closed" if i in closed else "active",
                    heated_area_m2=Decimal("72.30"),
                    district=district,
                    last_event_at=utcnow(),
                )
            )
        await s.commit()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_run_counts_the_bills_it_committed_and_its_completion(
    settings, session_factory, client, auth, new_code, monkeypatch
) -> None:
    code, district = new_code("heat"), f"测试区{uuid.uuid4().hex[:6]}"
    r = await client.post("/v1/tariff-plans", json={"code": code, **AREA_PLAN}, headers=auth("billing_clerk"))
    assert r.status_code == 201, r.text
    await make_accounts(session_factory, district, 30, closed={3})
    body = {
        "cycle": "2026S",
        "tariff_plan_code": code,
        "period_start": "2026-10-20",
        "period_end": "2027-04-21",
        "issue_date": "2026-10-01",
        "due_date": "2026-10-19",
        "selection": {"kind": "district", "district": district},
    }
    r = await client.post("/v1/billing-runs", json=body, headers=auth("billing_clerk"))
    assert r.status_code == 202, r.text
    run_id = uuid.UUID(r.json()["id"])
    before = {
        "bills": sample("utilis_billing_bills_issued_total", utility="heating"),
        "fen": sample("utilis_billing_billed_fen_total", utility="heating"),
        "accounts": sample("utilis_billing_run_accounts_total", utility="heating"),
        "completed": sample("utilis_billing_runs_finished_total", outcome="completed"),
    }
    small = settings.model_copy(update={"billing_chunk_size": 10})

    real_insert = billing_runs._insert

    async def crash(session, bills, *rest):
        await real_insert(session, bills, *rest)
        raise RuntimeError("killed in the middle of a chunk")

    await billing_runs.process_run(session_factory, small, run_id, max_chunks=1)
    monkeypatch.setattr(billing_runs, "_insert", crash)
    with pytest.raises(RuntimeError):
        await billing_runs.process_run(session_factory, small, run_id)
    monkeypatch.setattr(billing_runs, "_insert", real_insert)
    run = await billing_runs.process_run(session_factory, small, run_id)

    assert (run.status, run.bills_issued) == ("completed", 29)
    assert sample("utilis_billing_bills_issued_total", utility="heating") - before["bills"] == 29
    assert sample("utilis_billing_billed_fen_total", utility="heating") - before["fen"] == run.billed_fen
    assert sample("utilis_billing_run_accounts_total", utility="heating") - before["accounts"] == 30
    assert sample("utilis_billing_runs_finished_total", outcome="completed") - before["completed"] == 1
    assert sample("utilis_billing_run_last_progress_timestamp_seconds") > 0


async def test_a_payment_is_counted_as_collected_once_and_only_when_it_commits(
    settings, session_factory
) -> None:
    no = f"7{uuid.uuid4().int % 10**10:010d}"
    channel = f"bank:t{uuid.uuid4().hex[:6]}"  # a label of this test's own
    payment = {
        "payment_id": f"P{uuid.uuid4().hex[:16]}",
        "account_no": no,
        "amount_fen": 8_000,
        "paid_at": utcnow(),
        "channel": channel,
        "purpose": "prepaid",
    }

    async with UnitOfWork(session_factory, settings) as uow:  # applied, then rolled back: not collected
        await receivables.apply_payment(uow, **payment)
    assert sample("utilis_billing_collected_fen_total", channel=channel) == 0

    for _ in range(2):  # applied and committed, then replayed: collected once
        async with UnitOfWork(session_factory, settings) as uow:
            await receivables.apply_payment(uow, **payment)
            await uow.commit()
    assert sample("utilis_billing_collected_fen_total", channel=channel) == 8_000
    assert sample("utilis_billing_payments_applied_total", channel=channel) == 1
