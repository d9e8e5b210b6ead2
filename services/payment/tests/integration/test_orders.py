"""Payment orders against the real PostgreSQL: creation bounded by what billing reports owed, idempotent
retries, the counter, cancellation; verified notices applied exactly once when delivered concurrently and
out of order; a success for a closed order opens one refund case; billing's events kept as projections."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from payment.adapters.orm import PaymentOrder, ProviderCallback, RefundCase
from payment.domain.orders import Outcome
from payment.service_layer import dues, orders
from utilis_shared.db import UnitOfWork, outbox_messages
from utilis_shared.events import Event
from utilis_shared.timeutil import utcnow


def account_no() -> str:
    return f"6{uuid.uuid4().int % 10**10:010d}"


async def billing_reports(
    session_factory, settings, no: str, *, owed: int, bill_no: str | None = None
) -> None:
    """What billing's events would leave here: the account's dues (and one open bill)."""
    async with UnitOfWork(session_factory, settings) as uow:
        if bill_no:
            await dues.bill_changed(
                uow,
                Event(
                    type="billing.bill.issued",
                    source="metering-and-billing",
                    subject=no,
                    data={"bill_no": bill_no, "account_no": no, "total_fen": owed, "due_date": "2026-12-31",
                          "status": "issued"},
                ),
            )  # fmt: skip
        await dues.balance_changed(
            uow,
            Event(
                type="billing.balance.changed",
                source="metering-and-billing",
                subject=no,
                data={
                    "account_no": no,
                    "owed_fen": owed,
                    "late_fee_fen": 0,
                    "prepaid_fen": 0,
                    "open_bills": 1,
                },
            ),
        )
        await uow.commit()


def order_body(no: str, amount: int, **extra) -> dict:
    return {"account_no": no, "purpose": "dues", "amount_fen": amount, "channel": "wechat"} | extra


async def events_of(session_factory, no: str, event_type: str) -> int:
    async with session_factory() as s:
        return await s.scalar(
            select(func.count())
            .select_from(outbox_messages)
            .where(outbox_messages.c.key == no, outbox_messages.c.event_type == event_type)
        )


async def events(session_factory, key: str, event_type: str) -> list[dict]:
    """The ``data`` of every ``event_type`` event keyed by ``key`` in the outbox, oldest first."""
    async with session_factory() as s:
        payloads = (
            await s.execute(
                select(outbox_messages.c.payload)
                .where(outbox_messages.c.key == key, outbox_messages.c.event_type == event_type)
                .order_by(outbox_messages.c.seq)
            )
        ).scalars()
        return [json.loads(p)["data"] for p in payloads]


async def test_a_dues_order_is_bounded_by_what_billing_reports_owed(
    settings, session_factory, client, auth
) -> None:
    no = account_no()
    await billing_reports(session_factory, settings, no, owed=100_000)
    me = auth(accounts=[no])
    too_much = await client.post("/v1/payment-orders", json=order_body(no, 100_001 + 10), headers=me)
    assert too_much.status_code == 422 and too_much.json()["code"] == "amount_exceeds_dues"
    assert too_much.json()["max_payable_fen"] >= 100_000
    top_up = await client.post(
        "/v1/payment-orders", json=order_body(no, 500_000, purpose="prepaid"), headers=me
    )
    assert top_up.status_code == 201, top_up.text
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/payment-orders", json=order_body(no, 100_000), headers=me | key)
    again = await client.post("/v1/payment-orders", json=order_body(no, 100_000), headers=me | key)
    assert first.status_code == again.status_code == 201
    assert (
        first.json()["order_no"] == again.json()["order_no"]
        and again.headers["Idempotent-Replayed"] == "true"
    )
    assert first.json()["status"] == "pending" and first.json()["order_no"].startswith("P")
    other = await client.post("/v1/payment-orders", json=order_body(no, 90_000), headers=me | key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await events_of(session_factory, no, "payment.payment.created") == 2
    not_mine = await client.post("/v1/payment-orders", json=order_body(no, 100), headers=auth(accounts=["1"]))
    assert not_mine.status_code == 404


async def test_unknown_accounts_bills_and_channels_are_refused(
    settings, session_factory, client, auth
) -> None:
    no = account_no()
    me = auth(accounts=[no])
    r = await client.post("/v1/payment-orders", json=order_body(no, 100), headers=me)
    assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    await billing_reports(session_factory, settings, no, owed=5_000, bill_no=f"202611-{no}")
    r = await client.post(
        "/v1/payment-orders", json=order_body(no, 100, purpose="bill", bill_no="202610-999"), headers=me
    )
    assert r.status_code == 404 and r.json()["code"] == "bill_not_found"
    r = await client.post("/v1/payment-orders", json=order_body(no, 100, purpose="bill"), headers=me)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    r = await client.post("/v1/payment-orders", json=order_body(no, 100, channel="paypal"), headers=me)
    assert r.status_code == 422
    r = await client.post("/v1/payment-orders", json=order_body(no, 100, channel="counter"), headers=me)
    assert r.status_code == 422 and r.json()["code"] == "unknown_channel"  # only a cashier takes cash
    r = await client.post("/v1/payment-orders", json=order_body(no, 0), headers=me)
    assert r.status_code == 422


async def test_the_counter_takes_cash_and_the_order_succeeds(settings, session_factory, client, auth) -> None:
    no = account_no()
    await billing_reports(session_factory, settings, no, owed=30_000)
    cashier = auth("billing_clerk", subject="cashier07")
    r = await client.post(
        "/v1/payment-orders", json=order_body(no, 30_000, channel="counter"), headers=cashier
    )
    assert r.status_code == 201, r.text
    order_no = r.json()["order_no"]
    assert r.json()["pay_request"] is None
    paid = await client.post(
        f"/v1/payment-orders/{order_no}/counter-receipt", json={"shift_id": "2026-11-23-A"}, headers=cashier
    )
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
    again = await client.post(
        f"/v1/payment-orders/{order_no}/counter-receipt", json={"shift_id": "2026-11-23-A"}, headers=cashier
    )
    assert again.status_code == 409 and again.json()["code"] == "order_not_pending"
    assert await events_of(session_factory, no, "payment.payment.succeeded") == 1
    async with session_factory() as s:
        order = (await s.execute(select(PaymentOrder).where(PaymentOrder.order_no == order_no))).scalar_one()
    assert order.cashier == {"cashier": "cashier07", "shift_id": "2026-11-23-A"}
    seen = await client.get(f"/v1/payment-orders/{order_no}", headers=auth(accounts=[no]))
    assert seen.status_code == 200 and seen.json()["status"] == "succeeded"
    hidden = await client.get(f"/v1/payment-orders/{order_no}", headers=auth(accounts=["1"]))
    assert hidden.status_code == 404


async def _pending_orders(settings, session_factory, n: int) -> list[PaymentOrder]:
    made = []
    for _ in range(n):
        no = account_no()
        await billing_reports(session_factory, settings, no, owed=10_000)
        async with UnitOfWork(session_factory, settings) as uow:
            order = await orders.create_order(
                uow,
                principal=_resident(no),
                data=orders.NewOrder(
                    account_no=no, purpose=orders.Purpose.DUES, amount_fen=9_999, channel="wechat"
                ),
                now=utcnow(),
                ttl=timedelta(minutes=15),
            )
            await uow.commit()
        made.append(order)
    return made


def _resident(no: str):
    from utilis_shared.auth import Principal

    return Principal(subject=f"r-{no}", kind="resident", account_nos=frozenset({no}), channel="mobile-app")


def _notice(order: PaymentOrder, status: str = "succeeded", amount: int | None = None) -> orders.Notice:
    return orders.Notice(
        provider="wechat",
        provider_txn_id=f"4200{order.order_no[-10:]}",
        order_no=order.order_no,
        amount_fen=order.amount_fen if amount is None else amount,
        status=status,
        paid_at=datetime.now(UTC),
        raw={},
    )


async def _apply(session_factory, settings, notice: orders.Notice) -> Outcome:
    async with UnitOfWork(session_factory, settings) as uow:
        outcome = await orders.apply_notice(uow, notice)
        await uow.commit()
        return outcome


async def test_notices_delivered_three_times_concurrently_and_out_of_order_apply_once(
    settings, session_factory
) -> None:
    made = await _pending_orders(settings, session_factory, 40)
    deliveries = [_notice(o) for o in made for _ in range(3)]
    random.shuffle(deliveries)
    outcomes = await asyncio.gather(*(_apply(session_factory, settings, n) for n in deliveries))
    assert outcomes.count(Outcome.APPLIED) == 40 and outcomes.count(Outcome.DUPLICATE) == 80
    nos = [o.account_no for o in made]
    async with session_factory() as s:
        succeeded = await s.scalar(
            select(func.count())
            .select_from(outbox_messages)
            .where(
                outbox_messages.c.key.in_(nos), outbox_messages.c.event_type == "payment.payment.succeeded"
            )
        )
        statuses = (
            await s.execute(select(PaymentOrder.status).where(PaymentOrder.account_no.in_(nos)))
        ).scalars()
        recorded = await s.scalar(
            select(func.count())
            .select_from(ProviderCallback)
            .where(ProviderCallback.order_no.in_([o.order_no for o in made]))
        )
    assert succeeded == 40 and set(statuses) == {"succeeded"} and recorded == 120


async def test_a_success_for_a_closed_order_opens_one_refund_case(settings, session_factory) -> None:
    (order,) = await _pending_orders(settings, session_factory, 1)
    async with UnitOfWork(session_factory, settings) as uow:
        await orders.close_order(uow, order_no=order.order_no, reason="expired", now=utcnow())
        await uow.commit()
    late = _notice(order)
    assert await _apply(session_factory, settings, late) is Outcome.REFUND_CASE
    assert await _apply(session_factory, settings, late) is Outcome.REFUND_CASE
    wrong = _notice((await _pending_orders(settings, session_factory, 1))[0], amount=1)
    assert await _apply(session_factory, settings, wrong) is Outcome.AMOUNT_MISMATCH
    async with session_factory() as s:
        cases = (
            (
                await s.execute(
                    select(RefundCase.reason).where(RefundCase.order_no.in_([order.order_no, wrong.order_no]))
                )
            )
            .scalars()
            .all()
        )
    assert sorted(cases) == ["amount_mismatch", "order_closed"]
    assert await events_of(session_factory, order.account_no, "payment.refund_case.opened") == 1
    assert await events_of(session_factory, order.account_no, "payment.payment.succeeded") == 0


async def test_billing_events_move_the_dues_forward_only(settings, session_factory) -> None:
    from payment.adapters.orm import AccountDues

    no = account_no()
    later, earlier = datetime.now(UTC), datetime.now(UTC) - timedelta(hours=1)
    async with UnitOfWork(session_factory, settings) as uow:
        for owed, when in ((200, later), (999, earlier)):
            event = Event(
                type="billing.balance.changed",
                source="metering-and-billing",
                subject=no,
                time=when,
                data={
                    "account_no": no,
                    "owed_fen": owed,
                    "late_fee_fen": 0,
                    "prepaid_fen": 0,
                    "open_bills": 1,
                },
            )
            await dues.balance_changed(uow, event)
        await uow.commit()
    async with session_factory() as s:
        assert (await s.get(AccountDues, no)).owed_fen == 200
