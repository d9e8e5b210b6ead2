"""The idempotent consumer and the 360° projections, against real Kafka and PostgreSQL.

- Duplicates are absorbed by the inbox: an event delivered twice counts once.
- A poison message lands on ``<topic>.dlq`` after bounded retries, with the reason in its headers, while
  later messages on the same partition still flow; garbage that is not an event goes there at once.
- A transient failure is retried and then applied exactly once.
- Projected events appear in the 360° view; a late, older event does not roll it back.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select, text

from customer.adapters.orm import AccountProjection
from customer.service_layer.projections import CONSUMED_TOPICS, project, registry
from utilis_shared import devstack
from utilis_shared.db import inbox_messages
from utilis_shared.events import Event
from utilis_shared.inbox import EventConsumer, HandlerRegistry
from utilis_shared.kafka import decode_headers


def billing_event(event_type: str, account_no: str, **data) -> Event:
    return Event(
        type=event_type,
        source="metering-and-billing",
        subject=account_no,
        data={"account_no": account_no, **data},
    )


async def projection(session_factory, account_no: str, view: str, item: str = "") -> dict | None:
    async with session_factory() as s:
        row = await s.get(AccountProjection, (account_no, view, item))
        return None if row is None else row.data


async def dlq_messages(settings, topic: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(
        settings.topic(f"{topic}.dlq"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    found = []
    try:
        deadline = time.monotonic() + 20
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


async def test_duplicates_poison_and_later_messages(settings, session_factory):
    account_no = f"T{uuid.uuid4().hex[:10].upper()}"
    first = billing_event(
        "billing.bill.issued", account_no, bill_no="B-1", total_fen=207600, due_date="2026-12-15"
    )
    poison = billing_event("billing.bill.issued", account_no, total_fen=1)  # no bill_no: cannot be projected
    later = billing_event(
        "billing.bill.issued", account_no, bill_no="B-2", total_fen=5000, due_date="2027-01-15"
    )
    # One key, so one partition: the consumer meets them in this order, and reaching `later` means the
    # poison and the garbage before it have been dealt with.
    await devstack.publish(
        settings.kafka_bootstrap,
        settings.topic("billing.events"),
        first,
        first,
        poison,
        b"\x00not json",
        later,
        key=account_no,
    )

    group = f"customer-test-{uuid.uuid4().hex[:6]}"
    from utilis_shared.kafka import make_consumer

    consumer = EventConsumer(
        settings,
        session_factory,
        registry,
        ["billing.events"],
        consumer=make_consumer(settings, "billing.events", group_id=group),
    )

    async def done() -> bool:
        return await projection(session_factory, account_no, "bill", "B-2") is not None

    await devstack.run_until(consumer, done)
    assert (await projection(session_factory, account_no, "bill", "B-1"))["total_fen"] == 207600
    async with session_factory() as s:
        inboxed = (
            (
                await s.execute(
                    select(inbox_messages.c.event_id).where(
                        inbox_messages.c.event_id.in_([first.id, poison.id, later.id])
                    )
                )
            )
            .scalars()
            .all()
        )
    assert sorted(inboxed) == sorted([first.id, later.id])  # once each; the poison was never claimed

    dead = [m for m in await dlq_messages(settings, "billing.events", 2) if m.key == account_no.encode()]
    reasons = {
        decode_headers(m.headers)["dlq_attempts"]: decode_headers(m.headers)["dlq_reason"] for m in dead
    }
    assert set(reasons) == {str(settings.consumer_max_attempts), "0"}
    assert "without bill_no" in reasons[str(settings.consumer_max_attempts)]
    assert "invalid envelope" in reasons["0"]
    assert any(m.value == poison.to_bytes() for m in dead)


async def test_transient_failure_is_retried_then_applied_once(settings, session_factory):
    account_no = f"T{uuid.uuid4().hex[:10].upper()}"
    calls = {"n": 0}
    flaky = HandlerRegistry()

    @flaky.on("billing.balance.changed")
    async def sometimes_fails(uow, event):
        calls["n"] += 1
        await project(uow, event)  # the effect happens, then the transaction fails: it must roll back
        if calls["n"] < 3:
            raise ConnectionError("database hiccup")

    event = billing_event("billing.balance.changed", account_no, owed_fen=1200, prepaid_fen=0)
    await devstack.publish(settings.kafka_bootstrap, settings.topic("billing.events"), event)
    from utilis_shared.kafka import make_consumer

    consumer = EventConsumer(
        settings,
        session_factory,
        flaky,
        ["billing.events"],
        consumer=make_consumer(settings, "billing.events", group_id=f"flaky-{uuid.uuid4().hex[:6]}"),
    )

    async def done() -> bool:
        return await projection(session_factory, account_no, "balance") is not None

    await devstack.run_until(consumer, done)
    assert calls["n"] == 3
    async with session_factory() as s:
        n = (
            await s.execute(
                select(func.count()).select_from(inbox_messages).where(inbox_messages.c.event_id == event.id)
            )
        ).scalar_one()
    assert n == 1


async def test_projections_fill_the_360_view_and_ignore_stale_events(
    settings, session_factory, client, auth, open_account
):
    account_no = (await open_account())["account_no"]
    now = datetime.now(UTC)
    issued = billing_event(
        "billing.bill.issued",
        account_no,
        bill_no="HB202611-0001",
        cycle="2026-2027 供暖季",
        total_fen=207600,
        due_date="2026-12-15",
        status="issued",
    )
    balance_new = Event(
        type="billing.balance.changed",
        source="metering-and-billing",
        subject=account_no,
        time=now,
        data={"account_no": account_no, "owed_fen": 0, "prepaid_fen": 2400},
    )
    balance_old = Event(
        type="billing.balance.changed",
        source="metering-and-billing",
        subject=account_no,
        time=now - timedelta(minutes=5),
        data={"account_no": account_no, "owed_fen": 207600},
    )
    paid = Event(
        type="payment.payment.succeeded",
        source="payment",
        subject=account_no,
        data={"account_no": account_no, "payment_id": "P-1", "amount_fen": 210000, "channel": "wechat"},
    )
    await devstack.publish(
        settings.kafka_bootstrap, settings.topic("billing.events"), issued, balance_new, balance_old
    )
    await devstack.publish(settings.kafka_bootstrap, settings.topic("payment.events"), paid)
    from utilis_shared.kafka import make_consumer

    consumer = EventConsumer(
        settings,
        session_factory,
        registry,
        CONSUMED_TOPICS,
        consumer=make_consumer(settings, *CONSUMED_TOPICS, group_id=f"view-{uuid.uuid4().hex[:6]}"),
    )

    async def done() -> bool:
        async with session_factory() as s:
            got = (
                await s.execute(
                    select(func.count())
                    .select_from(inbox_messages)
                    .where(
                        inbox_messages.c.event_id.in_([issued.id, balance_new.id, balance_old.id, paid.id])
                    )
                )
            ).scalar_one()
        return got == 4

    await devstack.run_until(consumer, done)
    view = (await client.get(f"/v1/accounts/{account_no}/view", headers=auth(accounts=[account_no]))).json()
    services = view["accounts"][0]["services"]
    assert services["latest_bills"][0]["bill_no"] == "HB202611-0001"
    assert (
        services["balance"]["owed_fen"] == 0 and services["balance"]["prepaid_fen"] == 2400
    )  # not rolled back
    assert services["recent_payments"][0]["amount_fen"] == 210000


async def test_a_batch_is_one_transaction_and_a_poison_event_in_it_costs_a_redo_not_an_effect(
    settings, session_factory
):
    """Twenty events of one partition (one delivered twice, one poison) reach the consumer in one fetch:
    they are applied together in one transaction; the poison rolls that back, the batch is redone one
    event at a time, and in the end every good event's effect (an emitted event, so an outbox row) exists
    exactly once, the poison's not at all."""
    account_no = f"T{uuid.uuid4().hex[:10].upper()}"
    events = [
        billing_event("billing.balance.changed", account_no, owed_fen=i, prepaid_fen=0) for i in range(20)
    ]
    poison = events[7]
    units: list[int] = []
    batched = HandlerRegistry()

    @batched.on("billing.balance.changed")
    async def echo(uow, event):
        units.append(id(uow))
        await project(uow, event)
        uow.emit(Event(type="test.echoed", source="test", subject=account_no, data={"of": str(event.id)}))
        if event.id == poison.id:
            raise ValueError("poison")

    await devstack.publish(
        settings.kafka_bootstrap,
        settings.topic("billing.events"),
        *events[:12],
        events[3],  # a redelivery inside the same batch
        *events[12:],
        key=account_no,
    )
    from utilis_shared.kafka import make_consumer

    consumer = EventConsumer(
        settings,
        session_factory,
        batched,
        ["billing.events"],
        consumer=make_consumer(settings, "billing.events", group_id=f"batch-{uuid.uuid4().hex[:6]}"),
    )
    await consumer.start()
    try:
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 21 and time.monotonic() < deadline:
            for batch in (await consumer.consumer.getmany(timeout_ms=500, max_records=100)).values():
                records += [r for r in batch if r.key == account_no.encode()]
        assert len(records) == 21
        outcomes = await consumer.handle_batch(records)
    finally:
        await consumer.close()

    assert outcomes.count("processed") == 19
    assert outcomes.count("duplicate") == 1 and outcomes[12] == "duplicate"
    assert outcomes.count("dead_lettered") == 1 and outcomes[7] == "dead_lettered"
    # The first pass ran in one unit of work (8 handler calls up to the poison); then one per event.
    assert len(set(units[:8])) == 1
    async with session_factory() as s:
        echoed = (
            (
                await s.execute(
                    text(
                        "SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'of' FROM outbox_messages "
                        "WHERE key = :key AND event_type = 'test.echoed'"
                    ),
                    {"key": account_no},
                )
            )
            .scalars()
            .all()
        )
    assert sorted(echoed) == sorted(str(e.id) for e in events if e is not poison)
    assert (await projection(session_factory, account_no, "balance"))["owed_fen"] == 19


async def test_events_nobody_handles_are_skipped_without_an_inbox_row(settings, session_factory):
    account_no = f"T{uuid.uuid4().hex[:10].upper()}"
    handled = billing_event("billing.balance.changed", account_no, owed_fen=5, prepaid_fen=0)
    unhandled = billing_event("billing.meter.calibrated", account_no, serial="M-1")
    await devstack.publish(settings.kafka_bootstrap, settings.topic("billing.events"), unhandled, handled)
    from utilis_shared.kafka import make_consumer

    consumer = EventConsumer(
        settings,
        session_factory,
        registry,
        ["billing.events"],
        consumer=make_consumer(settings, "billing.events", group_id=f"skip-{uuid.uuid4().hex[:6]}"),
    )

    async def done() -> bool:
        return await projection(session_factory, account_no, "balance") is not None

    await devstack.run_until(consumer, done)
    async with session_factory() as s:
        inboxed = (
            (
                await s.execute(
                    select(inbox_messages.c.event_id).where(
                        inbox_messages.c.event_id.in_([handled.id, unhandled.id])
                    )
                )
            )
            .scalars()
            .all()
        )
    assert inboxed == [handled.id]
