"""Refund cases (money no open order could take) resolved by billing staff: applied as a prepaid top-up (a
succeeded prepaid order billing settles, its event in the outbox) or refunded through the refund flow with
four eyes and the provider's notice (nothing reversed at billing); idempotent, audited, access-checked,
problem+json errors."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from payment.adapters.orm import PaymentOrder, RefundCase

from .test_callbacks import new_order
from .test_orders import events


async def a_case(client, auth, session_factory, settings, simulator, amount: int = 12_345) -> dict:
    """A WeChat order cancelled by its payer, then paid anyway: one open refund case."""
    order = await new_order(client, auth, session_factory, settings, simulator, "wechat", amount)
    n = order["order_no"]
    r = await client.post(
        f"/v1/payment-orders/{n}/cancellation", headers=auth(accounts=[order["account_no"]])
    )
    assert r.json()["status"] == "closed"
    late = simulator.callback("wechat", n, amount)
    assert (await client.post(late.path, content=late.body, headers=late.headers)).status_code == 200
    async with session_factory() as s:
        case = (await s.execute(select(RefundCase).where(RefundCase.order_no == n))).scalar_one()
    assert case.status == "open" and case.paid_at is not None
    return {"id": str(case.id), "order_no": n, "account_no": order["account_no"], "txn": case.provider_txn_id}


async def test_a_case_applied_as_a_top_up_becomes_a_prepaid_payment_billing_settles(
    client, auth, session_factory, settings, simulator
) -> None:
    case = await a_case(client, auth, session_factory, settings, simulator, amount=12_345)
    clerk = auth("billing_clerk", subject="clerk-topup")
    listed = await client.get("/v1/refund-cases?status=open&limit=200", headers=auth("analyst"))
    assert listed.status_code == 200 and case["id"] in [c["case_id"] for c in listed.json()["items"]]
    key = str(uuid.uuid4())
    body = {"resolution": "top_up", "note": "用户确认转为预存"}
    url = f"/v1/refund-cases/{case['id']}/resolution"
    r = await client.post(url, json=body, headers={**clerk, "Idempotency-Key": key})
    assert r.status_code == 200, r.text
    read = r.json()
    assert read["status"] == "applied" and read["resolved_by"] == "clerk-topup"
    assert read["amount"] == {"amount_fen": 12_345, "currency": "CNY"} and read["refund_no"] is None
    top_up_no = read["applied_order_no"]
    # A retry with the same key gets the same answer; the same key with another body is refused.
    again = await client.post(url, json=body, headers={**clerk, "Idempotency-Key": key})
    assert again.json() == read and again.headers["Idempotent-Replayed"] == "true"
    reused = await client.post(
        url, json={"resolution": "refund", "note": "改为退款"}, headers={**clerk, "Idempotency-Key": key}
    )
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    # Resolved once: another resolution is a conflict.
    twice = await client.post(url, json={"resolution": "refund", "note": "改为退款"}, headers=clerk)
    assert twice.status_code == 409 and twice.json()["code"] == "refund_case_not_open"
    assert twice.headers["content-type"].startswith("application/problem+json")
    async with session_factory() as s:
        top_up = (
            await s.execute(select(PaymentOrder).where(PaymentOrder.order_no == top_up_no))
        ).scalar_one()
        closed = (
            await s.execute(select(PaymentOrder.status).where(PaymentOrder.order_no == case["order_no"]))
        ).scalar_one()
    assert (top_up.status, top_up.purpose, top_up.amount_fen) == ("succeeded", "prepaid", 12_345)
    assert top_up.provider_txn_id == case["txn"] and str(top_up.refund_case_id) == case["id"]
    assert top_up.account_no == case["account_no"] and closed == "closed"
    succeeded = await events(session_factory, case["account_no"], "payment.payment.succeeded")
    assert [(e["payment_id"], e["purpose"], e["amount_fen"]) for e in succeeded] == [
        (top_up_no, "prepaid", 12_345)
    ]
    resolved = await events(session_factory, case["account_no"], "payment.refund_case.resolved")
    assert [(e["case_id"], e["resolution"], e["applied_payment_id"]) for e in resolved] == [
        (case["id"], "top_up", top_up_no)
    ]
    one = await client.get(f"/v1/refund-cases/{case['id']}", headers=clerk)
    assert one.status_code == 200 and one.json()["status"] == "applied"


async def test_a_case_refunded_needs_four_eyes_and_the_providers_notice_and_reverses_nothing(
    client, auth, session_factory, settings, simulator
) -> None:
    case = await a_case(client, auth, session_factory, settings, simulator, amount=6_600)
    clerk = auth("billing_supervisor", subject="sup-a")
    url = f"/v1/refund-cases/{case['id']}/resolution"
    r = await client.post(url, json={"resolution": "refund", "note": "订单已关闭，原路退回"}, headers=clerk)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunding"
    refund_no = r.json()["refund_no"]
    requested = await events(session_factory, case["account_no"], "payment.refund_case.refund_requested")
    assert [(e["refund_no"], e["amount_fen"]) for e in requested] == [(refund_no, 6_600)]
    # Money leaves: not approved by the person who chose to refund.
    own = await client.post(f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=clerk)
    assert own.status_code == 409 and own.json()["code"] == "refund_not_authorized"
    boss = auth("billing_supervisor", subject="sup-b")
    ok = await client.post(f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=boss)
    assert ok.status_code == 200 and ok.json()["status"] == "submitted", ok.text
    notice = simulator.wechat_refund_callback(
        case["order_no"], 6_600, txn_id=case["txn"], out_refund_no=refund_no, total_fen=6_600
    )
    assert (await client.post(notice.path, content=notice.body, headers=notice.headers)).status_code == 200
    async with session_factory() as s:
        row = (await s.execute(select(RefundCase).where(RefundCase.id == uuid.UUID(case["id"])))).scalar_one()
        order = (
            await s.execute(select(PaymentOrder).where(PaymentOrder.order_no == case["order_no"]))
        ).scalar_one()
    assert (row.status, row.refund_no, row.resolved_by) == ("refunded", refund_no, "sup-b")
    assert (order.status, order.refunded_fen) == ("closed", 0)
    # Billing never settled this money: nothing for it to reverse, and no top-up either.
    assert await events(session_factory, case["account_no"], "payment.payment.refunded") == []
    assert await events(session_factory, case["account_no"], "payment.payment.succeeded") == []
    resolved = await events(session_factory, case["account_no"], "payment.refund_case.resolved")
    assert [(e["resolution"], e["refund_no"], e["status"]) for e in resolved] == [
        ("refund", refund_no, "refunded")
    ]


async def test_a_rejected_refund_reopens_the_case(client, auth, session_factory, settings, simulator) -> None:
    case = await a_case(client, auth, session_factory, settings, simulator, amount=900)
    url = f"/v1/refund-cases/{case['id']}/resolution"
    clerk = auth("billing_clerk", subject="clerk-r")
    r = await client.post(url, json={"resolution": "refund", "note": "退回"}, headers=clerk)
    refund_no = r.json()["refund_no"]
    boss = auth("billing_supervisor", subject="sup-r")
    no = await client.post(
        f"/v1/refunds/{refund_no}/decision", json={"approve": False, "note": "先联系用户"}, headers=boss
    )
    assert no.json()["status"] == "rejected"
    for event_type, status in (
        ("payment.refund.requested", "requested"),
        ("payment.refund.rejected", "rejected"),
    ):
        refund_events = await events(session_factory, case["account_no"], event_type)
        assert [
            (e["refund_no"], e["refund_case_id"], e["amount_fen"], e["status"]) for e in refund_events
        ] == [(refund_no, case["id"], 900, status)]
    reopened = await events(session_factory, case["account_no"], "payment.refund_case.reopened")
    assert [(e["refund_no"], e["reason"], e["status"]) for e in reopened] == [
        (refund_no, "refund_rejected", "open")
    ]
    again = await client.post(url, json={"resolution": "top_up", "note": "用户要求预存"}, headers=clerk)
    assert again.status_code == 200 and again.json()["status"] == "applied", again.text


async def test_only_billing_staff_resolve_and_bad_input_is_a_problem(
    client, auth, session_factory, settings, simulator
) -> None:
    case = await a_case(client, auth, session_factory, settings, simulator, amount=500)
    url = f"/v1/refund-cases/{case['id']}/resolution"
    body = {"resolution": "top_up", "note": "转预存"}
    for headers in (auth("agent"), auth("analyst"), auth(accounts=[case["account_no"]]), {}):
        r = await client.post(url, json=body, headers=headers)
        assert r.status_code in (401, 403) and r.headers["content-type"].startswith("application/problem")
    r = await client.get("/v1/refund-cases", headers=auth(accounts=[case["account_no"]]))
    assert r.status_code == 403
    clerk = auth("billing_clerk")
    r = await client.post(url, json={"resolution": "keep", "note": "x1"}, headers=clerk)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    r = await client.post(f"/v1/refund-cases/{uuid.uuid4()}/resolution", json=body, headers=clerk)
    assert r.status_code == 404 and r.json()["code"] == "refund_case_not_found"
    r = await client.post("/v1/refund-cases/not-a-uuid/resolution", json=body, headers=clerk)
    assert r.status_code == 422
    r = await client.get("/v1/refund-cases?cursor=%%%", headers=clerk)
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
    async with session_factory() as s:
        assert (
            await s.execute(select(RefundCase.status).where(RefundCase.id == uuid.UUID(case["id"])))
        ).scalar_one() == "open"


async def test_only_a_supervisor_dismisses_a_case_which_then_moves_no_money(
    client, auth, session_factory, settings, simulator
) -> None:
    case = await a_case(client, auth, session_factory, settings, simulator, amount=4_200)
    url = f"/v1/refund-cases/{case['id']}/resolution"
    body = {"resolution": "dismiss", "note": "微信已自行原路退回，见对账单"}
    clerk = await client.post(url, json=body, headers=auth("billing_clerk"))
    assert clerk.status_code == 403 and clerk.json()["code"] == "refund_case_dismissal_not_authorized"
    r = await client.post(url, json=body, headers=auth("billing_supervisor", subject="supervisor-dismiss"))
    assert r.status_code == 200, r.text
    read = r.json()
    assert (read["status"], read["resolved_by"], read["refund_no"], read["applied_order_no"]) == (
        "dismissed",
        "supervisor-dismiss",
        None,
        None,
    )
    # Nothing moved: no refund, no top-up, no payment event; one resolved event; and it stays dismissed.
    assert await events(session_factory, case["account_no"], "payment.refund_case.refund_requested") == []
    succeeded = await events(session_factory, case["account_no"], "payment.payment.succeeded")
    assert all(e["purpose"] != "prepaid" for e in succeeded)
    resolved = await events(session_factory, case["account_no"], "payment.refund_case.resolved")
    assert [(e["case_id"], e["resolution"], e["status"]) for e in resolved] == [
        (case["id"], "dismiss", "dismissed")
    ]
    top_up = {"resolution": "top_up", "note": "转预存"}
    later = await client.post(url, json=top_up, headers=auth("billing_clerk"))
    assert later.status_code == 409 and later.json()["code"] == "refund_case_not_open"
