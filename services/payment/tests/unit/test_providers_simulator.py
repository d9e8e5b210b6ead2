"""The provider simulator: delivery late, twice, concurrently and out of order; its HTTP query endpoints
answering the adapters' signed requests; its daily statements; its keys shared between processes."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import httpx
import pytest

from payment.adapters.providers.base import CallbackRejected, InMemoryNonceStore, check_replay
from payment.adapters.providers.simulator import (
    ProviderSimulator,
    StatementEntry,
    deliver,
    statement_csv,
)

from .conftest import NOW


async def test_deliver_sends_copies_concurrently_and_out_of_order(sim: ProviderSimulator) -> None:
    adapters = sim.adapters()
    store = InMemoryNonceStore(clock=lambda: NOW)
    callbacks = [sim.callback(p, f"P-DLV-{p}-{i}", 100 + i, now=NOW) for i in range(5) for p in adapters]
    received: list[str] = []
    applied: set[str] = set()
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        provider = request.url.path.removeprefix("/callbacks/").replace("/", ":")
        adapter = adapters[provider]
        try:
            notice = adapter.verify_callback(headers=request.headers, body=request.content, now=NOW)
            await check_replay(notice, store, NOW)
        except CallbackRejected as exc:
            status, kind, body = adapter.ack(False, exc.code)
            return httpx.Response(status, content=body, headers={"content-type": kind})
        received.append(notice.order_no)
        applied.add(notice.provider_txn_id)
        await store.remember(notice.provider, notice.nonce)
        status, kind, body = adapter.ack(True)
        return httpx.Response(status, content=body, headers={"content-type": kind})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        deliveries = await deliver(
            "http://payment.test", callbacks, copies=3, concurrency=8, max_delay=0.01, seed=7, client=client
        )
    assert len(deliveries) == 3 * len(callbacks)
    assert all(d.status_code is not None for d in deliveries)
    assert len(applied) == len(callbacks)  # every notice verified; replays refused once remembered
    assert peak > 1  # concurrently
    order = [d.callback.order_no for d in deliveries]
    assert order != sorted(order, key=[c.order_no for c in callbacks].index)  # out of order


async def test_the_http_side_answers_the_adapters_signed_queries(sim: ProviderSimulator) -> None:
    adapters = sim.adapters(base_url="http://sim")
    for provider in adapters:
        sim.callback(provider, f"P-HTTP-{provider}", 4321, now=NOW)
    transport = httpx.ASGITransport(app=sim.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        for provider, adapter in adapters.items():
            base = f"http://sim/bank/{provider[5:]}" if provider.startswith("bank:") else "http://sim"
            request = adapter.build_query_request(order_no=f"P-HTTP-{provider}", now=NOW)
            response = await client.request(
                request.method, request.url(base), headers=request.headers, content=request.body
            )
            answer = adapter.parse_query_response(
                status_code=response.status_code,
                headers=response.headers,
                body=response.content,
                order_no=f"P-HTTP-{provider}",
                now=NOW,
            )
            assert (answer.status, answer.amount_fen) == ("succeeded", 4321), provider
        # a request not signed with our key is refused by the provider
        forged = await client.get(
            f"/v3/pay/transactions/out-trade-no/P-HTTP-wechat?mchid={sim.mchid}",
            headers={"Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="x",signature="AAAA"'},
        )
        assert forged.status_code == 401
        # the prepay: our signed request, WeChat's signed answer
        prepay = adapters["wechat"].build_order_request(
            order_no="P-PREPAY", amount_fen=100, description="缴费", notify_url="https://x", now=NOW
        )
        response = await client.post(
            prepay["path"], headers=prepay["headers"], content=prepay["body"].encode()
        )
        assert response.status_code == 200 and json.loads(response.content)["prepay_id"].startswith("wx")
        assert sim.orders[("wechat", "P-PREPAY")].status == "pending"


def test_statements_in_each_format(sim: ProviderSimulator) -> None:
    t = NOW
    entries = [
        StatementEntry("4200000001", "P1", 1234, t, fee_fen=7),
        StatementEntry("4200000002", "P2", 500, t + timedelta(hours=1), fee_fen=3),
        StatementEntry(
            "4200000001",
            "P1",
            200,
            t + timedelta(hours=2),
            kind="refund",
            fee_fen=-1,
            refund_no="R1",
            order_amount_fen=1234,
        ),
    ]
    wechat = statement_csv("wechat", date(2026, 11, 23), entries).decode("utf-8").splitlines()
    assert (
        wechat[0]
        == "交易时间,公众账号ID,商户号,微信订单号,商户订单号,交易类型,交易状态,订单金额,退款金额,手续费"
    )
    assert wechat[1].startswith("`2026-11-23 10:15:30,`") and wechat[1].endswith(
        ",`SUCCESS,`12.34,`0.00,`0.07"
    )
    assert wechat[3].endswith("`REFUND,`12.34,`2.00,`-0.01")
    assert wechat[-2:] == ["总交易单数,应结订单总金额,退款总金额,手续费总金额", "`3,`17.34,`2.00,`0.09"]
    alipay = statement_csv("alipay", date(2026, 11, 23), entries).decode("gbk").splitlines()
    assert alipay[0] == "#支付宝业务明细查询" and "#交易合计：2笔，共17.34元" in alipay
    assert any(
        line.startswith("4200000001,P1,退款,") and line.endswith(",-2.00,-2.01,-0.01,R1") for line in alipay
    )
    bank = statement_csv("bank:icbc", date(2026, 11, 23), entries[:2]).decode().splitlines()
    assert bank == [
        "bank_serial_no,order_no,amount_fen,status,paid_at",
        "4200000001,P1,1234,SUCCESS,2026-11-23T10:15:30+08:00",
        "4200000002,P2,500,SUCCESS,2026-11-23T11:15:30+08:00",
        "TOTAL,2,1734",
    ]
    with pytest.raises(ValueError):
        statement_csv("bank:icbc", date(2026, 11, 23), entries)  # banks list payments only

    # the reconciliation parser, when present, reads exactly these files
    statements = pytest.importorskip("payment.domain.statements")
    for provider, lines in (("wechat", entries), ("alipay", entries), ("bank:icbc", entries[:2])):
        parsed = statements.parse_statement(provider, statement_csv(provider, date(2026, 11, 23), lines))
        assert not parsed.errors, (provider, parsed.errors)
        assert [(x.provider_txn_id, x.amount_fen, x.kind.value) for x in parsed.lines] == [
            (e.provider_txn_id, e.amount_fen, e.kind) for e in lines
        ]


def test_a_day_of_simulated_payments_makes_its_statement(sim: ProviderSimulator) -> None:
    local = ProviderSimulator(keys=sim.keys, clock=lambda: NOW)
    local.wechat_callback("P-DAY-1", 1000, now=NOW)
    local.wechat_callback("P-DAY-2", 2000, now=NOW, paid_at=NOW - timedelta(days=1))  # the day before
    entries = local.statement_entries("wechat", date(2026, 11, 23), fee_per_mille=6)
    assert [(e.order_no, e.amount_fen, e.fee_fen) for e in entries] == [("P-DAY-1", 1000, 6)]
    assert (
        local.statement_csv("wechat", date(2026, 11, 23), fee_per_mille=6).decode().splitlines()[-1]
        == "`1,`10.00,`0.00,`0.06"
    )


def test_keys_survive_a_json_round_trip(sim: ProviderSimulator) -> None:
    other = ProviderSimulator.from_keys(sim.keys.to_json(), clock=lambda: NOW)
    for provider, adapter in other.adapters().items():
        cb = sim.callback(provider, f"P-KEYS-{provider}", 100, now=NOW)
        assert adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW).amount_fen == 100
