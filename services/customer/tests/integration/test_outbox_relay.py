"""The transactional outbox and its relay against real PostgreSQL and Kafka.

- An account change and its event commit together or not at all.
- A relay killed (SIGKILL) in the middle of publishing loses no event: after a restart every event is on
  the topic (some possibly twice, which consumers' inboxes absorb), and the outbox is drained.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select, text

from customer.adapters.orm import Account, Premise
from customer.api.schemas import AccountOpen
from customer.service_layer import accounts
from utilis_shared import devstack
from utilis_shared.auth import Principal
from utilis_shared.db import UnitOfWork, outbox_messages
from utilis_shared.events import Event

STAFF = Principal(subject="agent-outbox", kind="staff", roles=frozenset({"agent"}))


def open_request(person, premise) -> AccountOpen:
    return AccountOpen.model_validate({"customer": person(), "premise": premise(), "utility": "heating"})


async def count(session_factory, stmt) -> int:
    async with session_factory() as s:
        return int((await s.execute(stmt)).scalar_one())


@pytest.fixture(scope="module")
async def failing_outbox_trigger(engine):
    """A trigger that makes outbox inserts fail when the transaction sets utilis.fail_outbox = on."""
    async with engine.begin() as conn:
        await conn.execute(
            text("""
            CREATE OR REPLACE FUNCTION test_fail_outbox() RETURNS trigger AS $$
            BEGIN
              IF current_setting('utilis.fail_outbox', true) = 'on' THEN
                RAISE EXCEPTION 'outbox write failed (test fault)';
              END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        )
        await conn.execute(text("DROP TRIGGER IF EXISTS test_fail_outbox ON outbox_messages"))
        await conn.execute(
            text(
                "CREATE TRIGGER test_fail_outbox BEFORE INSERT ON outbox_messages "
                "FOR EACH ROW EXECUTE FUNCTION test_fail_outbox()"
            )
        )
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER IF EXISTS test_fail_outbox ON outbox_messages"))


async def test_change_and_event_commit_together_or_not_at_all(
    session_factory, settings, cipher, person, premise, failing_outbox_trigger
):
    # 1. The event cannot be written: the account is not opened either.
    request = open_request(person, premise)
    uow = UnitOfWork(session_factory, settings)
    with pytest.raises(Exception, match="outbox write failed"):
        async with uow:
            await uow.session.execute(text("SET LOCAL utilis.fail_outbox = 'on'"))
            await accounts.open_account(uow, actor=STAFF, cipher=cipher, data=request)
            await uow.commit()
    community = request.premise.community
    assert (
        await count(
            session_factory, select(func.count()).select_from(Premise).where(Premise.community == community)
        )
        == 0
    )

    # 2. The business write fails after the event was staged: no event leaves.
    before = await count(session_factory, select(func.count()).select_from(outbox_messages))
    with pytest.raises(RuntimeError):
        async with uow:
            await accounts.open_account(uow, actor=STAFF, cipher=cipher, data=request)
            raise RuntimeError("crash before commit")
    assert await count(session_factory, select(func.count()).select_from(outbox_messages)) == before

    # 3. Both commit together.
    async with uow:
        account = await accounts.open_account(uow, actor=STAFF, cipher=cipher, data=request)
        await uow.commit()
    assert (
        await count(
            session_factory,
            select(func.count()).select_from(Account).where(Account.account_no == account.account_no),
        )
        == 1
    )
    assert (
        await count(
            session_factory,
            select(func.count())
            .select_from(outbox_messages)
            .where(
                outbox_messages.c.key == account.account_no,
                outbox_messages.c.event_type == "customer.account.opened",
            ),
        )
        == 1
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_relay(settings, log_path, batch_size: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "UTILIS_ENVIRONMENT": "test",
        "UTILIS_DATABASE_URL": settings.database_url,
        "UTILIS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "UTILIS_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "UTILIS_OUTBOX_BATCH_SIZE": str(batch_size),
        "UTILIS_OUTBOX_POLL_INTERVAL_SECONDS": "0.05",
        "UTILIS_MANAGEMENT_PORT": str(free_port()),
    }
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        [devstack.venv_bin("customer"), "relay"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def test_relay_killed_mid_batch_loses_no_event(session_factory, settings, tmp_path):
    total = 6000
    subject = f"relay-test-{uuid.uuid4().hex[:8]}"
    uow = UnitOfWork(session_factory, settings)
    ids: set[str] = set()
    for start in range(0, total, 1000):
        async with uow:
            for i in range(start, start + 1000):
                event = Event(type="customer.test.pinged", source="customer", subject=subject, data={"n": i})
                ids.add(str(event.id))
                uow.emit(event)
            await uow.commit()

    topic = settings.topic("customer.events")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[str] = []

    async def drain(until: float) -> None:
        while time.monotonic() < until:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    event = Event.from_bytes(r.value)
                    if event.subject == subject:
                        received.append(str(event.id))
            if set(received) >= ids:
                return

    pending = (
        select(func.count())
        .select_from(outbox_messages)
        .where(outbox_messages.c.key == subject, outbox_messages.c.sent_at.is_(None))
    )
    try:
        relay = start_relay(settings, tmp_path / "relay.log", batch_size=100)
        # Kill it hard as soon as it has published something, while most of the backlog is still unsent.
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            await drain(time.monotonic() + 0.05)
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=10)
        assert received, (tmp_path / "relay.log").read_text()[-2000:]
        left = await count(session_factory, pending)
        # Events are already on the topic while rows are still unsent: the relay died mid-way.
        assert left > 0, "the kill must land before the backlog is drained"

        relay = start_relay(settings, tmp_path / "relay.log", batch_size=500)
        await drain(time.monotonic() + 90)
        assert set(received) == ids, f"missing {len(ids - set(received))} events"
        for _ in range(100):
            if await count(session_factory, pending) == 0:
                break
            await asyncio.sleep(0.1)
        assert await count(session_factory, pending) == 0
        # Graceful stop: SIGTERM finishes the batch at hand and exits 0.
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=30) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
        await consumer.stop()
    duplicates = len(received) - len(set(received))
    print(f"relay kill test: {total} events, {left} unsent at the kill, {duplicates} delivered twice")


async def test_outbox_commits_wake_the_relay_with_fewer_notifications_than_commits(session_factory, settings):
    """Forty concurrent outbox commits: the relay's channel hears of them (the last notification comes
    after the last commit), in fewer notifications than commits (one NOTIFY covers the commits before it)."""
    import asyncpg

    from utilis_shared.db import OUTBOX_CHANNEL, RelayWaker

    heard: list[float] = []
    last_heard = asyncio.Event()
    wakers: set[RelayWaker] = set()
    listener = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
    await listener.add_listener(OUTBOX_CHANNEL, lambda *_: (heard.append(time.monotonic()), last_heard.set()))
    try:

        async def write(i: int) -> float:
            async with UnitOfWork(session_factory, settings) as uow:
                uow.emit(Event(type="test.noted", source="test", subject=f"wake-{i}", data={"i": i}))
                await uow.commit()
                wakers.add(RelayWaker.of(uow.session))
            return time.monotonic()

        committed = await asyncio.gather(*(write(i) for i in range(40)))
        (waker,) = wakers  # one per engine
        await waker.flush()
        while not heard or heard[-1] < max(committed):
            last_heard.clear()
            await asyncio.wait_for(last_heard.wait(), 5)
    finally:
        await listener.close()
    assert heard and heard[-1] >= max(committed)
    assert len(heard) < 40
