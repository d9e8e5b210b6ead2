"""Bank withholding (代扣) against the real PostgreSQL: mandates (encrypted, masked, one active per account),
the batch of a bank and day (idempotent, also concurrently), its request file, the simulated bank's result
file applied exactly once (also when ingested twice and concurrently), failures closed with the bank's
reason, refused files never half-applied, the next day's batch, the CLI."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

from sqlalchemy import func, select
from typer.testing import CliRunner

from payment.adapters.orm import PaymentOrder, ProviderCallback, RefundCase
from payment.adapters.orm_withholding import WithholdingBatch, WithholdingMandate
from payment.adapters.providers import withholding as files
from payment.entrypoints.cli import app as cli_app
from payment.settings import get_settings
from utilis_shared.db import outbox_messages
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import business_today

from .test_orders import account_no, billing_reports, events, events_of

CLERK = ("billing_clerk",)


def a_bank(settings) -> str:
    """A bank configured for this test only (batches are per bank and day; accounts per bank)."""
    code = f"t{uuid.uuid4().hex[:10]}"
    settings.withholding_banks[code] = "M000000001"
    return code


def card() -> str:
    return f"6222{uuid.uuid4().int % 10**15:015d}"


async def sign(client, auth, no: str, bank: str, number: str, **extra):
    return await client.post(
        f"/v1/accounts/{no}/withholding-mandates",
        json={"bank_code": bank, "bank_account_no": number} | extra,
        headers=auth("agent"),
    )


async def orders_of(session_factory, nos: list[str]) -> dict[str, PaymentOrder]:
    async with session_factory() as s:
        rows = (await s.execute(select(PaymentOrder).where(PaymentOrder.account_no.in_(nos)))).scalars()
        return {o.account_no: o for o in rows}


async def test_mandates_are_encrypted_masked_and_one_active_per_account(
    settings, session_factory, client, auth
) -> None:
    bank, no, number = a_bank(settings), account_no(), card()
    first = await sign(client, auth, no, bank, number, agreement_no="AG-001")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["bank_account_masked"] == f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"
    assert number not in first.text and body["status"] == "active"
    same = await sign(client, auth, no, bank, " ".join([number[:4], number[4:]]))  # spaces ignored
    assert same.status_code == 200 and same.json()["mandate_id"] == body["mandate_id"]
    other = await sign(client, auth, no, bank, card())
    assert other.status_code == 409 and other.json()["code"] == "withholding_mandate_exists"
    assert (await sign(client, auth, no, "nobank", card())).json()["code"] == "unknown_bank"
    bad = await sign(client, auth, account_no(), bank, "6222-1234-abcd-5678")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_bank_account"
    async with session_factory() as s:
        row = await s.get(WithholdingMandate, uuid.UUID(body["mandate_id"]))
        stored = (row.bank_account_enc, row.bank_account_bidx)
        payloads = (
            await s.execute(select(outbox_messages.c.payload).where(outbox_messages.c.key == no))
        ).scalars()
        assert all(number.encode() not in p for p in payloads)
    cipher = PiiCipher.from_settings(settings)
    assert number not in stored[0] and cipher.decrypt(stored[0], field="bank_account") == number
    assert stored[1] == cipher.blind_index(number, field="bank_account")
    assert await events_of(session_factory, no, "payment.withholding_mandate.signed") == 1

    mine = await client.get(f"/v1/accounts/{no}/withholding-mandates", headers=auth(accounts=[no]))
    assert mine.status_code == 200 and [m["mandate_id"] for m in mine.json()["items"]] == [body["mandate_id"]]
    assert number not in mine.text
    not_mine = await client.get(f"/v1/accounts/{no}/withholding-mandates", headers=auth(accounts=["1"]))
    assert not_mine.status_code == 404
    resident_signs = await client.post(
        f"/v1/accounts/{no}/withholding-mandates",
        json={"bank_code": bank, "bank_account_no": card()},
        headers=auth(accounts=[no]),
    )
    assert resident_signs.status_code == 403
    unauthenticated = await client.get(f"/v1/accounts/{no}/withholding-mandates")
    assert unauthenticated.status_code == 401

    url = f"/v1/withholding-mandates/{body['mandate_id']}/revocation"
    revoked = await client.post(url, json={"reason": "用户申请解约"}, headers=auth("billing_clerk"))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = await client.post(url, json={"reason": "用户申请解约"}, headers=auth("billing_clerk"))
    assert again.status_code == 409 and again.json()["code"] == "withholding_mandate_not_active"
    missing = await client.post(
        f"/v1/withholding-mandates/{uuid.uuid4()}/revocation",
        json={"reason": "误操作"},
        headers=auth("agent"),
    )
    assert missing.status_code == 404 and missing.json()["code"] == "withholding_mandate_not_found"
    assert (await sign(client, auth, no, bank, card())).status_code == 201  # a new card after revoking
    assert await events_of(session_factory, no, "payment.withholding_mandate.revoked") == 1


async def test_a_batch_is_requested_and_its_result_applied_exactly_once(
    settings, session_factory, client, auth, simulator
) -> None:
    bank, day = a_bank(settings), business_today()
    owed = {account_no(): 10_000 + 137 * i for i in range(6)}
    nos = sorted(owed)
    for no, amount in owed.items():
        await billing_reports(session_factory, settings, no, owed=amount)
        assert (await sign(client, auth, no, bank, card())).status_code == 201
    # not in the batch: nothing owed; a mandate at another bank; a revoked mandate
    nothing, elsewhere, revoked = account_no(), account_no(), account_no()
    for no in (nothing, elsewhere, revoked):
        await billing_reports(session_factory, settings, no, owed=0 if no == nothing else 5_000)
    await sign(client, auth, nothing, bank, card())
    await sign(client, auth, elsewhere, a_bank(settings), card())
    m = await sign(client, auth, revoked, bank, card())
    await client.post(
        f"/v1/withholding-mandates/{m.json()['mandate_id']}/revocation",
        json={"reason": "解约"},
        headers=auth("agent"),
    )

    clerk = auth("billing_clerk")
    created = await client.post(
        "/v1/withholding-batches", json={"bank_code": bank, "day": str(day)}, headers=clerk
    )
    assert created.status_code == 201, created.text
    batch = created.json()
    assert (batch["item_count"], batch["total"]["amount_fen"]) == (6, sum(owed.values()))
    assert batch["batch_no"] == f"W{day:%Y%m%d}{bank.upper()}" and batch["status"] == "requested"
    again = await client.post(
        "/v1/withholding-batches", json={"bank_code": bank, "day": str(day)}, headers=clerk
    )
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["request_sha256"] == batch["request_sha256"]

    file = await client.get(f"/v1/withholding-batches/{batch['batch_no']}/request-file", headers=clerk)
    assert file.status_code == 200 and file.headers["content-type"].startswith("text/csv")
    request = files.parse_request_file(file.content)
    assert sorted(i.account_no for i in request.items) == nos
    assert all("*" in i.bank_account_masked for i in request.items)
    placed = await orders_of(session_factory, nos)
    assert {o.status for o in placed.values()} == {"pending"}
    assert {(o.channel, o.provider, o.purpose) for o in placed.values()} == {
        ("withholding", f"withholding:{bank}", "dues")
    }
    assert all(
        placed[i.account_no].order_no == i.order_no and owed[i.account_no] == i.amount_fen
        for i in request.items
    )
    for no in nos:
        assert await events_of(session_factory, no, "payment.payment.created") == 1
    assert await events_of(session_factory, batch["batch_no"], "payment.withholding_batch.requested") == 1

    poor, closed = nos[1], nos[4]
    result = simulator.withholding_result(
        file.content, failures={poor: "INSUFFICIENT_FUNDS", closed: "ACCOUNT_CLOSED"}
    )
    url = f"/v1/withholding-batches/{batch['batch_no']}/result-file"
    answers = await asyncio.gather(
        *(client.post(url, content=result, headers=clerk | {"Content-Type": "text/csv"}) for _ in range(3))
    )
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert sorted(a.json()["replayed"] for a in answers) == [False, True, True]
    later = await client.post(url, content=result, headers=clerk)
    assert later.status_code == 200 and later.json()["replayed"] is True
    done = later.json()["batch"]
    assert done["status"] == "completed" and later.json()["outcomes"] == {"applied": 6}
    assert (done["succeeded_count"], done["failed_count"]) == (4, 2)
    assert done["succeeded"]["amount_fen"] == sum(v for k, v in owed.items() if k not in (poor, closed))

    settled = await orders_of(session_factory, nos)
    for no in nos:
        order = settled[no]
        if no in (poor, closed):
            assert order.status == "failed" and order.provider_txn_id is None
            assert await events_of(session_factory, no, "payment.payment.failed") == 1
            (failed,) = await events(session_factory, no, "payment.payment.failed")
            assert failed["reason"] == ("INSUFFICIENT_FUNDS" if no == poor else "ACCOUNT_CLOSED")
            assert await events_of(session_factory, no, "payment.withholding_item.failed") == 1
            assert await events_of(session_factory, no, "payment.payment.succeeded") == 0
        else:
            assert order.status == "succeeded" and order.provider_txn_id and order.paid_at
            assert await events_of(session_factory, no, "payment.payment.succeeded") == 1
    async with session_factory() as s:
        failed = (
            await s.execute(
                select(outbox_messages.c.payload).where(
                    outbox_messages.c.event_type == "payment.withholding_item.failed",
                    outbox_messages.c.key.in_([poor, closed]),
                )
            )
        ).scalars()
        reasons = {json.loads(p)["data"]["account_no"]: json.loads(p)["data"]["failure_code"] for p in failed}
        callbacks = await s.scalar(
            select(func.count())
            .select_from(ProviderCallback)
            .where(ProviderCallback.provider == f"withholding:{bank}")
        )
    assert reasons == {poor: "INSUFFICIENT_FUNDS", closed: "ACCOUNT_CLOSED"}
    assert callbacks == 6  # each line recorded once, for all four ingestions
    assert await events_of(session_factory, batch["batch_no"], "payment.withholding_batch.completed") == 1
    failures = await client.get(
        f"/v1/withholding-batches/{batch['batch_no']}/items?status=failed", headers=clerk
    )
    assert {(i["account_no"], i["failure_code"]) for i in failures.json()["items"]} == {
        (poor, "INSUFFICIENT_FUNDS"),
        (closed, "ACCOUNT_CLOSED"),
    }
    assert failures.json()["items"][0]["failure_text"].startswith("银行账户")

    different = simulator.withholding_result(file.content)
    refused = await client.post(url, content=different, headers=clerk)
    assert refused.status_code == 409 and refused.json()["code"] == "withholding_result_already_applied"

    # The next day: the two failures are withheld again; the four paid since billing's report are not.
    tomorrow = day + timedelta(days=1)
    nxt = await client.post(
        "/v1/withholding-batches", json={"bank_code": bank, "day": str(tomorrow)}, headers=clerk
    )
    assert nxt.status_code == 201, nxt.text
    nxt_file = await client.get(
        f"/v1/withholding-batches/{nxt.json()['batch_no']}/request-file", headers=clerk
    )
    retried = files.parse_request_file(nxt_file.content)
    assert sorted(i.account_no for i in retried.items) == sorted([poor, closed])
    # a bank serial that already paid another order refuses the whole file (nothing applied)
    reused = files.build_result_file(
        retried.batch_no,
        retried.merchant_no,
        bank,
        [
            files.ResultLine(i.order_no, "SUCCESS", settled[nos[0]].provider_txn_id, i.amount_fen)
            for i in retried.items[:1]
        ]
        + [
            files.ResultLine(i.order_no, "FAILED", "", i.amount_fen, "ACCOUNT_CLOSED")
            for i in retried.items[1:]
        ],
        processed_at=retried.created_at,
    )
    clash = await client.post(
        f"/v1/withholding-batches/{retried.batch_no}/result-file", content=reused, headers=clerk
    )
    assert clash.status_code == 422 and clash.json()["code"] == "withholding_result_rejected"
    assert clash.json()["errors"][0]["line"] == 2 and "already paid" in clash.json()["errors"][0]["message"]
    async with session_factory() as s:
        still = (
            await s.execute(
                select(PaymentOrder.status).where(
                    PaymentOrder.order_no.in_([i.order_no for i in retried.items])
                )
            )
        ).scalars()
        assert set(still) == {"pending"}


async def test_concurrent_requests_for_one_bank_and_day_make_one_batch(
    settings, session_factory, client, auth
) -> None:
    bank, day = a_bank(settings), business_today() + timedelta(days=3)
    nos = [account_no() for _ in range(3)]
    for no in nos:
        await billing_reports(session_factory, settings, no, owed=2_000)
        await sign(client, auth, no, bank, card())
    body = {"bank_code": bank, "day": str(day)}
    answers = await asyncio.gather(
        *(
            client.post("/v1/withholding-batches", json=body, headers=auth("billing_supervisor"))
            for _ in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["batch_no"] for a in answers}) == 1
    async with session_factory() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(WithholdingBatch).where(WithholdingBatch.bank_code == bank)
            )
            == 1
        )
        assert (
            await s.scalar(
                select(func.count()).select_from(PaymentOrder).where(PaymentOrder.account_no.in_(nos))
            )
            == 3
        )
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/withholding-batches", json=body, headers=auth("billing_clerk") | key)
    replay = await client.post("/v1/withholding-batches", json=body, headers=auth("billing_clerk") | key)
    assert first.json() == replay.json() and replay.headers["Idempotent-Replayed"] == "true"


async def test_a_result_file_that_does_not_match_the_batch_is_refused_whole(
    settings, session_factory, client, auth, simulator
) -> None:
    bank, day = a_bank(settings), business_today()
    nos = [account_no() for _ in range(3)]
    for no in nos:
        await billing_reports(session_factory, settings, no, owed=3_000)
        await sign(client, auth, no, bank, card())
    clerk = auth("billing_clerk")
    batch = (
        await client.post("/v1/withholding-batches", json={"bank_code": bank, "day": str(day)}, headers=clerk)
    ).json()
    content = (
        await client.get(f"/v1/withholding-batches/{batch['batch_no']}/request-file", headers=clerk)
    ).content
    request = files.parse_request_file(content)
    a, b, _ = request.items
    lines = [
        files.ResultLine(a.order_no, "SUCCESS", "S-1", a.amount_fen),
        files.ResultLine(b.order_no, "SUCCESS", "S-2", b.amount_fen + 1),  # an amount that differs
        files.ResultLine("P209912310000000001", "SUCCESS", "S-3", 100),  # an order not in the batch
    ]
    bad = files.build_result_file(
        batch["batch_no"], "M000000001", bank, lines, processed_at=request.created_at
    )
    url = f"/v1/withholding-batches/{batch['batch_no']}/result-file"
    refused = await client.post(url, content=bad, headers=clerk)
    assert refused.status_code == 422 and refused.json()["code"] == "withholding_result_rejected"
    messages = [(e["line"], e["message"]) for e in refused.json()["errors"]]
    assert any(line == 3 and "differs" in m for line, m in messages), messages
    assert any(line == 4 and "not in the batch" in m for line, m in messages), messages
    assert any("no result for" in m for _, m in messages), messages
    garbage = await client.post(url, content=b"H,x\nnot a file", headers=clerk)
    assert garbage.status_code == 422 and garbage.json()["code"] == "withholding_result_rejected"
    empty = await client.post(url, content=b"  ", headers=clerk)
    assert empty.status_code == 422 and empty.json()["code"] == "withholding_file_empty"
    gbk = await client.post(url, content="H,批次".encode("gbk"), headers=clerk)
    assert gbk.status_code == 422
    assert {o.status for o in (await orders_of(session_factory, nos)).values()} == {"pending"}
    async with session_factory() as s:
        assert (
            await s.scalar(
                select(func.count())
                .select_from(ProviderCallback)
                .where(ProviderCallback.provider == f"withholding:{bank}")
            )
            == 0
        )
    assert (await client.get(f"/v1/withholding-batches/{batch['batch_no']}", headers=clerk)).json()[
        "status"
    ] == ("requested")
    cursor = await client.get(f"/v1/withholding-batches/{batch['batch_no']}/items?cursor=bad", headers=clerk)
    assert cursor.status_code == 422 and cursor.json()["code"] == "invalid_cursor"
    unknown = await client.post(
        "/v1/withholding-batches/W20991231NOBANK/result-file", content=bad, headers=clerk
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "withholding_batch_not_found"

    # A payer cancelled one order meanwhile: its success opens a refund case; the others apply.
    resident = auth(accounts=[a.account_no])
    cancelled = await client.post(f"/v1/payment-orders/{a.order_no}/cancellation", headers=resident)
    assert cancelled.status_code == 200, cancelled.text
    good = simulator.withholding_result(content)
    applied = await client.post(url, content=good, headers=clerk)
    assert applied.status_code == 200 and applied.json()["outcomes"] == {"applied": 2, "refund_case": 1}
    async with session_factory() as s:
        case = (await s.execute(select(RefundCase).where(RefundCase.order_no == a.order_no))).scalar_one()
    assert case.reason == "order_closed" and case.amount_fen == a.amount_fen


async def test_batches_refuse_bad_requests_and_check_who_asks(
    settings, session_factory, client, auth
) -> None:
    bank = a_bank(settings)
    today = business_today()
    body = {"bank_code": bank, "day": str(today)}
    assert (await client.post("/v1/withholding-batches", json=body, headers=auth("agent"))).status_code == 403
    assert (
        await client.post("/v1/withholding-batches", json=body, headers=auth(accounts=["1"]))
    ).status_code == 403
    assert (await client.post("/v1/withholding-batches", json=body)).status_code == 401
    empty = await client.post("/v1/withholding-batches", json=body, headers=auth("billing_clerk"))
    assert empty.status_code == 422 and empty.json()["code"] == "withholding_batch_empty"
    past = {"bank_code": bank, "day": str(today - timedelta(days=1))}
    r = await client.post("/v1/withholding-batches", json=past, headers=auth("billing_clerk"))
    assert r.status_code == 422 and r.json()["code"] == "withholding_day_past"
    r = await client.post(
        "/v1/withholding-batches",
        json={"bank_code": "nobank", "day": str(today)},
        headers=auth("billing_clerk"),
    )
    assert r.status_code == 422 and r.json()["code"] == "unknown_bank"
    r = await client.post(
        "/v1/withholding-batches", json={"bank_code": "ICBC!", "day": "x"}, headers=auth("billing_clerk")
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    r = await client.get("/v1/withholding-batches/W20991231NOBANK", headers=auth("analyst"))
    assert r.status_code == 404 and r.json()["code"] == "withholding_batch_not_found"
    r = await client.get("/v1/withholding-batches/W20991231NOBANK/request-file", headers=auth("analyst"))
    assert r.status_code == 403
    r = await client.get("/v1/withholding-batches/W20991231NOBANK/items?cursor=bad", headers=auth("analyst"))
    assert r.status_code == 404


def invoke(monkeypatch, settings, *args: str):
    monkeypatch.setenv("UTILIS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("UTILIS_ENVIRONMENT", "test")
    monkeypatch.setenv("UTILIS_WITHHOLDING_BANKS", json.dumps(settings.withholding_banks))
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli_app, list(args))
    finally:
        get_settings.cache_clear()


async def test_the_cli_makes_the_batch_simulates_the_bank_and_applies_the_result(
    monkeypatch, settings, session_factory, client, auth, tmp_path
) -> None:
    bank, day = a_bank(settings), business_today() + timedelta(days=1)
    nos = sorted(account_no() for _ in range(2))
    for no in nos:
        await billing_reports(session_factory, settings, no, owed=4_321)
        await sign(client, auth, no, bank, card())
    request = tmp_path / "request.csv"
    args = ("withholding-batch", "--bank", bank, "--day", day.isoformat(), "--out", str(request))
    made = await asyncio.to_thread(invoke, monkeypatch, settings, *args)
    assert made.exit_code == 0, made.output
    batch = json.loads(made.output)
    assert batch["created"] is True and batch["item_count"] == 2
    again = await asyncio.to_thread(invoke, monkeypatch, settings, *args)
    assert (
        json.loads(again.output)["created"] is False
        and json.loads(again.output)["batch_no"] == batch["batch_no"]
    )
    result = tmp_path / "result.csv"
    sim = await asyncio.to_thread(
        invoke, monkeypatch, settings, "withholding-simulate", str(request), "--out", str(result),
        "--fail", f"{nos[0]}=INSUFFICIENT_FUNDS",
    )  # fmt: skip
    assert sim.exit_code == 0, sim.output
    applied = await asyncio.to_thread(invoke, monkeypatch, settings, "withholding-result", str(result))
    assert applied.exit_code == 0, applied.output
    out = json.loads(applied.output)
    assert (out["replayed"], out["batch"]["succeeded_count"], out["batch"]["failed_count"]) == (False, 1, 1)
    replay = await asyncio.to_thread(invoke, monkeypatch, settings, "withholding-result", str(result))
    assert json.loads(replay.output)["replayed"] is True
    placed = await orders_of(session_factory, nos)
    assert (placed[nos[0]].status, placed[nos[1]].status) == ("failed", "succeeded")
    broken = tmp_path / "broken.csv"
    broken.write_bytes(result.read_bytes().replace(b"SUCCESS", b"WHATEVER"))
    refused = await asyncio.to_thread(
        invoke, monkeypatch, settings, "withholding-result", str(broken), "--batch", batch["batch_no"]
    )
    assert (
        refused.exit_code == 1 and json.loads(refused.stderr)["code"] == "withholding_result_already_applied"
    )


async def test_the_scheduler_makes_each_banks_batch_hands_its_file_over_and_applies_the_result(
    settings, session_factory, client, auth, simulator, tmp_path
) -> None:
    """代扣 without people: on a withholding day the scheduler's job writes each bank's request file into
    the exchange directory (once), applies every result file the bank's transfer brings back (once), and
    puts a file it refuses aside with its reason."""
    from datetime import time

    from payment.service_layer.withholding_exchange import STABLE_SECONDS, exchange
    from utilis_shared.timeutil import BUSINESS_TZ, utcnow

    bank = a_bank(settings)
    owed = {account_no(): 8_800 + 11 * i for i in range(3)}
    for no, amount in owed.items():
        await billing_reports(session_factory, settings, no, owed=amount)
        assert (await sign(client, auth, no, bank, card())).status_code == 201
    now = utcnow()
    today = now.astimezone(BUSINESS_TZ)
    job = settings.model_copy(
        update={
            "withholding_banks": {bank: "M000000001"},  # this test's bank only
            "withholding_exchange_dir": str(tmp_path),
            "withholding_days": [today.day],
            "withholding_run_after": time(0, 0),
        }
    )
    other_day = job.model_copy(update={"withholding_days": [today.day % 28 + 1]})
    nothing = await exchange(session_factory, other_day, now=now)
    assert (nothing.batches_written, nothing.results_applied) == (0, 0)
    assert not (tmp_path / bank).exists()

    first = await exchange(session_factory, job, now=now)
    assert first.batches_written == 1
    (request_path,) = (tmp_path / bank / "out").glob("*.csv")
    assert request_path.name == f"W{today:%Y%m%d}{bank.upper()}.csv"
    request = files.parse_request_file(request_path.read_bytes())
    assert {i.account_no: i.amount_fen for i in request.items} == owed
    assert not list((tmp_path / bank / "out").glob(".*"))  # no temporary file left behind
    again = await exchange(session_factory, job, now=now)
    assert again.batches_written == 0 and len(list((tmp_path / bank / "out").iterdir())) == 1
    taken = request_path.read_bytes()  # the transfer takes the file to the bank: it is never written again
    request_path.unlink()
    after = await exchange(session_factory, job, now=now)
    assert after.batches_written == 0 and not list((tmp_path / bank / "out").iterdir())
    shown = await client.get(f"/v1/withholding-batches/{request.batch_no}", headers=auth("billing_clerk"))
    assert shown.status_code == 200 and shown.json()["request_handed_over_at"] is not None

    poor = sorted(owed)[0]
    result = simulator.withholding_result(taken, failures={poor: "INSUFFICIENT_FUNDS"})
    inbox = tmp_path / bank / "in"
    inbox.mkdir()
    (inbox / "result.csv").write_bytes(result)
    (inbox / "garbage.csv").write_bytes(b"not,a,result\n")
    writing = await exchange(session_factory, job, now=now)  # just written: maybe still being written
    assert writing.results_applied == writing.results_rejected == 0 and len(list(inbox.iterdir())) == 2
    later = utcnow() + timedelta(seconds=STABLE_SECONDS + 1)  # the transfer is done with them
    applied = await exchange(session_factory, job, now=later)
    assert (applied.results_applied, applied.results_rejected, applied.results_replayed) == (1, 1, 0)
    assert not list(inbox.iterdir())
    assert (tmp_path / bank / "processed" / "result.csv").read_bytes() == result
    reason = (tmp_path / bank / "rejected" / "garbage.csv.reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("withholding_result_rejected:")
    placed = await orders_of(session_factory, list(owed))
    assert {no: o.status for no, o in placed.items()} == {
        no: "failed" if no == poor else "succeeded" for no in owed
    }

    (inbox / "result.csv").write_bytes(result)  # the transfer brings the same file again
    replayed = await exchange(session_factory, job, now=utcnow() + timedelta(seconds=STABLE_SECONDS + 1))
    assert (replayed.results_applied, replayed.results_replayed) == (0, 1)
    assert len(list((tmp_path / bank / "processed").glob("result*.csv"))) == 2  # both kept
    for no in owed:
        assert await events_of(session_factory, no, "payment.payment.succeeded") == (0 if no == poor else 1)
