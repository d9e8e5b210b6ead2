"""Approved refunds are sent to the provider (the simulator's HTTP side, answering as each provider does):
accepted, then completed once by the provider's refund notice; refused: the refund fails with the provider's
code and its amount is free again; the provider's system errors and timeouts are retried with the same
refund number (one refund at the provider), then by the scheduler's round. A refund case's refund goes the
same way."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from payment.adapters.orm import PaymentOrder, Refund, RefundCase
from payment.service_layer.refund_requests import send_due_refunds
from utilis_shared.timeutil import utcnow

from .test_refund_cases import a_case, events
from .test_refunds import paid_order

PROVIDERS = ["wechat", "alipay", "bank:icbc", "bank:boc", "bank:ccb", "bank:abc"]  # ccb, abc: XML notices


@pytest.fixture
async def provider_api(app, settings, simulator, monkeypatch):
    """The app calls the simulator's HTTP side for every provider (for this test only)."""
    for provider in PROVIDERS:
        base = f"http://sim.test/bank/{provider[5:]}" if provider.startswith("bank:") else "http://sim.test"
        monkeypatch.setitem(settings.provider_query_urls, provider, base)
    transport = httpx.ASGITransport(app=simulator.asgi_app())
    client = httpx.AsyncClient(transport=transport, base_url="http://sim.test")
    real = app.state.provider_http
    app.state.provider_http = client
    simulator.take_refund_notices()
    try:
        yield client
    finally:
        app.state.provider_http = real
        await client.aclose()


async def refund_row(session_factory, refund_no: str) -> Refund:
    async with session_factory() as s:
        return (await s.execute(select(Refund).where(Refund.refund_no == refund_no))).scalar_one()


async def approved(client, auth, order_no: str, amount: int) -> dict:
    r = await client.post(
        f"/v1/payment-orders/{order_no}/refunds",
        json={"amount_fen": amount, "reason": "多缴退款"},
        headers=auth("agent"),
    )
    assert r.status_code == 201, r.text
    d = await client.post(
        f"/v1/refunds/{r.json()['refund_no']}/decision",
        json={"approve": True},
        headers=auth("billing_supervisor"),
    )
    assert d.status_code == 200, d.text
    return d.json()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_approved_refund_is_sent_and_completed_once_by_the_providers_notice(
    provider, provider_api, client, auth, session_factory, settings, simulator
) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, provider, amount=5_000)
    n, no = order["order_no"], order["account_no"]
    refund = await approved(client, auth, n, 5_000)
    assert refund["status"] == "submitted" and refund["sent_at"] is not None, refund
    assert simulator.refund_requests.count((provider, refund["refund_no"])) == 1
    notices = simulator.take_refund_notices()
    assert [x.order_no for x in notices] == [n]
    # The provider's notice, delivered three times concurrently: the refund succeeds once.
    cb = notices[0]
    await asyncio.gather(*(client.post(cb.path, content=cb.body, headers=cb.headers) for _ in range(3)))
    row = await refund_row(session_factory, refund["refund_no"])
    assert row.status == "succeeded" and row.send_attempts == 1
    async with session_factory() as s:
        assert (
            await s.execute(select(PaymentOrder.status).where(PaymentOrder.order_no == n))
        ).scalar_one() == ("refunded")
    refunded = await events(session_factory, no, "payment.payment.refunded")
    assert [(e["refund_no"], e["refunded_fen"]) for e in refunded] == [(refund["refund_no"], 5_000)]


async def test_a_refused_refund_fails_with_the_providers_code_and_frees_its_amount(
    provider_api, client, auth, session_factory, settings, simulator
) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "wechat", amount=4_000)
    simulator.script_refunds("refuse")
    refund = await approved(client, auth, order["order_no"], 4_000)
    assert (refund["status"], refund["failure_code"], refund["sent_at"]) == ("failed", "NOT_ENOUGH", None)
    failed = await events(session_factory, order["account_no"], "payment.refund.failed")
    assert [(e["refund_no"], e["code"], e["amount_fen"]) for e in failed] == [
        (refund["refund_no"], "NOT_ENOUGH", 4_000)
    ]
    assert simulator.take_refund_notices() == []
    # Nothing left the account: the whole amount can be asked for again, and this time it goes through.
    again = await approved(client, auth, order["order_no"], 4_000)
    assert again["status"] == "submitted" and again["sent_at"] is not None


async def test_provider_errors_are_retried_with_the_same_refund_number_then_by_the_scheduler(
    provider_api, app, client, auth, session_factory, settings, simulator
) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "alipay", amount=2_500)
    # Two system errors, then accepted: one round of three tries.
    simulator.script_refunds("error", "error")
    refund = await approved(client, auth, order["order_no"], 1_000)
    assert refund["status"] == "submitted" and refund["sent_at"] is not None
    assert simulator.refund_requests.count(("alipay", refund["refund_no"])) == 3
    assert len([x for x in simulator.take_refund_notices() if x.order_no == order["order_no"]]) == 1
    assert (await refund_row(session_factory, refund["refund_no"])).send_attempts == 3
    # Three errors: the round gives up (still submitted, the error kept); the scheduler's round sends it.
    simulator.script_refunds("error", "error", "error")
    second = await approved(client, auth, order["order_no"], 1_500)
    assert second["status"] == "submitted" and second["sent_at"] is None
    row = await refund_row(session_factory, second["refund_no"])
    assert (row.last_error and "SYSTEM_ERROR" in row.last_error.upper()) or "aop" in (row.last_error or "")
    later = settings.model_copy(update={"refund_retry_seconds": 0})
    summary = await send_due_refunds(session_factory, later, app.state.channels, provider_api, now=utcnow())
    assert summary.accepted >= 1
    row = await refund_row(session_factory, second["refund_no"])
    assert row.sent_at is not None and row.send_attempts == 4
    assert simulator.refund_requests.count(("alipay", second["refund_no"])) == 4
    assert len([x for x in simulator.take_refund_notices() if x.order_no == order["order_no"]]) == 1


async def test_a_timeout_is_retried_and_an_unconfigured_provider_is_left_waiting(
    provider_api, app, client, auth, session_factory, settings, simulator, monkeypatch
) -> None:
    order = await paid_order(client, auth, session_factory, settings, simulator, "bank:icbc", amount=900)
    calls = {"n": 0}
    real = provider_api.request

    async def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the first request times out (it may or may not have reached the bank)
            raise httpx.ReadTimeout("timed out")
        return await real(*args, **kwargs)

    monkeypatch.setattr(provider_api, "request", flaky)
    refund = await approved(client, auth, order["order_no"], 900)
    assert refund["sent_at"] is not None and calls["n"] == 2
    other = await paid_order(client, auth, session_factory, settings, simulator, "bank:boc", amount=800)
    monkeypatch.delitem(settings.provider_query_urls, "bank:boc")
    waiting = await approved(client, auth, other["order_no"], 800)
    assert (waiting["status"], waiting["sent_at"]) == ("submitted", None)
    assert (await refund_row(session_factory, waiting["refund_no"])).send_attempts == 0


async def test_a_refund_cases_refund_is_sent_with_the_cases_transaction(
    provider_api, client, auth, session_factory, settings, simulator
) -> None:
    case = await a_case(client, auth, session_factory, settings, simulator, amount=3_300)
    r = await client.post(
        f"/v1/refund-cases/{case['id']}/resolution",
        json={"resolution": "refund", "note": "原路退回"},
        headers=auth("billing_clerk", subject="clerk-send"),
    )
    refund_no = r.json()["refund_no"]
    d = await client.post(
        f"/v1/refunds/{refund_no}/decision", json={"approve": True}, headers=auth("billing_supervisor")
    )
    assert d.json()["sent_at"] is not None, d.text
    (notice,) = simulator.take_refund_notices()
    assert (await client.post(notice.path, content=notice.body, headers=notice.headers)).status_code == 200
    async with session_factory() as s:
        status = (
            await s.execute(select(RefundCase.status).where(RefundCase.refund_no == refund_no))
        ).scalar_one()
    assert status == "refunded"
    assert await events(session_factory, case["account_no"], "payment.payment.refunded") == []


@pytest.mark.parametrize("bank", ["icbc", "ccb"])  # JSON and XML
async def test_a_withholding_debits_refund_goes_to_its_banks_api_and_completes(
    bank, provider_api, client, auth, session_factory, settings, simulator
) -> None:
    """A withholding (代扣) debit has no API of its own: its refund is sent to the same bank's
    direct-connect API, and the bank's refund notice on its callback completes it once."""
    import random
    from datetime import timedelta

    from utilis_shared.timeutil import business_today

    from .test_orders import account_no, billing_reports
    from .test_withholding import card, sign

    no = account_no()
    await billing_reports(session_factory, settings, no, owed=7_000)
    assert (await sign(client, auth, no, bank, card())).status_code == 201
    day = business_today() + timedelta(days=random.randint(400, 40_000))  # a batch day of its own
    clerk = auth("billing_clerk")
    batch = await client.post(
        "/v1/withholding-batches", json={"bank_code": bank, "day": str(day)}, headers=clerk
    )
    assert batch.status_code == 201, batch.text
    number = batch.json()["batch_no"]
    request = await client.get(f"/v1/withholding-batches/{number}/request-file", headers=clerk)
    result = simulator.withholding_result(request.content)
    applied = await client.post(
        f"/v1/withholding-batches/{number}/result-file", content=result, headers=clerk
    )
    assert applied.status_code == 200, applied.text
    async with session_factory() as s:
        order = (await s.execute(select(PaymentOrder).where(PaymentOrder.account_no == no))).scalar_one()
    assert (order.status, order.provider) == ("succeeded", f"withholding:{bank}")

    refund = await approved(client, auth, order.order_no, 2_000)
    assert refund["status"] == "submitted" and refund["sent_at"] is not None, refund
    assert simulator.refund_requests.count((f"bank:{bank}", refund["refund_no"])) == 1
    (notice,) = simulator.take_refund_notices()
    assert notice.path == f"/callbacks/bank/{bank}"
    await asyncio.gather(
        *(client.post(notice.path, content=notice.body, headers=notice.headers) for _ in range(2))
    )
    row = await refund_row(session_factory, refund["refund_no"])
    assert row.status == "succeeded" and row.send_attempts == 1
