"""Providers' callbacks through the real endpoint, signed by the provider simulator exactly as each provider
signs (WeChat Pay v3, Alipay RSA2, banks signing JSON or XML with RSA2 or SM2/SM3): a success settles the
order once even when delivered three times, concurrently and out of order; forged, stale and replayed
callbacks are refused in the provider's format; a success for a closed order opens a refund case; the
expiry sweep asks the provider (the simulator's query endpoint) and settles or closes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from payment.adapters.orm import PaymentOrder, RefundCase
from payment.adapters.providers.simulator import deliver
from payment.service_layer import dues
from utilis_shared.db import UnitOfWork, outbox_messages
from utilis_shared.events import Event

# Banks: icbc (JSON, RSA2), boc (JSON, SM2/SM3), ccb (XML, RSA2), abc (XML, SM2/SM3).
PROVIDERS = ["wechat", "alipay", "bank:icbc", "bank:boc", "bank:ccb", "bank:abc"]


def account_no() -> str:
    return f"5{uuid.uuid4().int % 10**10:010d}"


async def owed(session_factory, settings, no: str, fen: int) -> None:
    async with UnitOfWork(session_factory, settings) as uow:
        await dues.balance_changed(
            uow,
            Event(
                type="billing.balance.changed",
                source="metering-and-billing",
                subject=no,
                data={
                    "account_no": no,
                    "owed_fen": fen,
                    "late_fee_fen": 0,
                    "prepaid_fen": 0,
                    "open_bills": 1,
                },
            ),
        )
        await uow.commit()


async def new_order(client, auth, session_factory, settings, simulator, channel: str, amount: int = 12_345):
    no = account_no()
    await owed(session_factory, settings, no, amount)
    r = await client.post(
        "/v1/payment-orders",
        json={"account_no": no, "purpose": "dues", "amount_fen": amount, "channel": channel},
        headers=auth(accounts=[no]),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["pay_request"], "an online order carries the provider's signed pay request"
    simulator.register_order(channel, body["order_no"], amount)
    return body


async def status_of(session_factory, order_no: str) -> str:
    async with session_factory() as s:
        return (
            await s.execute(select(PaymentOrder.status).where(PaymentOrder.order_no == order_no))
        ).scalar_one()


async def succeeded_events(session_factory, order_nos: list[str]) -> int:
    async with session_factory() as s:
        rows = (
            await s.execute(
                select(outbox_messages.c.payload).where(
                    outbox_messages.c.event_type == "payment.payment.succeeded"
                )
            )
        ).scalars()
        return sum(1 for p in rows if any(n.encode() in p for n in order_nos))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_success_delivered_three_times_concurrently_settles_once(
    provider, client, auth, session_factory, settings, simulator
) -> None:
    orders = [await new_order(client, auth, session_factory, settings, simulator, provider) for _ in range(5)]
    callbacks = [simulator.callback(provider, o["order_no"], o["amount"]["amount_fen"]) for o in orders]
    deliveries = await deliver(
        "http://payment.test", callbacks, copies=3, concurrency=15, client=client, seed=7
    )
    assert all(d.status_code is not None for d in deliveries)
    nos = [o["order_no"] for o in orders]
    assert {await status_of(session_factory, n) for n in nos} == {"succeeded"}
    assert await succeeded_events(session_factory, nos) == 5
    # Every first delivery is acknowledged in the provider's format; copies are duplicates or replays.
    accepted = [d for d in deliveries if d.status_code == 200]
    assert len(accepted) >= 5


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_forged_stale_and_replayed_callbacks_are_refused(
    provider, client, auth, session_factory, settings, simulator
) -> None:
    order = await new_order(client, auth, session_factory, settings, simulator, provider)
    n, amount = order["order_no"], order["amount"]["amount_fen"]
    good = simulator.callback(provider, n, amount)
    # Forged: the body altered after signing (one byte), keeping the provider's signature.
    body = bytearray(good.body)
    body[len(body) // 2] ^= 0x01
    forged = await client.post(good.path, content=bytes(body), headers=good.headers)
    assert forged.status_code != 200 or b"success" not in forged.content.lower()
    assert await status_of(session_factory, n) == "pending"
    # Stale: signed an hour ago.
    old = simulator.callback(provider, n, amount, now=datetime.now(UTC) - timedelta(hours=1))
    stale = await client.post(old.path, content=old.body, headers=old.headers)
    assert stale.status_code != 200 or b"success" not in stale.content.lower()
    assert await status_of(session_factory, n) == "pending"
    # The genuine one settles it; the very same message again is a replay, refused.
    first = await client.post(good.path, content=good.body, headers=good.headers)
    assert first.status_code == 200, first.text
    assert await status_of(session_factory, n) == "succeeded"
    replay = await client.post(good.path, content=good.body, headers=good.headers)
    assert replay.status_code != 200 or replay.content != first.content
    assert await succeeded_events(session_factory, [n]) == 1


async def test_a_payment_after_the_order_closed_opens_a_refund_case(
    client, auth, session_factory, settings, simulator
) -> None:
    order = await new_order(client, auth, session_factory, settings, simulator, "wechat")
    n = order["order_no"]
    cancelled = await client.post(
        f"/v1/payment-orders/{n}/cancellation", headers=auth(accounts=[order["account_no"]])
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "closed"
    late = simulator.callback("wechat", n, order["amount"]["amount_fen"])
    r = await client.post(late.path, content=late.body, headers=late.headers)
    assert r.status_code == 200  # received: the money is a person's case now
    async with session_factory() as s:
        cases = (
            await s.execute(select(func.count()).select_from(RefundCase).where(RefundCase.order_no == n))
        ).scalar()
    assert cases == 1 and await status_of(session_factory, n) == "closed"


async def test_a_signed_notice_for_an_unknown_order_is_refused_in_the_providers_format(
    client, session_factory, simulator
) -> None:
    cb = simulator.callback("wechat", "P202611239999999999", 500)
    r = await client.post(cb.path, content=cb.body, headers=cb.headers)
    assert r.status_code == 400 and r.json()["code"] == "FAIL"  # WeChat's own format, not a problem+json
    async with session_factory() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(PaymentOrder).where(PaymentOrder.order_no == cb.order_no)
            )
        ) == 0


async def test_callbacks_of_unknown_providers_are_refused(client) -> None:
    r = await client.post("/callbacks/paypal", content=b"{}")
    assert r.status_code in (404, 422)
    r = await client.post("/callbacks/bank/nobank", content=b"{}")
    assert r.status_code == 404 and r.json()["code"] == "unknown_provider"


async def test_the_expiry_sweep_asks_the_provider_then_settles_or_closes(
    client, auth, session_factory, settings, simulator, app
) -> None:
    from payment.service_layer.expiry import sweep_expired

    paid = await new_order(client, auth, session_factory, settings, simulator, "wechat")
    unpaid = await new_order(client, auth, session_factory, settings, simulator, "alipay")
    # The payer paid at WeChat but the callback never came; nobody paid the Alipay order.
    simulator.callback("wechat", paid["order_no"], paid["amount"]["amount_fen"])
    async with session_factory() as s:  # both past their expiry
        await s.execute(
            update(PaymentOrder)
            .where(PaymentOrder.order_no.in_([paid["order_no"], unpaid["order_no"]]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await s.commit()
    now = datetime.now(UTC)
    sweep_settings = settings.model_copy(
        update={
            "provider_query_urls": {"wechat": "http://sim.test", "alipay": "http://sim.test"},
            "expiry_grace_seconds": 0,
        }
    )
    transport = httpx.ASGITransport(app=simulator.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as http:
        summary = await sweep_expired(session_factory, sweep_settings, app.state.channels, http, now=now)
    assert summary.settled >= 1
    assert await status_of(session_factory, paid["order_no"]) == "succeeded"
    assert await status_of(session_factory, unpaid["order_no"]) == "closed"


@pytest.mark.parametrize("bank", ["ccb", "abc"])
async def test_an_xml_bank_is_answered_in_xml_and_its_gbk_notice_applied_once(
    bank, client, auth, session_factory, settings, simulator
) -> None:
    from defusedxml import ElementTree as SafeET

    order = await new_order(client, auth, session_factory, settings, simulator, f"bank:{bank}", 7_788)
    n = order["order_no"]
    cb = simulator.bank_callback(bank, n, 7_788, xml_encoding="GBK")
    assert cb.body.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    answers = await asyncio.gather(
        *(client.post(cb.path, content=cb.body, headers=cb.headers) for _ in range(3))
    )
    codes = []
    for r in answers:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        codes.append(SafeET.fromstring(r.content).findtext("Body/ReturnCode"))
    assert "0000" in codes and set(codes) <= {"0000", "9999"}
    assert await status_of(session_factory, n) == "succeeded"
    assert await succeeded_events(session_factory, [n]) == 1
    # An XXE attempt is refused in the bank's XML format, and changes nothing.
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE Message [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Message><Head/><Body><OrderNo>&x;</OrderNo></Body><Signature/></Message>"
    )
    r = await client.post(cb.path, content=xxe, headers={"Content-Type": "application/xml"})
    assert SafeET.fromstring(r.content).findtext("Body/ReturnCode") == "9999"
    assert b"root:" not in r.content


@pytest.mark.parametrize("bank", ["icbc", "abc"])  # JSON and XML
async def test_a_failed_bank_payment_is_failed_once_with_the_banks_reason(
    bank, client, auth, session_factory, settings, simulator
) -> None:
    from .test_orders import events

    order = await new_order(client, auth, session_factory, settings, simulator, f"bank:{bank}", 6_600)
    cb = simulator.bank_callback(bank, order["order_no"], 6_600, status="FAILED")
    answers = await asyncio.gather(
        *(client.post(cb.path, content=cb.body, headers=cb.headers) for _ in range(2))
    )
    assert {a.status_code for a in answers} == {200}
    assert await status_of(session_factory, order["order_no"]) == "failed"
    failed = await events(session_factory, order["account_no"], "payment.payment.failed")
    assert [(e["payment_id"], e["reason"]) for e in failed] == [(order["order_no"], "余额不足")]
