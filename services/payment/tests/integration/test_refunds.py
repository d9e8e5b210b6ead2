"""Refunds: requested by staff, approved by a supervisor who is not the requester, completed by the
provider's verified refund notice (once) or at once at the counter; never more than the payment; the event
billing reverses from. E-invoice requests."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from payment.adapters.orm import PaymentOrder
from payment.service_layer import dues
from utilis_shared.db import UnitOfWork, outbox_messages
from utilis_shared.events import Event


async def paid_order(client, auth, session_factory, settings, simulator, channel: str, amount: int = 20_000):
    no = f"4{uuid.uuid4().int % 10**10:010d}"
    async with UnitOfWork(session_factory, settings) as uow:
        await dues.balance_changed(
            uow,
            Event(
                type="billing.balance.changed",
                source="metering-and-billing",
                subject=no,
                data={
                    "account_no": no,
                    "owed_fen": amount,
                    "late_fee_fen": 0,
                    "prepaid_fen": 0,
                    "open_bills": 1,
                },
            ),
        )
        await uow.commit()
    staff = auth("billing_clerk", subject="cashier01")
    body = {"account_no": no, "purpose": "dues", "amount_fen": amount, "channel": channel}
    order = (await client.post("/v1/payment-orders", json=body, headers=staff)).json()
    if channel == "counter":
        r = await client.post(
            f"/v1/payment-orders/{order['order_no']}/counter-receipt", json={"shift_id": "S1"}, headers=staff
        )
    else:
        simulator.register_order(channel, order["order_no"], amount)
        cb = simulator.callback(channel, order["order_no"], amount)
        r = await client.post(cb.path, content=cb.body, headers=cb.headers)
    assert r.status_code == 200, r.text
    return order


async def refunded_events(session_factory, no: str) -> list[dict]:
    async with session_factory() as s:
        rows = (
            await s.execute(
                select(outbox_messages.c.payload).where(
                    outbox_messages.c.key == no, outbox_messages.c.event_type == "payment.payment.refunded"
                )
            )
        ).scalars()
        return [json.loads(p)["data"] for p in rows]


async def refund_events(session_factory, no: str) -> list[tuple]:
    """The ``payment.refund.*`` events of an account, in outbox order: (type, refund no, amount, status)."""
    async with session_factory() as s:
        rows = (
            await s.execute(
                select(outbox_messages.c.event_type, outbox_messages.c.payload)
                .where(outbox_messages.c.key == no, outbox_messages.c.event_type.like("payment.refund.%"))
                .order_by(outbox_messages.c.seq)
            )
        ).all()
    out = []
    for event_type, payload in rows:
        data = json.loads(payload)["data"]
        assert data["refund_case_id"] is None and data["account_no"] == no
        out.append((event_type, data["refund_no"], data["payment_id"], data["amount_fen"], data["status"]))
    return out


async def test_a_counter_refund_needs_four_eyes_and_never_exceeds_the_payment(
    client, auth, session_factory, settings, simulator
) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "counter")
    n, no = order["order_no"], order["account_no"]
    clerk = auth("billing_clerk", subject="clerk01")
    r = await client.post(
        f"/v1/payment-orders/{n}/refunds", json={"amount_fen": 20_001, "reason": "多缴"}, headers=clerk
    )
    assert r.status_code == 422 and r.json()["code"] == "refund_exceeds_payment"
    r = await client.post(
        f"/v1/payment-orders/{n}/refunds", json={"amount_fen": 5_000, "reason": "多缴"}, headers=clerk
    )
    assert r.status_code == 201 and r.json()["status"] == "requested", r.text
    refund_no = r.json()["refund_no"]
    # The remaining 15,000 fen can still be asked for; more cannot (the pending request counts).
    r = await client.post(
        f"/v1/payment-orders/{n}/refunds", json={"amount_fen": 15_001, "reason": "x2"}, headers=clerk
    )
    assert r.status_code == 422
    r = await client.post(f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=clerk)
    assert r.status_code == 403
    own = auth("billing_supervisor", subject="clerk01")
    r = await client.post(f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=own)
    assert r.status_code == 409 and r.json()["code"] == "refund_not_authorized"
    boss = auth("billing_supervisor", subject="boss01")
    r = await client.post(
        f"/v1/refunds/{refund_no}/decision", json={"approve": True, "note": "核实"}, headers=boss
    )
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    events = await refunded_events(session_factory, no)
    assert [(e["refund_fen"], e["refunded_fen"], e["status"]) for e in events] == [
        (5_000, 5_000, "succeeded")
    ]
    r = await client.post(f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=boss)
    assert r.status_code == 409 and r.json()["code"] == "refund_not_pending"
    # Every step of the refund is an event; refused requests and decisions emit nothing.
    assert await refund_events(session_factory, no) == [
        ("payment.refund.requested", refund_no, n, 5_000, "requested"),
        ("payment.refund.approved", refund_no, n, 5_000, "succeeded"),
    ]


async def test_a_rejected_refund_frees_its_amount(client, auth, session_factory, settings, simulator) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "alipay", amount=3_000)
    n, no = order["order_no"], order["account_no"]
    clerk = auth("billing_clerk", subject="clerk02")
    first = await client.post(
        f"/v1/payment-orders/{n}/refunds", json={"amount_fen": 3_000, "reason": "重复缴费"}, headers=clerk
    )
    r = await client.post(
        f"/v1/refunds/{first.json()['refund_no']}/decision",
        json={"approve": False, "note": "未重复"},
        headers=auth("billing_supervisor", subject="boss02"),
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    second = await client.post(
        f"/v1/payment-orders/{n}/refunds", json={"amount_fen": 3_000, "reason": "重复缴费"}, headers=clerk
    )
    assert second.status_code == 201, second.text
    assert await refund_events(session_factory, no) == [
        ("payment.refund.requested", first.json()["refund_no"], n, 3_000, "requested"),
        ("payment.refund.rejected", first.json()["refund_no"], n, 3_000, "rejected"),
        ("payment.refund.requested", second.json()["refund_no"], n, 3_000, "requested"),
    ]
    assert await refunded_events(session_factory, no) == []


async def test_an_online_refund_completes_on_the_providers_notice_once(
    client, auth, session_factory, settings, simulator
) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "wechat", amount=8_000)
    n, no = order["order_no"], order["account_no"]
    r = await client.post(
        f"/v1/payment-orders/{n}/refunds", json={"amount_fen": 8_000, "reason": "误缴"}, headers=auth("agent")
    )
    refund_no = r.json()["refund_no"]
    r = await client.post(
        f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=auth("billing_supervisor")
    )
    assert r.json()["status"] == "submitted"
    assert [(t, status) for t, *_, status in await refund_events(session_factory, no)] == [
        ("payment.refund.requested", "requested"),
        ("payment.refund.approved", "submitted"),
    ]
    async with session_factory() as s:
        txn = (
            await s.execute(select(PaymentOrder.provider_txn_id).where(PaymentOrder.order_no == n))
        ).scalar_one()
    notice = simulator.wechat_refund_callback(n, 8_000, txn_id=txn, out_refund_no=refund_no, total_fen=8_000)
    for _ in range(2):  # the second is a replay: refused, and nothing changes
        await client.post(notice.path, content=notice.body, headers=notice.headers)
    async with session_factory() as s:
        status = (await s.execute(select(PaymentOrder.status).where(PaymentOrder.order_no == n))).scalar_one()
    assert status == "refunded"
    events = await refunded_events(session_factory, no)
    assert [(e["refund_no"], e["refunded_fen"], e["status"]) for e in events] == [
        (refund_no, 8_000, "refunded")
    ]


async def test_invoice_requests(client, auth, session_factory, settings, simulator) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "alipay", amount=3_000)
    me = auth(accounts=[order["account_no"]])
    body = {
        "title_kind": "company",
        "title": "哈尔滨某某物业有限公司",
        "tax_no": "91230103MA1B2C3D4E",
        "email": "a@b.cn",
    }
    r = await client.post(f"/v1/payment-orders/{order['order_no']}/invoice-requests", json=body, headers=me)
    assert r.status_code == 201 and r.json()["amount"]["amount_fen"] == 3_000, r.text
    again = await client.post(
        f"/v1/payment-orders/{order['order_no']}/invoice-requests", json=body, headers=me
    )
    assert again.status_code == 409 and again.json()["code"] == "invoice_already_requested"
    no_tax = {"title_kind": "company", "title": "某公司", "email": "a@b.cn"}
    r = await client.post(f"/v1/payment-orders/{order['order_no']}/invoice-requests", json=no_tax, headers=me)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    other = await client.post(
        f"/v1/payment-orders/{order['order_no']}/invoice-requests", json=body, headers=auth(accounts=["1"])
    )
    assert other.status_code == 404
