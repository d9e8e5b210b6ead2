"""Payments settle bills (核销) through the real consumer on real Kafka, and the cached lookup in real Redis
shows the new balance immediately after; a duplicate delivery settles nothing twice; a refund reopens the
bill; late fees are zero at exactly the due second and accrue after it; waivers and notes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing.adapters.cache import LookupCache
from billing.adapters.orm import AccountBalance, Bill, BillingAccount, Receivable, SettlementRow
from billing.domain.receivables import due_instant
from billing.service_layer import receivables
from billing.service_layer.consumers import build_registry
from billing.service_layer.receivables import policy_document
from utilis_shared import devstack
from utilis_shared.db import UnitOfWork, inbox_messages, outbox_messages
from utilis_shared.events import Event
from utilis_shared.inbox import EventConsumer
from utilis_shared.timeutil import utcnow


def account_no() -> str:
    return f"7{uuid.uuid4().int % 10**10:010d}"


async def open_bill(session_factory, settings, no: str, *, total: int, due: date, cycle: str = "202610"):
    """An account with one issued, unpaid bill (as a billing run leaves it)."""
    policy = policy_document(settings)
    bill_no = f"{cycle}-{no}"
    async with session_factory() as s:
        if await s.get(BillingAccount, no) is None:
            s.add(
                BillingAccount(
                    account_no=no,
                    utility="heating",
                    customer_class="residential",
                    household_size=3,
                    status="active",
                    heated_area_m2=Decimal("80.00"),
                    district="南岗区",
                    last_event_at=utcnow(),
                )
            )
        s.add(
            Bill(
                bill_no=bill_no,
                kind="bill",
                account_no=no,
                cycle=cycle,
                utility="heating",
                tariff_plan_code="t",
                period_start=date(2026, 10, 1),
                period_end=date(2026, 11, 1),
                issue_date=date(2026, 10, 1),
                due_date=due,
                due_at=due_instant(due),
                total_fen=total,
                lines=[],
                late_fee_policy=policy,
                created_by="test",
            )
        )
        s.add(
            Receivable(
                bill_no=bill_no,
                account_no=no,
                utility="heating",
                principal_fen=total,
                due_at=due_instant(due),
                principal_paid_fen=0,
                late_fee_credited_fen=0,
                late_fee_policy=policy,
                status="open",
                version=1,
            )
        )
        await s.commit()
    return bill_no


def payment_event(no: str, amount: int, paid_at: datetime, payment_id: str | None = None, **extra) -> Event:
    return Event(
        type="payment.payment.succeeded",
        source="payment",
        subject=no,
        data={
            "payment_id": payment_id or f"P{uuid.uuid4().hex[:16]}",
            "account_no": no,
            "amount_fen": amount,
            "paid_at": paid_at.isoformat(),
            "channel": "wechat",
            **extra,
        },
    )


async def consume_until_seen(settings, session_factory, cache, *event_ids: uuid.UUID) -> None:
    consumer = EventConsumer(settings, session_factory, build_registry(cache), ["payment.events"])
    await consumer.start()
    task = asyncio.create_task(consumer.run_forever())
    try:
        deadline = time.monotonic() + 60
        while True:
            async with session_factory() as s:
                seen = await s.scalar(
                    select(func.count())
                    .select_from(inbox_messages)
                    .where(inbox_messages.c.event_id.in_(event_ids))
                )
            if seen == len(set(event_ids)):
                break
            assert time.monotonic() < deadline, "consumer did not get there in time"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await consumer.close()


@pytest.fixture
async def cache(settings):
    c = LookupCache.from_settings(settings)
    yield c
    await c.close()


async def test_a_payment_event_settles_and_the_cached_lookup_shows_it_at_once(
    settings, session_factory, client, auth, cache
) -> None:
    no = account_no()
    due = date.today() + timedelta(days=10)
    bill_no = await open_bill(session_factory, settings, no, total=120_000, due=due)
    resident = auth(accounts=[no])

    before = await client.get(f"/v1/accounts/{no}/balance", headers=resident)
    assert before.status_code == 200, before.text
    assert before.json()["amount_due"]["amount_fen"] == 120_000
    # Now cached: the statement is in Redis.
    assert await cache.redis.get(f"{settings.redis_prefix}stmt:{no}") is not None

    paid = payment_event(no, 150_000, utcnow())
    await devstack.publish(
        settings.kafka_bootstrap, settings.topic("payment.events"), paid, paid
    )  # delivered twice
    await consume_until_seen(settings, session_factory, cache, paid.id)

    after = await client.get(f"/v1/accounts/{no}/balance", headers=resident)
    body = after.json()
    assert body["amount_due"]["amount_fen"] == 0
    assert body["open_bills"] == []
    assert body["prepaid_balance"]["amount_fen"] == 30_000
    bills = (await client.get(f"/v1/accounts/{no}/bills", headers=resident)).json()["items"]
    assert [(b["bill_no"], b["status"]) for b in bills] == [(bill_no, "paid")]

    async with session_factory() as s:
        settlement = await s.get(SettlementRow, paid.data["payment_id"])
        assert settlement.allocations == [{"bill_no": bill_no, "late_fee_fen": 0, "principal_fen": 120_000}]
        assert (await s.get(AccountBalance, no)).prepaid_fen == 30_000
        types = (
            (
                await s.execute(
                    select(outbox_messages.c.event_type)
                    .where(outbox_messages.c.key == no)
                    .order_by(outbox_messages.c.seq)
                )
            )
            .scalars()
            .all()
        )
    assert types == ["billing.bill.settled", "billing.settlement.recorded", "billing.balance.changed"]

    # The same payment under another event id (a provider retry): applied once, by payment id.
    again = payment_event(no, 150_000, utcnow(), payment_id=paid.data["payment_id"])
    await devstack.publish(settings.kafka_bootstrap, settings.topic("payment.events"), again)
    await consume_until_seen(settings, session_factory, cache, again.id)
    async with session_factory() as s:
        assert (await s.get(AccountBalance, no)).prepaid_fen == 30_000


async def test_a_stale_fill_is_not_stored_over_an_invalidation(settings, session_factory, cache) -> None:
    no = account_no()
    await open_bill(session_factory, settings, no, total=5_000, due=date.today() + timedelta(days=3))
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_load(account_no: str):
        async with session_factory() as s:
            document = await receivables_statement(s, account_no)
        started.set()
        await release.wait()  # the settlement commits and invalidates meanwhile
        return document

    fill = asyncio.create_task(cache.statement(no, slow_load))
    await started.wait()
    await cache.invalidate([no])
    release.set()
    stale = await fill
    assert b'"principal_fen":5000' in stale  # the reader got what it read ...
    assert await cache.redis.get(f"{settings.redis_prefix}stmt:{no}") is None  # ... but did not cache it


async def receivables_statement(session, no):
    from billing.service_layer.lookups import load_statement

    return await load_statement(session, no)


async def test_unknown_accounts_are_cached_as_unknown_and_residents_see_only_their_own(
    settings, client, auth, cache
) -> None:
    no = account_no()
    r = await client.get(f"/v1/accounts/{no}/balance", headers=auth("agent"))
    assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    assert await cache.redis.get(f"{settings.redis_prefix}stmt:{no}") == b'{"known":false}'
    r = await client.get(f"/v1/accounts/{no}/balance", headers=auth(accounts=["31000000017"]))
    assert r.status_code == 404
    r = await client.get(f"/v1/accounts/{no}/balance", headers=auth("inspector"))
    assert r.status_code == 403


async def settle(
    session_factory, settings, no: str, amount: int, at: datetime, payment_id: str | None = None
):
    async with UnitOfWork(session_factory, settings) as uow:
        applied = await receivables.apply_payment(
            uow,
            payment_id=payment_id or f"P{uuid.uuid4().hex[:12]}",
            account_no=no,
            amount_fen=amount,
            paid_at=at,
        )
        await uow.commit()
    return applied.settlement


async def test_a_late_fee_at_exactly_the_due_second_is_zero(settings, session_factory) -> None:
    no = account_no()
    due = date(2026, 11, 30)
    bill_no = await open_bill(session_factory, settings, no, total=200_000, due=due)
    at_due = due_instant(due)  # 2026-12-01T00:00:00+08:00
    assert at_due == datetime(2026, 11, 30, 16, tzinfo=UTC)
    settlement = await settle(session_factory, settings, no, 200_000, at_due)
    assert settlement.allocations == [{"bill_no": bill_no, "late_fee_fen": 0, "principal_fen": 200_000}]


async def test_a_late_fee_accrues_after_the_due_time_and_is_paid_first(settings, session_factory) -> None:
    no = account_no()
    due = date(2026, 9, 30)
    bill_no = await open_bill(session_factory, settings, no, total=200_000, due=due)
    ten_days_late = due_instant(due) + timedelta(days=10)
    # 0.05 %/day × 200,000 fen × 10 days = 1,000 fen, taken before the principal.
    settlement = await settle(session_factory, settings, no, 100_000, ten_days_late)
    assert settlement.allocations == [{"bill_no": bill_no, "late_fee_fen": 1_000, "principal_fen": 99_000}]
    async with session_factory() as s:
        receivable = await s.get(Receivable, bill_no)
    assert (receivable.status, receivable.principal_paid_fen) == ("open", 99_000)


async def test_a_refund_reopens_the_bill(settings, session_factory, client, auth) -> None:
    no = account_no()
    bill_no = await open_bill(
        session_factory, settings, no, total=50_000, due=date.today() + timedelta(days=5)
    )
    paid = await settle(session_factory, settings, no, 50_000, utcnow())
    async with UnitOfWork(session_factory, settings) as uow:
        await receivables.reverse_payment(
            uow, payment_id=paid.payment_id, account_no=no, refunded_fen=50_000, refunded_at=utcnow()
        )
        await uow.commit()
    async with session_factory() as s:
        receivable = await s.get(Receivable, bill_no)
        settlement = await s.get(SettlementRow, paid.payment_id)
    assert (receivable.status, receivable.principal_paid_fen) == ("open", 0)
    assert settlement.status == "reversed" and settlement.reversal["reopened_bill_nos"] == [bill_no]


async def test_waivers_need_a_supervisor_who_is_not_the_requester(
    settings, session_factory, client, auth
) -> None:
    no = account_no()
    bill_no = await open_bill(session_factory, settings, no, total=100_000, due=date(2026, 9, 1))
    body = {"requested_by": "billing01", "reason": "低保户，经审批减免滞纳金"}
    r = await client.post(f"/v1/bills/{bill_no}/late-fee-waivers", json=body, headers=auth("billing_clerk"))
    assert r.status_code == 403
    supervisor = auth("billing_supervisor", subject="billing01")
    r = await client.post(f"/v1/bills/{bill_no}/late-fee-waivers", json=body, headers=supervisor)
    assert r.status_code == 409 and r.json()["code"] == "waiver_not_authorized"
    supervisor = auth("billing_supervisor", subject="supervisor01")
    r = await client.post(f"/v1/bills/{bill_no}/late-fee-waivers", json=body, headers=supervisor)
    assert r.status_code == 201, r.text
    waived = r.json()
    assert waived["amount"]["amount_fen"] == waived["late_fee_before"]["amount_fen"] > 0
    assert waived["late_fee_after"]["amount_fen"] == 0
    assert (waived["requested_by"], waived["approved_by"]) == ("billing01", "supervisor01")
    detail = await client.get(f"/v1/accounts/{no}/bills/{bill_no}", headers=auth("agent"))
    assert detail.status_code == 200
    assert [p["kind"] for p in detail.json()["postings"]] == ["waiver"]


async def test_a_credit_note_reduces_an_open_bill_and_carries_the_rest_to_prepaid(
    settings, session_factory, client, auth
) -> None:
    no = account_no()
    bill_no = await open_bill(
        session_factory, settings, no, total=30_000, due=date.today() + timedelta(days=9)
    )
    await settle(session_factory, settings, no, 20_000, utcnow())
    r = await client.post(
        f"/v1/bills/{bill_no}/credit-notes",
        json={"amount_fen": 15_000, "reason": "面积核定有误，退还差额"},
        headers=auth("billing_clerk"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["bill_no"] == f"CN{no}-1" and r.json()["original_bill_no"] == bill_no
    async with session_factory() as s:
        receivable = await s.get(Receivable, bill_no)
        balance = await s.get(AccountBalance, no)
    assert (receivable.status, receivable.principal_paid_fen) == ("settled", 30_000)  # 20,000 paid + 10,000
    assert balance.prepaid_fen == 5_000  # the credit beyond what was owed, carried over explicitly
    r = await client.post(
        f"/v1/bills/{bill_no}/credit-notes",
        json={"amount_fen": 15_001, "reason": "超过可退金额"},
        headers=auth("billing_clerk"),
    )
    assert r.status_code == 422 and r.json()["code"] == "credit_exceeds_bill"
    # A debit note is a new amount owed with its own due date.
    r = await client.post(
        f"/v1/bills/{bill_no}/debit-notes",
        json={"amount_fen": 8_000, "reason": "补收差额"},
        headers=auth("billing_clerk"),
    )
    assert r.status_code == 201 and r.json()["bill_no"] == f"DN{no}-1"
    balance = (await client.get(f"/v1/accounts/{no}/balance", headers=auth(accounts=[no]))).json()
    assert balance["principal_due"]["amount_fen"] == 8_000
    assert [b["bill_no"] for b in balance["open_bills"]] == [f"DN{no}-1"]


async def test_bills_page_by_cursor_and_the_usage_history(settings, session_factory, client, auth) -> None:
    no = account_no()
    for month in (9, 10, 11):
        await open_bill(
            session_factory,
            settings,
            no,
            total=1_000 * month,
            due=date(2026, month, 25),
            cycle=f"2026{month:02d}",
        )
    resident = auth(accounts=[no])
    first = await client.get(f"/v1/accounts/{no}/bills", params={"limit": 2}, headers=resident)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await client.get(
        f"/v1/accounts/{no}/bills", params={"limit": 2, "cursor": page["next_cursor"]}, headers=resident
    )
    assert rest.status_code == 200, rest.text
    seen = [b["bill_no"] for b in page["items"] + rest.json()["items"]]
    assert sorted(seen) == sorted(f"2026{m:02d}-{no}" for m in (9, 10, 11)) and len(set(seen)) == 3
    assert rest.json()["next_cursor"] is None
    bad = await client.get(f"/v1/accounts/{no}/bills", params={"cursor": "not-ours"}, headers=resident)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
    usage = await client.get(f"/v1/accounts/{no}/usage-history", headers=resident)
    assert usage.status_code == 200
    assert sorted(p["total"]["amount_fen"] for p in usage.json()["periods"]) == [9_000, 10_000, 11_000]
    other = await client.get(f"/v1/accounts/{no}/usage-history", headers=auth(accounts=["31000000017"]))
    assert other.status_code == 404


async def test_bills_issued_under_different_late_fee_rules_settle_each_under_its_own(
    settings, session_factory
) -> None:
    no = account_no()
    older = await open_bill(
        session_factory, settings, no, total=100_000, due=date(2026, 9, 30), cycle="202609"
    )
    doubled = settings.model_copy(update={"late_fee_daily_rate": Decimal("0.001")})
    newer = await open_bill(
        session_factory, doubled, no, total=100_000, due=date(2026, 9, 30), cycle="202610"
    )
    at = due_instant(date(2026, 9, 30)) + timedelta(days=10)
    # Older: 0.05 %/day × 1,000 元 × 10 days = 5 元; newer: 0.1 %/day, 10 元. Oldest (then bill no) first.
    settlement = await settle(session_factory, settings, no, 150_000, at)
    assert settlement.allocations == [
        {"bill_no": older, "late_fee_fen": 500, "principal_fen": 100_000},
        {"bill_no": newer, "late_fee_fen": 1_000, "principal_fen": 48_500},
    ]


async def test_a_second_partial_refund_is_refused_loudly_not_ignored(settings, session_factory) -> None:
    no = account_no()
    await open_bill(session_factory, settings, no, total=50_000, due=date.today() + timedelta(days=5))
    paid = await settle(session_factory, settings, no, 50_000, utcnow())
    for refunded in (10_000, 10_000):  # the same refund twice: applied once
        async with UnitOfWork(session_factory, settings) as uow:
            await receivables.reverse_payment(
                uow, payment_id=paid.payment_id, account_no=no, refunded_fen=refunded, refunded_at=utcnow()
            )
            await uow.commit()
    async with session_factory() as s:
        assert (await s.get(SettlementRow, paid.payment_id)).reversal["reapplied_fen"] == 40_000
    async with UnitOfWork(session_factory, settings) as uow:
        with pytest.raises(ValueError, match="needs a person"):
            await receivables.reverse_payment(
                uow, payment_id=paid.payment_id, account_no=no, refunded_fen=25_000, refunded_at=utcnow()
            )
