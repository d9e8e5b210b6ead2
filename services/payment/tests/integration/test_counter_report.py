"""The counter's shift report against the real PostgreSQL: receipts recorded with the cashier's method in
the order's transaction; a cashier's totals for a shift by method; a supervisor's view of every cashier
and shift of a business day; who may ask."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from payment.adapters.orm_withholding import CounterReceiptRow
from utilis_shared.timeutil import business_today

from .test_orders import account_no, billing_reports


async def take(client, auth, cashier: str, shift: str, amount: int, session_factory, settings, **receipt):
    no = account_no()
    await billing_reports(session_factory, settings, no, owed=amount)
    staff = auth("billing_clerk", subject=cashier)
    order = await client.post(
        "/v1/payment-orders",
        json={"account_no": no, "purpose": "dues", "amount_fen": amount, "channel": "counter"},
        headers=staff,
    )
    assert order.status_code == 201, order.text
    paid = await client.post(
        f"/v1/payment-orders/{order.json()['order_no']}/counter-receipt",
        json={"shift_id": shift, **receipt},
        headers=staff,
    )
    assert paid.status_code == 200, paid.text
    return order.json()["order_no"]


async def test_a_cashier_sees_their_shift_by_method_and_a_supervisor_sees_the_day(
    settings, session_factory, client, auth
) -> None:
    shift = f"S-{uuid.uuid4().hex[:8]}"
    wang, li = f"cashier-wang-{shift}", f"cashier-li-{shift}"
    await take(client, auth, wang, shift, 10_050, session_factory, settings, method="cash")
    await take(client, auth, wang, shift, 2_000, session_factory, settings, method="cash")
    await take(
        client, auth, wang, shift, 30_000, session_factory, settings, method="pos", pos_reference="T1-0001"
    )
    await take(client, auth, wang, shift, 700, session_factory, settings)  # method not stated
    await take(
        client, auth, li, shift, 5_500, session_factory, settings, method="pos", pos_reference="T2-0009"
    )

    mine = await client.get(f"/v1/counter-shifts/{shift}/totals", headers=auth("billing_clerk", subject=wang))
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["scope"] == "own" and [c["cashier"] for c in body["cashiers"]] == [wang]
    t = body["totals"]
    assert (t["count"], t["amount"]["amount_fen"]) == (4, 42_750)
    assert (t["cash"]["count"], t["cash"]["amount"]["amount_fen"]) == (2, 12_050)
    assert (t["pos"]["count"], t["pos"]["amount"]["amount_fen"]) == (1, 30_000)
    assert (t["unspecified"]["count"], t["unspecified"]["amount"]["amount_fen"]) == (1, 700)
    assert body["cashiers"][0]["business_days"] == [business_today().isoformat()]

    boss = await client.get(f"/v1/counter-shifts/{shift}/totals", headers=auth("billing_supervisor"))
    assert boss.status_code == 200 and boss.json()["scope"] == "all"
    assert [c["cashier"] for c in boss.json()["cashiers"]] == sorted([wang, li])
    assert boss.json()["totals"]["amount"]["amount_fen"] == 48_250
    assert boss.json()["totals"]["pos"]["amount"]["amount_fen"] == 35_500

    stranger = await client.get(
        f"/v1/counter-shifts/{shift}/totals", headers=auth("billing_clerk", subject="x")
    )
    assert stranger.status_code == 404 and stranger.json()["code"] == "shift_not_found"
    assert (await client.get(f"/v1/counter-shifts/{shift}/totals", headers=auth("agent"))).status_code == 403

    day = await client.get(f"/v1/counter-totals?day={business_today()}", headers=auth("billing_supervisor"))
    assert day.status_code == 200, day.text
    ours = [g for g in day.json()["shifts"] if g["shift_id"] == shift]
    assert [(g["cashier"], g["totals"]["count"]) for g in ours] == sorted([(li, 1), (wang, 4)])
    assert day.json()["totals"]["amount"]["amount_fen"] >= 48_250
    clerk_day = await client.get(f"/v1/counter-totals?day={business_today()}", headers=auth("billing_clerk"))
    assert clerk_day.status_code == 403
    bad_day = await client.get("/v1/counter-totals?day=2026-13-01", headers=auth("billing_supervisor"))
    assert bad_day.status_code == 422
    empty = await client.get("/v1/counter-totals?day=2001-01-01", headers=auth("billing_supervisor"))
    assert empty.status_code == 200 and empty.json()["totals"]["count"] == 0


async def test_a_pos_receipt_needs_its_reference_and_a_receipt_is_recorded_once(
    settings, session_factory, client, auth
) -> None:
    no = account_no()
    await billing_reports(session_factory, settings, no, owed=1_000)
    staff = auth("billing_clerk")
    order = await client.post(
        "/v1/payment-orders",
        json={"account_no": no, "purpose": "dues", "amount_fen": 1_000, "channel": "counter"},
        headers=staff,
    )
    url = f"/v1/payment-orders/{order.json()['order_no']}/counter-receipt"
    no_ref = await client.post(url, json={"shift_id": "S9", "method": "pos"}, headers=staff)
    assert no_ref.status_code == 422 and no_ref.json()["code"] == "validation_failed"
    wrong = await client.post(url, json={"shift_id": "S9", "method": "cheque"}, headers=staff)
    assert wrong.status_code == 422
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"shift_id": "S9", "method": "cash"}
    first = await client.post(url, json=body, headers=staff | key)
    again = await client.post(url, json=body, headers=staff | key)
    twice = await client.post(url, json=body, headers=staff)
    assert (first.status_code, again.status_code, twice.status_code) == (200, 200, 409)
    async with session_factory() as s:
        rows = await s.scalar(
            select(func.count())
            .select_from(CounterReceiptRow)
            .where(CounterReceiptRow.order_no == order.json()["order_no"])
        )
    assert rows == 1


async def test_a_cashier_hands_the_shift_over_once_and_the_shift_then_takes_no_more_receipts(
    settings, session_factory, client, auth
) -> None:
    """交班: the cash counted against the receipts' cash (the difference recorded and sent as an event);
    a second hand-over is refused; a receipt after it is refused and its order stays pending; another
    cashier's shift of the same id is untouched; the supervisor's day view shows the hand-over."""
    import asyncio

    from .test_orders import events

    shift = f"S-{uuid.uuid4().hex[:8]}"
    zhao, qian = f"cashier-zhao-{shift}", f"cashier-qian-{shift}"
    await take(client, auth, zhao, shift, 12_000, session_factory, settings, method="cash")
    await take(client, auth, zhao, shift, 3_050, session_factory, settings, method="cash")
    await take(
        client, auth, zhao, shift, 9_900, session_factory, settings, method="pos", pos_reference="T1-7"
    )
    await take(client, auth, qian, shift, 4_000, session_factory, settings, method="cash")
    me = auth("billing_clerk", subject=zhao)
    url = f"/v1/counter-shifts/{shift}/hand-over"

    bad = await client.post(url, json={"counted_cash_fen": -1}, headers=me)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert (await client.post(url, json={"counted_cash_fen": 0}, headers=auth("agent"))).status_code == 403

    body = {"counted_cash_fen": 14_950, "note": "短款 1 元"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answers = await asyncio.gather(*(client.post(url, json=body, headers=me | key) for _ in range(2)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    h = answers[0].json()
    assert answers[1].json()["handover_id"] == h["handover_id"]  # the retry is the same hand-over
    assert (h["cashier"], h["receipts_count"], h["cash"]["amount_fen"], h["pos"]["amount_fen"]) == (
        zhao,
        3,
        15_050,
        9_900,
    )
    assert (h["counted_cash"]["amount_fen"], h["difference"]["amount_fen"]) == (14_950, -100)
    again = await client.post(url, json=body, headers=me)
    assert again.status_code == 409 and again.json()["code"] == "shift_handed_over"
    (event,) = await events(session_factory, shift, "payment.counter_shift.closed")
    assert (event["cashier"], event["cash_fen"], event["difference_fen"]) == (zhao, 15_050, -100)

    # a receipt after the hand-over: refused, the order stays pending, no receipt recorded
    no = account_no()
    await billing_reports(session_factory, settings, no, owed=500)
    late = await client.post(
        "/v1/payment-orders",
        json={"account_no": no, "purpose": "dues", "amount_fen": 500, "channel": "counter"},
        headers=me,
    )
    refused = await client.post(
        f"/v1/payment-orders/{late.json()['order_no']}/counter-receipt",
        json={"shift_id": shift, "method": "cash"},
        headers=me,
    )
    assert refused.status_code == 409 and refused.json()["code"] == "shift_handed_over"
    order = await client.get(f"/v1/payment-orders/{late.json()['order_no']}", headers=me)
    assert order.json()["status"] == "pending"
    async with session_factory() as s:
        assert (
            await s.scalar(select(func.count()).where(CounterReceiptRow.order_no == late.json()["order_no"]))
            == 0
        )
    # the other cashier of the same shift id still takes payments
    await take(client, auth, qian, shift, 1_000, session_factory, settings, method="cash")

    day = await client.get(f"/v1/counter-totals?day={business_today()}", headers=auth("billing_supervisor"))
    ours = {g["cashier"]: g for g in day.json()["shifts"] if g["shift_id"] == shift}
    assert ours[zhao]["handover"]["difference"]["amount_fen"] == -100
    assert ours[qian]["handover"] is None
