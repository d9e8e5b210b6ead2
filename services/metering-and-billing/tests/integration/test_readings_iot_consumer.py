"""IoT gateways' ``metering.reading.reported`` through a real EventConsumer on real Kafka and PostgreSQL: a
reading delivered twice (same event) and re-sent (new event, same external_id) is recorded once; one for an
unknown meter is retried and dead-lettered with its reason; nothing is acknowledged silently."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select

from billing.adapters.orm import MeterReadingRow
from billing.service_layer.consumers import registry
from billing.service_layer.readings import IOT_EVENT_TYPE
from utilis_shared import devstack
from utilis_shared.db import create_session_factory, inbox_messages
from utilis_shared.events import Event
from utilis_shared.inbox import EventConsumer


def reported(key: str, **data) -> Event:
    return Event(type=IOT_EVENT_TYPE, source="iot-gateway/gw-17", subject=key, data=data)


async def dead_letters(settings, event_ids: set[str], seconds: float = 30.0) -> dict[str, dict[str, str]]:
    consumer = AIOKafkaConsumer(
        settings.topic("metering.readings.dlq"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: dict[str, dict[str, str]] = {}
    try:
        deadline = time.monotonic() + seconds
        while set(found) != event_ids and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = Event.from_bytes(record.value)
                    if str(event.id) in event_ids:
                        found[str(event.id)] = {k: v.decode() for k, v in record.headers}
    finally:
        await consumer.stop()
    return found


async def test_an_iot_reading_is_recorded_once_and_a_bad_one_is_dead_lettered(
    settings, engine, open_account, meter
) -> None:
    session_factory = create_session_factory(engine)
    m = meter(initial="100")
    account_no = await open_account(meters=[m])
    external_id = f"gw-17/{uuid.uuid4().hex[:8]}"
    read_at = datetime(2026, 1, 1, 1, 0, tzinfo=UTC).isoformat()
    first = reported(
        m.serial_no,
        external_id=external_id,
        meter_serial=m.serial_no,
        read_at=read_at,
        value="123.456",
        gateway_id="gw-17",
    )
    resent = reported(m.serial_no, **first.data)  # the gateway re-sends: new event id, same external_id
    unknown = reported(
        "NOPE-9999",
        external_id=f"{external_id}-x",
        meter_serial="NOPE-9999",
        read_at=read_at,
        value="1",
        gateway_id="gw-17",
    )
    malformed = reported(
        m.serial_no, meter_serial=m.serial_no, read_at="yesterday", value="1", gateway_id="gw-17"
    )
    await devstack.publish(
        settings.kafka_bootstrap,
        settings.topic("metering.readings"),
        first,
        first,
        resent,
        unknown,
        malformed,
    )

    consumer = EventConsumer(settings, session_factory, registry, settings.consumes)

    async def all_seen() -> bool:
        async with session_factory() as s:
            inboxed = await s.scalar(
                select(func.count())
                .select_from(inbox_messages)
                .where(inbox_messages.c.event_id.in_([first.id, resent.id]))
            )
        return (
            inboxed == 2 and len(await dead_letters(settings, {str(unknown.id), str(malformed.id)}, 0.5)) == 2
        )

    await devstack.run_until(consumer, all_seen)

    async with session_factory() as s:
        rows = (
            (
                await s.execute(
                    select(MeterReadingRow).where(
                        MeterReadingRow.account_no == account_no, MeterReadingRow.source == "iot_gateway"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(rows) == 1
    (row,) = rows
    assert (row.external_id, row.value, row.status) == (external_id, Decimal("123.456"), "accepted")
    assert row.entered_by == "gateway:gw-17"
    assert row.volume == Decimal("23.456")

    letters = await dead_letters(settings, {str(unknown.id), str(malformed.id)})
    assert letters[str(unknown.id)]["dlq_reason"].startswith("ReadingEventRefused: meter_not_found")
    assert letters[str(unknown.id)]["dlq_attempts"] == str(settings.consumer_max_attempts)
    assert "invalid_payload" in letters[str(malformed.id)]["dlq_reason"]


async def test_the_iot_topic_is_consumed_and_declared() -> None:
    from billing.settings import CONSUMED_TOPICS

    assert "metering.readings" in CONSUMED_TOPICS
    topics = {t.name: t for t in devstack.load_platform().topics}
    assert topics["metering.readings"].partitions == 6
    assert topics["metering.readings.dlq"].partitions == 1
    assert IOT_EVENT_TYPE in registry.handlers
