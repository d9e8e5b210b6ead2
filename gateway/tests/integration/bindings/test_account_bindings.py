"""The gateway consumer keeps residents' phone-to-account bindings from the customer service's events,
against the real gateway test database (and, in the last tests, real Kafka): envelopes built with the
customer service's own event catalog go through the consumer's handler path (inbox included)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from gateway.adapters.orm import BindingCustomer
from gateway.entrypoints.workers import make_consumer
from gateway.service_layer.residents import SOURCE_CUSTOMER, SOURCE_MANUAL, SOURCE_VERIFIED, bind_index
from gateway.settings import Settings
from utilis_shared import devstack
from utilis_shared.db import inbox_messages


def new_phone() -> str:
    return f"137{secrets.randbelow(10**8):08d}"


def new_account_no() -> str:
    return f"1{secrets.randbelow(10**10):010d}"


async def test_an_opened_account_is_bound_to_every_mobile_contact_once(
    events, deliver, accounts_of, bindings_of
):
    holder, mobile, second, account_no = uuid.uuid4(), new_phone(), new_phone(), new_account_no()
    opened = events.opened(account_no, holder, [mobile, "0451-86661234", second])

    assert await deliver(opened) == "processed"
    assert await accounts_of(mobile) == (account_no,)
    assert await accounts_of(second) == (account_no,)
    assert await bindings_of(mobile) == {account_no: SOURCE_CUSTOMER}

    # Redelivered (same event id): the inbox absorbs it.
    assert await deliver(opened) == "duplicate"
    assert await bindings_of(mobile) == {account_no: SOURCE_CUSTOMER}


async def test_a_phone_written_differently_binds_the_same_resident(events, deliver, accounts_of):
    account_no, phone = new_account_no(), new_phone()
    await deliver(events.opened(account_no, uuid.uuid4(), [f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}"]))
    assert await accounts_of(phone) == (account_no,)


async def test_a_transfer_moves_the_bindings_to_the_new_holder(
    events, deliver, accounts_of, bindings_of, in_db, phone_bidx
):
    old, new = uuid.uuid4(), uuid.uuid4()
    old_phone, new_phone_, tenant, operator_bound = new_phone(), new_phone(), new_phone(), new_phone()
    account_no, other_account = new_account_no(), new_account_no()
    await deliver(events.opened(account_no, old, [old_phone]))
    await deliver(events.opened(other_account, old, [old_phone]))
    await in_db(lambda uow: bind_index(uow, phone_bidx(tenant), [account_no], source=SOURCE_VERIFIED))
    await in_db(lambda uow: bind_index(uow, phone_bidx(operator_bound), [account_no], source=SOURCE_MANUAL))

    assert await deliver(events.transferred(account_no, old, new, [new_phone_])) == "processed"

    assert await accounts_of(old_phone) == (other_account,)  # the old holder keeps their other account
    assert await accounts_of(new_phone_) == (account_no,)
    assert await accounts_of(tenant) == ()  # bound by the previous holder's name: no longer valid
    assert await bindings_of(operator_bound) == {account_no: SOURCE_MANUAL}


async def test_a_closed_account_is_not_actable_any_more(
    events, deliver, accounts_of, bindings_of, in_db, phone_bidx
):
    holder, phone, late = uuid.uuid4(), new_phone(), new_phone()
    account_no, kept = new_account_no(), new_account_no()
    await deliver(events.opened(account_no, holder, [phone]))
    await deliver(events.opened(kept, holder, [phone]))
    await in_db(lambda uow: bind_index(uow, phone_bidx(late), [account_no], source=SOURCE_MANUAL))

    assert await deliver(events.closed(account_no)) == "processed"
    assert await accounts_of(phone) == (kept,)
    assert await bindings_of(late) == {}

    # An operator binding it afterwards does not make it actable either.
    await in_db(lambda uow: bind_index(uow, phone_bidx(late), [account_no], source=SOURCE_MANUAL))
    assert await accounts_of(late) == ()
    # A contact change of the holder does not bring it back.
    await deliver(events.updated(holder, "张三", [phone, late]))
    assert await accounts_of(late) == (kept,)


async def test_changed_contacts_resync_every_account_of_the_holder(events, deliver, accounts_of):
    holder, before, after = uuid.uuid4(), new_phone(), new_phone()
    first, second = new_account_no(), new_account_no()
    await deliver(events.registered(holder, "李四", [before]))
    await deliver(events.opened(first, holder, [before]))
    await deliver(events.opened(second, holder, [before]))
    stale_at = events.tick()

    await deliver(events.updated(holder, "李四", [after]))
    assert await accounts_of(before) == ()
    assert await accounts_of(after) == tuple(sorted([first, second]))

    # An older update delivered late does not roll the contacts back.
    await deliver(events.updated(holder, "李四", [before], at=stale_at))
    assert await accounts_of(before) == ()
    assert await accounts_of(after) == tuple(sorted([first, second]))


async def test_an_account_opened_event_older_than_the_holders_update_does_not_win(
    events, deliver, accounts_of
):
    """Customer events and account events travel on different partitions and may interleave."""
    holder, old_phone, new_phone_ = uuid.uuid4(), new_phone(), new_phone()
    account_no = new_account_no()
    opened_at = events.tick()
    await deliver(events.updated(holder, "王五", [new_phone_]))
    await deliver(events.opened(account_no, holder, [old_phone], at=opened_at))
    assert await accounts_of(new_phone_) == (account_no,)
    assert await accounts_of(old_phone) == ()


async def test_a_merge_moves_the_duplicates_accounts_to_the_survivor(
    events, deliver, accounts_of, session_factory
):
    survivor, duplicate = uuid.uuid4(), uuid.uuid4()
    survivor_phone, duplicate_phone = new_phone(), new_phone()
    kept, moved = new_account_no(), new_account_no()
    await deliver(events.registered(survivor, "赵六", [survivor_phone]))
    await deliver(events.registered(duplicate, "赵六", [duplicate_phone]))
    await deliver(events.opened(kept, survivor, [survivor_phone]))
    await deliver(events.opened(moved, duplicate, [duplicate_phone]))

    assert await deliver(events.merged(survivor, duplicate, [moved])) == "processed"

    # The customer service appends the duplicate's contacts to the survivor: both phones reach both.
    assert await accounts_of(survivor_phone) == tuple(sorted([kept, moved]))
    assert await accounts_of(duplicate_phone) == tuple(sorted([kept, moved]))
    async with session_factory() as s:
        row = await s.get(BindingCustomer, duplicate)
        assert row.merged_into == survivor

    # Later contact changes of the survivor apply to the moved account too.
    fresh = new_phone()
    await deliver(events.updated(survivor, "赵六", [fresh]))
    assert await accounts_of(fresh) == tuple(sorted([kept, moved]))
    assert await accounts_of(duplicate_phone) == ()


async def test_the_consumer_process_is_declared_and_started_with_the_right_command(monkeypatch):
    spec = devstack.load_platform().services["gateway"]
    assert spec.processes["consumer"] == 9202
    (proc,) = [
        p
        for p in devstack.processes_for(spec, devstack.LOCAL_DIR, devstack.LOCAL_DIR)
        if p.kind == "consumer"
    ]
    command, env = devstack.process_command(spec, proc)
    assert command == [devstack.venv_bin("gateway"), "consumer"]
    assert env == {"UTILIS_MANAGEMENT_PORT": "9202"}
    monkeypatch.setenv("UTILIS_MANAGEMENT_PORT", env["UTILIS_MANAGEMENT_PORT"])
    settings = Settings()
    assert settings.management_port == 9202
    assert settings.consumes == ["customer.events"]

    from typer.testing import CliRunner

    from gateway.entrypoints.cli import app

    result = CliRunner().invoke(app, ["consumer", "--help"])
    assert result.exit_code == 0, result.output


async def test_through_kafka_a_redelivered_event_is_applied_once(
    settings, session_factory, events, accounts_of
):
    """Produce to a per-test topic, run the consumer, see the binding; the same event again is a duplicate."""
    prefix = f"tb{uuid.uuid4().hex[:8]}."
    bootstrap = devstack.kafka_bootstrap()
    topics = [t for t in devstack.load_platform().topics if t.name.startswith("customer.events")]
    await devstack.ensure_topics(bootstrap, topics, prefix=prefix)
    kafka_settings = settings.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "kafka_topic_prefix": prefix,
            "consumer_retry_backoff_seconds": 0.02,
        }
    )
    try:
        account_no, phone = new_account_no(), new_phone()
        opened = events.opened(account_no, uuid.uuid4(), [phone])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for event in (opened, opened):
                await producer.send_and_wait(
                    kafka_settings.topic("customer.events"), value=event.to_bytes(), key=account_no.encode()
                )
        finally:
            await producer.stop()

        def outcomes(outcome: str) -> float:
            return (
                REGISTRY.get_sample_value(
                    "utilis_consumer_events_total",
                    {
                        "service": "gateway",
                        "topic": kafka_settings.topic("customer.events"),
                        "outcome": outcome,
                    },
                )
                or 0.0
            )

        consumer = make_consumer(
            kafka_settings, session_factory, group_id=f"gateway-test-{uuid.uuid4().hex[:6]}"
        )
        await consumer.start()
        task = asyncio.create_task(consumer.run_forever())
        try:
            deadline = time.monotonic() + 60
            while outcomes("duplicate") < 1:
                assert time.monotonic() < deadline, "the consumer did not get there in time"
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
        finally:
            consumer.stop()
            await asyncio.wait_for(task, 30)
            await consumer.close()

        assert await accounts_of(phone) == (account_no,)
        assert outcomes("processed") == 1
        assert outcomes("duplicate") == 1
        async with session_factory() as s:
            n = await s.scalar(
                select(func.count()).select_from(inbox_messages).where(inbox_messages.c.event_id == opened.id)
            )
        assert n == 1
    finally:
        await devstack.delete_topics(bootstrap, prefix)
