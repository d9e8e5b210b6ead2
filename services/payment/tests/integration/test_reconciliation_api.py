"""Reconciliation (对账) persisted and served, against the real PostgreSQL: a provider's statement (made by
the provider simulator) imported through the API and reconciled against the payments that succeeded here
and the settlements billing reported (``billing.settlement.*`` events through the consumer's handler and
inbox).
Each test works on a business day of its own, so runs do not see each other's payments."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

from sqlalchemy import func, select

from payment.adapters.orm import (
    BillingSettlement,
    PaymentOrder,
    ReconciliationCase,
    ReconciliationRun,
    StatementImport,
)
from payment.adapters.providers.simulator import StatementEntry
from payment.service_layer import dues, settlements
from utilis_shared.db import UnitOfWork, outbox_messages
from utilis_shared.events import Event
from utilis_shared.inbox import EventConsumer
from utilis_shared.timeutil import BUSINESS_TZ

_days = itertools.count()


def a_day() -> date:
    """A past business day no other test uses."""
    return date(2026, 3, 1) + timedelta(days=4 * next(_days))


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=BUSINESS_TZ).astimezone(UTC)


def account_no() -> str:
    return f"7{uuid.uuid4().int % 10**10:010d}"


def url(provider: str, day: date) -> str:
    return f"/v1/reconciliations?provider={provider}&day={day.isoformat()}"


async def paid_through_callbacks(client, auth, session_factory, settings, simulator, provider, day, amounts):
    """Orders created through the API and paid by the provider's signed callback (paid on ``day``)."""
    out = []
    for i, amount in enumerate(amounts):
        no = account_no()
        async with UnitOfWork(session_factory, settings) as uow:
            await dues.balance_changed(
                uow,
                Event(
                    type="billing.balance.changed",
                    source="metering-and-billing",
                    subject=no,
                    data={"account_no": no, "owed_fen": amount, "late_fee_fen": 0, "prepaid_fen": 0,
                          "open_bills": 1},
                ),
            )  # fmt: skip
            await uow.commit()
        r = await client.post(
            "/v1/payment-orders",
            json={"account_no": no, "purpose": "dues", "amount_fen": amount, "channel": provider},
            headers=auth(accounts=[no]),
        )
        assert r.status_code == 201, r.text
        order_no = r.json()["order_no"]
        simulator.register_order(provider, order_no, amount)
        cb = simulator.callback(provider, order_no, amount, paid_at=at(day, 10 + i, 5))
        delivered = await client.post(cb.path, content=cb.body, headers=cb.headers)
        assert delivered.status_code == 200, delivered.text
        out.append(await order_row(session_factory, order_no))
    assert {o.status for o in out} == {"succeeded"}
    return out


async def order_row(session_factory, order_no: str) -> PaymentOrder:
    async with session_factory() as s:
        return (await s.execute(select(PaymentOrder).where(PaymentOrder.order_no == order_no))).scalar_one()


async def paid_rows(session_factory, provider: str, paid: list[tuple[int, datetime]]) -> list[PaymentOrder]:
    """Succeeded orders written as rows (the callbacks' path is covered above and in test_callbacks)."""
    rows = []
    async with session_factory() as s:
        for amount, paid_at in paid:
            n = uuid.uuid4().int % 10**10
            rows.append(
                PaymentOrder(
                    order_no=f"P{paid_at.astimezone(BUSINESS_TZ):%Y%m%d}{n:010d}",
                    account_no=account_no(),
                    purpose="prepaid",
                    amount_fen=amount,
                    channel=provider,
                    provider=provider,
                    status="succeeded",
                    provider_txn_id=f"T{uuid.uuid4().hex[:20]}",
                    refunded_fen=0,
                    created_by="test",
                    expires_at=paid_at + timedelta(minutes=15),
                    paid_at=paid_at,
                    version=1,
                )
            )
        s.add_all(rows)
        await s.commit()
    return rows


def entry(order: PaymentOrder, amount: int | None = None, when: datetime | None = None) -> StatementEntry:
    return StatementEntry(
        order.provider_txn_id, order.order_no, amount or order.amount_fen, when or order.paid_at, fee_fen=0
    )


def settlement_event(order: PaymentOrder, amount: int | None = None) -> Event:
    return Event(
        type="billing.settlement.recorded",
        source="metering-and-billing",
        subject=order.account_no,
        data={
            "payment_id": order.order_no,
            "account_no": order.account_no,
            "amount_fen": amount or order.amount_fen,
            "paid_at": order.paid_at.isoformat(),
            "applied_at": order.paid_at.isoformat(),
            "allocations": [],
            "prepaid_added_fen": amount or order.amount_fen,
            "settled_bill_nos": [],
        },
    )


async def billing_reports(settings, session_factory, *events: Event) -> list[str]:
    """Feed billing's events through the payment consumer's inbox and the settlements handlers."""
    consumer = EventConsumer(
        settings, session_factory, settlements.registry, [settings.topic("billing.events")]
    )
    outcomes = []
    for offset, event in enumerate(events):
        record = SimpleNamespace(
            topic=settings.topic("billing.events"),
            partition=0,
            offset=offset,
            key=event.subject.encode(),
            value=event.to_bytes(),
            headers=[],
        )
        outcomes.append(await consumer.handle_record(record))
    return outcomes


async def settle_all(settings, session_factory, orders: list[PaymentOrder]) -> None:
    outcomes = await billing_reports(settings, session_factory, *(settlement_event(o) for o in orders))
    assert outcomes == ["processed"] * len(orders)


async def cases_of(client, auth, run_id: str, **params) -> list[dict]:
    r = await client.get(
        "/v1/reconciliation-cases", params={"run_id": run_id, "limit": 200, **params}, headers=auth("analyst")
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def count(session_factory, model, *where) -> int:
    async with session_factory() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


# ------------------------------------------------------------------------------------------- acceptance
async def test_a_statement_with_one_missing_one_extra_and_one_wrong_amount_line_yields_exactly_those_cases(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    orders = await paid_through_callbacks(
        client, auth, session_factory, settings, simulator, "wechat", day, [12_345, 20_000, 30_000, 45_600]
    )
    await settle_all(settings, session_factory, orders)
    ok1, ok2, missing, wrong = orders
    extra = StatementEntry("4200000000999", "P209901010000000001", 777, at(day, 15), fee_fen=0)
    statement = simulator.statement_csv(
        "wechat", day, [entry(ok1), entry(ok2), entry(wrong, amount=45_500), extra]
    )
    clerk = auth("billing_clerk", subject="clerk-li")

    r = await client.post(
        url("wechat", day), content=statement, headers={**clerk, "Content-Type": "text/csv"}
    )

    assert r.status_code == 201, r.text
    run = r.json()
    assert (run["status"], run["cases_count"], run["lines_count"], run["matched_count"]) == (
        "current",
        3,
        4,
        3,
    )
    assert run["case_counts"] == {"open": 3, "resolved": 0, "dismissed": 0}
    assert run["balanced"] is False and run["replayed"] is False
    assert run["run_by"] == "clerk-li"
    assert run["totals"]["statement"]["payments_count"] == 4
    assert run["totals"]["statement"]["payments"] == {
        "amount_fen": 12_345 + 20_000 + 45_500 + 777,
        "currency": "CNY",
    }
    assert run["totals"]["recorded"]["payments_count"] == 4
    assert run["totals"]["recorded"]["payments"]["amount_fen"] == 12_345 + 20_000 + 30_000 + 45_600
    cases = await cases_of(client, auth, run["id"])
    assert sorted((c["kind"], c["against"], c["order_no"], c["status"]) for c in cases) == sorted(
        [
            ("missing_at_provider", "provider", missing.order_no, "open"),
            ("amount_differs", "provider", wrong.order_no, "open"),
            ("missing_here", "provider", extra.order_no, "open"),
        ]
    )
    by_kind = {c["kind"]: c for c in cases}
    assert by_kind["amount_differs"]["expected"]["amount_fen"] == 45_600
    assert by_kind["amount_differs"]["actual"]["amount_fen"] == 45_500
    assert (
        by_kind["missing_here"]["expected"] is None and by_kind["missing_here"]["actual"]["amount_fen"] == 777
    )
    assert by_kind["missing_at_provider"]["actual"] is None
    assert (
        await count(session_factory, ReconciliationCase, ReconciliationCase.run_id == uuid.UUID(run["id"]))
        == 3
    )

    # The very same file again: the same run, nothing new stored.
    again = await client.post(url("wechat", day), content=statement, headers=clerk)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == run["id"] and again.json()["replayed"] is True
    assert await count(session_factory, StatementImport, StatementImport.day == day) == 1
    assert await count(session_factory, ReconciliationRun, ReconciliationRun.day == day) == 1
    assert await count(session_factory, ReconciliationCase, ReconciliationCase.day == day) == 3

    shown = await client.get(f"/v1/reconciliations/{run['id']}", headers=auth("analyst"))
    assert shown.status_code == 200
    assert shown.json()["statement_import"]["line_count"] == 4
    assert shown.json()["totals"]["channel"] == "wechat"
    totals = await client.get(f"/v1/reconciliation-totals?day={day}", headers=auth("analyst"))
    assert [c["channel"] for c in totals.json()["channels"]] == ["wechat"]


async def test_settled_twice_and_not_settled_come_from_billings_settlement_events(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    twice, never, once = await paid_rows(
        session_factory, "alipay", [(10_000, at(day, 9)), (20_000, at(day, 10)), (30_000, at(day, 11))]
    )
    first = settlement_event(twice)
    outcomes = await billing_reports(
        settings,
        session_factory,
        first,
        first,  # the same event redelivered: the inbox absorbs it
        settlement_event(twice),  # billing applied the payment a second time: another event
        settlement_event(once),
    )
    assert outcomes == ["processed", "duplicate", "processed", "processed"]
    assert (
        await count(session_factory, BillingSettlement, BillingSettlement.payment_id == twice.order_no) == 2
    )
    statement = simulator.statement_csv("alipay", day, [entry(twice), entry(never), entry(once)])

    r = await client.post(url("alipay", day), content=statement, headers=auth("billing_clerk"))

    assert r.status_code == 201, r.text
    cases = await cases_of(client, auth, r.json()["id"])
    assert sorted((c["kind"], c["against"], c["order_no"]) for c in cases) == sorted(
        [("settled_twice", "billing", twice.order_no), ("not_settled", "billing", never.order_no)]
    )
    settled_twice = next(c for c in cases if c["kind"] == "settled_twice")
    assert (settled_twice["expected"]["amount_fen"], settled_twice["actual"]["amount_fen"]) == (
        10_000,
        20_000,
    )

    # A reversal (a refund undid the settlement) marks the projection; the settlement still happened.
    reversed_event = Event(
        type="billing.settlement.reversed",
        source="metering-and-billing",
        subject=once.account_no,
        data={
            "payment_id": once.order_no,
            "account_no": once.account_no,
            "reversed_at": at(day, 20).isoformat(),
            "reopened_bill_nos": [],
            "prepaid_taken_back_fen": 0,
            "debit_note_no": None,
            "reapplied_fen": 0,
        },
    )
    assert await billing_reports(settings, session_factory, reversed_event) == ["processed"]
    async with session_factory() as s:
        row = (
            await s.execute(select(BillingSettlement).where(BillingSettlement.payment_id == once.order_no))
        ).scalar_one()
    assert row.reversed_at == at(day, 20) and row.reapplied_fen == 0


async def test_resolving_a_case_and_the_open_queue(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    a, b, c = await paid_rows(
        session_factory, "bank:icbc", [(100, at(day, 8)), (200, at(day, 9)), (300, at(day, 10))]
    )
    await settle_all(settings, session_factory, [a, b, c])
    # b and c are missing from the bank's file: two cases.
    bank_file = simulator.statement_csv("bank:icbc", day, [entry(a)])
    r = await client.post(url("bank:icbc", day), content=bank_file, headers=auth("billing_clerk"))
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    # Cursor pages over the open queue (one per page).
    seen, cursor = [], None
    while True:
        params = {"status": "open", "run_id": run_id, "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/reconciliation-cases", params=params, headers=auth("analyst"))).json()
        seen += [x["order_no"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([b.order_no, c.order_no])
    target = (await cases_of(client, auth, run_id, status="open"))[0]
    clerk = auth("billing_clerk", subject="clerk-wang")
    key = {"Idempotency-Key": str(uuid.uuid4())}

    done = await client.post(
        f"/v1/reconciliation-cases/{target['id']}/resolution",
        json={"resolution": "resolved", "note": "银行次日补入对账文件，已核实"},
        headers={**clerk, **key},
    )

    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["resolved_by"], body["resolution_note"]) == (
        "resolved",
        "clerk-wang",
        "银行次日补入对账文件，已核实",
    )
    assert body["resolved_at"] is not None
    replay = await client.post(
        f"/v1/reconciliation-cases/{target['id']}/resolution",
        json={"resolution": "resolved", "note": "银行次日补入对账文件，已核实"},
        headers={**clerk, **key},
    )
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    twice = await client.post(
        f"/v1/reconciliation-cases/{target['id']}/resolution",
        json={"resolution": "dismissed", "note": "again"},
        headers=clerk,
    )
    assert twice.status_code == 409 and twice.json()["code"] == "case_not_open"
    still_open = await cases_of(client, auth, run_id, status="open")
    assert len(still_open) == 1 and still_open[0]["id"] != target["id"]
    shown = (await client.get(f"/v1/reconciliations/{run_id}", headers=auth("analyst"))).json()
    assert shown["case_counts"] == {"open": 1, "resolved": 1, "dismissed": 0}
    # Bad resolutions are problems with stable codes.
    bad = await client.post(f"/v1/reconciliation-cases/{still_open[0]['id']}/resolution",
                            json={"resolution": "fixed", "note": "x"}, headers=clerk)  # fmt: skip
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
    empty_note = await client.post(f"/v1/reconciliation-cases/{still_open[0]['id']}/resolution",
                                   json={"resolution": "resolved", "note": ""}, headers=clerk)  # fmt: skip
    assert empty_note.status_code == 422 and empty_note.json()["code"] == "validation_failed"
    unknown = await client.post(f"/v1/reconciliation-cases/{uuid.uuid4()}/resolution",
                                json={"resolution": "resolved", "note": "x"}, headers=clerk)  # fmt: skip
    assert unknown.status_code == 404 and unknown.json()["code"] == "reconciliation_case_not_found"


async def test_a_malformed_file_is_refused_with_every_error_and_nothing_is_stored(
    client, auth, session_factory, simulator
) -> None:
    day = a_day()
    good = simulator.statement_csv(
        "wechat", day, [StatementEntry("4200000000001", "P202603010000000001", 1234, at(day, 10), fee_fen=0),
                        StatementEntry("4200000000002", "P202603010000000002", 5678, at(day, 11), fee_fen=0)]
    )  # fmt: skip
    text = good.decode("utf-8-sig")
    broken = text.replace("`12.34", "`12.345", 1).replace("`SUCCESS", "`PAID", 2)

    r = await client.post(url("wechat", day), content=broken.encode(), headers=auth("billing_clerk"))

    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "statement_rejected"
    lines = sorted({e["line"] for e in problem["errors"]})
    assert lines == [2, 3], problem["errors"]  # both rows, not only the first
    assert problem["error_count"] == len(problem["errors"]) >= 3  # line 2 has two problems
    assert any("12.345" in e["message"] for e in problem["errors"])
    assert await count(session_factory, StatementImport, StatementImport.day == day) == 0
    assert await count(session_factory, ReconciliationRun, ReconciliationRun.day == day) == 0


async def test_a_different_file_for_the_same_day_supersedes_the_earlier_run_and_keeps_it(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    (a,) = await paid_rows(session_factory, "wechat", [(5_000, at(day, 12))])
    await settle_all(settings, session_factory, [a])
    clerk = auth("billing_clerk")
    first_file = simulator.statement_csv("wechat", day, [entry(a, amount=4_999)])
    first = (await client.post(url("wechat", day), content=first_file, headers=clerk)).json()
    assert first["cases_count"] == 1

    second = await client.post(
        url("wechat", day), content=simulator.statement_csv("wechat", day, [entry(a)]), headers=clerk
    )

    assert second.status_code == 201, second.text
    assert second.json()["balanced"] is True and second.json()["id"] != first["id"]
    history = (await client.get("/v1/reconciliations", params={"provider": "wechat", "day": day.isoformat()},
                                headers=auth("analyst"))).json()["items"]  # fmt: skip
    assert [(h["id"], h["status"]) for h in history] == [
        (second.json()["id"], "current"),
        (first["id"], "superseded"),
    ]
    assert history[1]["superseded_by"] == second.json()["id"]
    old_case = (await cases_of(client, auth, first["id"]))[0]
    assert old_case["status"] == "dismissed" and second.json()["id"] in old_case["resolution_note"]
    back = await client.post(url("wechat", day), content=first_file, headers=clerk)
    assert back.status_code == 409 and back.json()["code"] == "statement_superseded"


async def test_the_cutover_carries_a_late_payment_to_the_next_day(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    noon, late = await paid_rows(session_factory, "alipay", [(1_000, at(day, 12)), (2_000, at(day, 23, 55))])
    await settle_all(settings, session_factory, [noon, late])
    clerk = auth("billing_clerk")
    d1 = (await client.post(url("alipay", day), content=simulator.statement_csv("alipay", day, [entry(noon)]),
                            headers=clerk)).json()  # fmt: skip
    assert d1["cases_count"] == 0 and d1["pending_cutover"] == [late.order_no]
    nxt = day + timedelta(days=1)
    # The next day's statement lacks it as well: now it is a case, on the next day's run.
    d2 = await client.post(
        url("alipay", nxt), content=simulator.statement_csv("alipay", nxt, []), headers=clerk
    )
    assert d2.status_code == 201, d2.text
    assert d2.json()["carried_from"] == d1["id"]
    cases = await cases_of(client, auth, d2.json()["id"])
    assert [(c["kind"], c["order_no"]) for c in cases] == [("missing_at_provider", late.order_no)]


async def test_a_day_imported_before_its_previous_day_is_reconciled_again_when_that_day_arrives(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    noon, late = await paid_rows(session_factory, "alipay", [(1_100, at(day, 12)), (2_200, at(day, 23, 55))])
    await settle_all(settings, session_factory, [noon, late])
    clerk = auth("billing_clerk")
    nxt = day + timedelta(days=1)
    early = await client.post(
        url("alipay", nxt), content=simulator.statement_csv("alipay", nxt, []), headers=clerk
    )
    assert early.status_code == 201, early.text
    # Nothing carried yet: the late payment is the previous day's business, not this day's.
    assert early.json()["carried_from"] is None and early.json()["cases_count"] == 0

    d1 = await client.post(
        url("alipay", day), content=simulator.statement_csv("alipay", day, [entry(noon)]), headers=clerk
    )

    assert d1.status_code == 201, d1.text
    assert d1.json()["pending_cutover"] == [late.order_no]
    (rerun,) = d1.json()["following_reruns"]
    assert (rerun["day"], rerun["cases_count"]) == (nxt.isoformat(), 1)
    history = (await client.get("/v1/reconciliations", params={"provider": "alipay", "day": nxt.isoformat()},
                                headers=auth("analyst"))).json()["items"]  # fmt: skip
    assert [(h["id"], h["status"], h["carried_from"], h["run_by"]) for h in history] == [
        (rerun["run_id"], "current", d1.json()["id"], "system:rerun"),
        (early.json()["id"], "superseded", None, early.json()["run_by"]),
    ]
    # The same file as before, re-run: one import, two runs.
    files = [
        (await client.get(f"/v1/reconciliations/{h['id']}", headers=auth("analyst"))).json()[
            "statement_import"
        ]
        for h in history
    ]
    assert files[0]["id"] == files[1]["id"]
    cases = await cases_of(client, auth, rerun["run_id"])
    assert [(c["kind"], c["order_no"], c["status"]) for c in cases] == [
        ("missing_at_provider", late.order_no, "open")
    ]
    # Every run is an event, keyed by provider and day: the early import, then the re-run replacing it.
    async with session_factory() as s:
        payloads = (
            await s.execute(
                select(outbox_messages.c.payload)
                .where(outbox_messages.c.key == f"alipay:{nxt.isoformat()}")
                .order_by(outbox_messages.c.seq)
            )
        ).scalars()
        completed = [json.loads(p)["data"] for p in payloads]
    assert [
        (e["run_id"], e["trigger"], e["replaces"], e["carried_from"], e["cases_by_kind"]) for e in completed
    ] == [
        (early.json()["id"], "import", None, None, {}),
        (rerun["run_id"], "rerun", early.json()["id"], d1.json()["id"], {"missing_at_provider": 1}),
    ]
    # Importing the next day's file again is a replay of its current (re-run) run, not a conflict.
    again = await client.post(
        url("alipay", nxt), content=simulator.statement_csv("alipay", nxt, []), headers=clerk
    )
    assert again.status_code == 200 and again.json()["id"] == rerun["run_id"], again.text


async def test_a_rerun_keeps_what_people_decided_and_stops_where_the_carry_is_unchanged(
    client, auth, session_factory, settings, simulator
) -> None:
    day = a_day()
    d2_day, d3_day = day + timedelta(days=1), day + timedelta(days=2)
    noon, late1, late2 = await paid_rows(
        session_factory, "wechat", [(500, at(day, 12)), (600, at(day, 23, 50)), (700, at(day, 23, 55))]
    )
    await settle_all(settings, session_factory, [noon, late1, late2])
    clerk = auth("billing_clerk", subject="clerk-li")

    async def load(on: date, entries) -> dict:
        r = await client.post(
            url("wechat", on), content=simulator.statement_csv("wechat", on, entries), headers=clerk
        )
        assert r.status_code == 201, r.text
        return r.json()

    d1 = await load(day, [entry(noon)])
    assert sorted(d1["pending_cutover"]) == sorted([late1.order_no, late2.order_no])
    d2 = await load(d2_day, [])
    d3 = await load(d3_day, [])
    assert d3["carried_from"] == d2["id"]
    by_order = {c["order_no"]: c for c in await cases_of(client, auth, d2["id"])}
    assert set(by_order) == {late1.order_no, late2.order_no}
    decided = await client.post(
        f"/v1/reconciliation-cases/{by_order[late1.order_no]['id']}/resolution",
        json={"resolution": "resolved", "note": "支付宝次日补单，已核实"},
        headers=clerk,
    )
    assert decided.status_code == 200, decided.text

    # The provider's corrected file has late2 on the day: late1 alone is carried now.
    d1b = await load(day, [entry(noon), entry(late2)])

    assert d1b["pending_cutover"] == [late1.order_no]
    (rerun,) = d1b["following_reruns"]  # the third day was reconciled with an empty carry both times
    assert rerun["day"] == d2_day.isoformat()
    (kept,) = await cases_of(client, auth, rerun["run_id"])
    assert (kept["order_no"], kept["status"], kept["resolution_note"], kept["resolved_by"]) == (
        late1.order_no,
        "resolved",
        "支付宝次日补单，已核实",
        decided.json()["resolved_by"],
    )
    gone = next(c for c in await cases_of(client, auth, d2["id"]) if c["order_no"] == late2.order_no)
    assert gone["status"] == "dismissed" and gone["resolved_by"] == "system:rerun"
    assert d1b["id"] in gone["resolution_note"] and rerun["run_id"] in gone["resolution_note"]
    third = (await client.get("/v1/reconciliations", params={"provider": "wechat", "day": d3_day.isoformat()},
                              headers=auth("analyst"))).json()["items"]  # fmt: skip
    assert [(r["id"], r["status"]) for r in third] == [(d3["id"], "current")]

    # A file that changes the day but not what it carries re-runs nothing.
    d1c = await load(day, [entry(noon, amount=499), entry(late2)])
    assert d1c["cases_count"] == 1 and d1c["following_reruns"] == []


async def test_bad_requests_are_problems_with_stable_codes(client, auth, simulator) -> None:
    clerk = auth("billing_clerk")
    day = a_day()
    file = simulator.statement_csv("wechat", day, [])
    cases = [
        (url("paypal", day), file, 422, "unknown_provider"),
        (url("counter", day), file, 422, "unknown_provider"),
        (url("wechat", datetime.now(BUSINESS_TZ).date()), file, 422, "day_not_over"),
        ("/v1/reconciliations?provider=wechat&day=2026-13-01", file, 422, "validation_failed"),
        ("/v1/reconciliations?provider=wechat", file, 422, "validation_failed"),
        (url("wechat", day), b"", 422, "statement_empty"),
    ]
    for path, body, status, code in cases:
        r = await client.post(path, content=body, headers=clerk)
        assert (r.status_code, r.json()["code"]) == (status, code), (path, r.text)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    ok = await client.post(url("wechat", day), content=file, headers={**clerk, **key})
    assert ok.status_code == 201, ok.text
    replay = await client.post(url("wechat", day), content=file, headers={**clerk, **key})
    assert replay.status_code == 201 and replay.json()["id"] == ok.json()["id"]
    assert replay.headers.get("Idempotent-Replayed") == "true"
    other = simulator.statement_csv("wechat", day, [StatementEntry("42001", "P1", 1, at(day, 1), fee_fen=0)])
    reused = await client.post(url("wechat", day), content=other, headers={**clerk, **key})
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    bad_key = await client.post(
        url("wechat", day), content=file, headers={**clerk, "Idempotency-Key": "nope"}
    )
    assert bad_key.status_code == 400 and bad_key.json()["code"] == "invalid_idempotency_key"
    cursor = await client.get("/v1/reconciliation-cases?cursor=!!", headers=auth("analyst"))
    assert cursor.status_code == 422 and cursor.json()["code"] == "invalid_cursor"
    status = await client.get("/v1/reconciliation-cases?status=pending", headers=auth("analyst"))
    assert status.status_code == 422 and status.json()["code"] == "validation_failed"
    missing = await client.get(f"/v1/reconciliations/{uuid.uuid4()}", headers=auth("analyst"))
    assert missing.status_code == 404 and missing.json()["code"] == "reconciliation_not_found"


async def test_only_billing_staff_run_and_resolve_and_analysts_read(client, auth, simulator) -> None:
    day = a_day()
    file = simulator.statement_csv("bank:boc", day, [])
    for headers, status in [
        ({}, 401),
        (auth("analyst"), 403),
        (auth("agent"), 403),
        (auth(accounts=["31000000017"]), 403),
    ]:
        r = await client.post(url("bank:boc", day), content=file, headers=headers)
        assert r.status_code == status, (headers, r.text)
    run = await client.post(url("bank:boc", day), content=file, headers=auth("billing_clerk"))
    assert run.status_code == 201, run.text
    for headers, status in [(auth("analyst"), 200), (auth("billing_clerk"), 200), (auth("agent"), 403),
                            (auth(accounts=["31000000017"]), 403), ({}, 401)]:  # fmt: skip
        assert (
            await client.get(f"/v1/reconciliations/{run.json()['id']}", headers=headers)
        ).status_code == status
        assert (await client.get("/v1/reconciliation-cases", headers=headers)).status_code == status
    resolution = {"resolution": "dismissed", "note": "x"}
    r = await client.post(
        f"/v1/reconciliation-cases/{uuid.uuid4()}/resolution", json=resolution, headers=auth("analyst")
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


async def test_refunds_recorded_here_are_matched_against_the_statements_refund_lines(
    client, auth, session_factory, settings, simulator
) -> None:
    from payment.adapters.orm import Refund

    day = a_day()
    kept, refunded = await paid_rows(session_factory, "wechat", [(6_000, at(day, 9)), (8_000, at(day, 10))])
    await settle_all(settings, session_factory, [kept, refunded])
    async with session_factory() as s:  # a refund of 3,000 fen that the provider confirmed at 15:00
        s.add(
            Refund(
                refund_no=f"R{refunded.order_no[1:]}01",
                order_no=refunded.order_no,
                account_no=refunded.account_no,
                amount_fen=3_000,
                reason="多缴",
                status="succeeded",
                requested_by="clerk01",
                approved_by="boss01",
                provider_refund_id=f"503{uuid.uuid4().int % 10**12}",
                completed_at=at(day, 15),
            )
        )
        await s.commit()
    refund_line = StatementEntry(
        f"503{uuid.uuid4().int % 10**12}",
        refunded.order_no,
        3_000,
        at(day, 15),
        kind="refund",
        fee_fen=0,
        refund_no=f"R{refunded.order_no[1:]}01",
        order_amount_fen=8_000,
    )
    clerk = auth("billing_clerk")
    with_refund = simulator.statement_csv("wechat", day, [entry(kept), entry(refunded), refund_line])
    r = await client.post(url("wechat", day), content=with_refund, headers=clerk)
    assert r.status_code == 201, r.text
    assert await cases_of(client, auth, r.json()["id"]) == []  # the refund line is ours: no case
    # The provider's file without the refund line: the refund recorded here is missing at the provider.
    without = simulator.statement_csv("wechat", day, [entry(kept), entry(refunded)])
    r = await client.post(url("wechat", day), content=without, headers=clerk)
    assert r.status_code == 201, r.text
    cases = await cases_of(client, auth, r.json()["id"])
    assert [(c["kind"], c["subject"], c["order_no"], c["expected"]["amount_fen"]) for c in cases] == [
        ("missing_at_provider", "refund", refunded.order_no, 3_000)
    ]


async def test_the_scheduler_fetches_each_providers_statement_and_reconciles_the_day(
    client, auth, session_factory, settings, simulator, app, monkeypatch
) -> None:
    """对账单下载: each morning the scheduler's job fetches yesterday's statement from every provider with an
    API address (the simulator's HTTP side, signed as the providers sign) and reconciles the day; a day the
    provider has not made yet is asked again after the retry delay, a reconciled day never again."""
    import httpx

    from payment.service_layer.statement_fetch import FETCHED_BY, StatementFetcher

    day = a_day()
    orders = []
    for provider, amounts in (("wechat", [1_111, 2_222]), ("bank:icbc", [3_333]), ("alipay", [4_444])):
        orders += await paid_through_callbacks(
            client, auth, session_factory, settings, simulator, provider, day, amounts
        )
    await settle_all(settings, session_factory, orders)
    morning = at(day + timedelta(days=1), 10, 30)
    clock = {"now": morning}
    monkeypatch.setattr(simulator, "clock", lambda: clock["now"])  # the providers sign at the job's "now"
    fetch_settings = settings.model_copy(
        update={
            "provider_query_urls": {
                "wechat": "http://sim.test",
                "alipay": "http://sim.test",
                "bank:icbc": "http://sim.test/bank/icbc",
            },
            "statement_lookback_days": 1,
        }
    )
    simulator.statements_not_ready.add(("alipay", day))
    fetcher = StatementFetcher()
    from prometheus_client import REGISTRY

    def fetches(provider: str, outcome: str) -> float:
        labels = {"provider": provider, "outcome": outcome}
        return REGISTRY.get_sample_value("utilis_payment_statement_fetches_total", labels) or 0.0

    before = {k: fetches(*k) for k in [("bank", "imported"), ("alipay", "not_ready"), ("alipay", "imported")]}

    async def run_at(now: datetime):
        clock["now"] = now
        transport = httpx.ASGITransport(app=simulator.asgi_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as http:
            return await fetcher.run(session_factory, fetch_settings, app.state.channels, http, now=now)

    try:
        early = await run_at(at(day + timedelta(days=1), 9, 0))  # before statement_fetch_after (10:00)
        assert early.asked == 0
        first = await run_at(morning)
        assert (first.imported, first.not_ready, first.errors) == (2, 1, 0)
        again = await run_at(morning + timedelta(minutes=1))
        assert again.asked == 0  # wechat and the bank are reconciled; alipay waits for its retry delay
        simulator.statements_not_ready.discard(("alipay", day))
        later = await run_at(morning + timedelta(seconds=fetch_settings.statement_retry_seconds))
        assert (later.imported, later.not_ready, later.errors) == (1, 0, 0)
    finally:
        simulator.statements_not_ready.discard(("alipay", day))

    analyst = auth("analyst")
    for provider, paid in (("wechat", 2), ("alipay", 1), ("bank:icbc", 1)):
        r = await client.get(url(provider, day), headers=analyst)
        assert r.status_code == 200, r.text
        (run,) = [x for x in r.json()["items"] if x["status"] == "current"]
        assert run["run_by"] == FETCHED_BY
        assert (run["lines_count"], run["matched_count"], run["cases_count"]) == (paid, paid, 0), run
    assert await count(session_factory, StatementImport, StatementImport.day == day) == 3
    assert {k: fetches(*k) - v for k, v in before.items()} == {
        ("bank", "imported"): 1,  # banks are one label
        ("alipay", "not_ready"): 1,
        ("alipay", "imported"): 1,
    }
