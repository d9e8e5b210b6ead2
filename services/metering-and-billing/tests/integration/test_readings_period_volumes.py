"""``period_volumes`` (what the billing runs call) against the real PostgreSQL: boundaries at 00:00
Asia/Shanghai, rollover, multiplier, a meter replaced through ``customer.meter.replaced``, a meter installed
inside the period, an estimate at the end, pending readings ignored, absent accounts; in bulk."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import event as sa_event

from billing.service_layer import accounts
from billing.service_layer.readings import period_volumes
from customer.events import MeterReplaced
from customer.events import catalog as customer_catalog
from utilis_shared.db import UnitOfWork

JAN_START = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 Asia/Shanghai
JAN = (date(2026, 1, 1), date(2026, 2, 1))


async def read(client, auth, account_no, value, at, **extra):
    body = {"read_at": at.isoformat(), "value": str(value), **extra}
    response = await client.post(f"/v1/accounts/{account_no}/readings", json=body, headers=auth("technician"))
    assert response.status_code == 201, response.text
    return response.json()


def at(day: int, hour: int = 2, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


async def test_period_volumes_for_several_accounts(
    client, auth, open_account, meter, session_factory, settings, engine
) -> None:
    # A: plain; its December reading sits exactly on the start boundary (belongs to the earlier period)
    a = await open_account(meters=[meter(initial="100")])
    a_start = await read(client, auth, a, 130, JAN_START)
    await read(client, auth, a, 145, at(15))
    a_end = await read(client, auth, a, 160, at(31, 10))  # 18:00 in Shanghai, still January
    await read(client, auth, a, 170, at(31, 17))  # 01:00 on 1 February in Shanghai: next period
    # B: the register wraps (5-digit gas meter)
    b = await open_account(meters=[meter(initial="99950")])
    await read(client, auth, b, 20, at(20))
    # C: multiplier 2.5
    c = await open_account(meters=[meter(initial="100", multiplier="2.5")])
    await read(client, auth, c, "110.5", at(15))
    # D: no reading in January
    d = await open_account(meters=[meter(initial="100")])
    # E: installed on 10 January: counted from its installation reading
    e = await open_account(meters=[meter(initial="50", installed_on=date(2026, 1, 10))])
    await read(client, auth, e, 60, at(25))
    # F: ends on an estimate
    f = await open_account(meters=[meter(initial="100")])
    await read(client, auth, f, 131, at(1, 2, month=12).replace(year=2025))
    estimate = await client.post(
        f"/v1/accounts/{f}/readings/estimates",
        json={"read_at": at(20).isoformat()},
        headers=auth("billing_clerk"),
    )
    assert estimate.status_code == 201, estimate.text
    # G: only a pending reading in January (value decreased): not billable
    g = await open_account(meters=[meter(initial="1000")])
    await read(client, auth, g, 1500, at(1, 2, month=12).replace(year=2025))
    assert (await read(client, auth, g, 1200, at(15)))["status"] == "pending_review"
    # H: meter replaced on 15 January (old final 170; new meter from 0, multiplier 2)
    old = meter(initial="100")
    h = await open_account(meters=[old])
    await read(client, auth, h, 150, at(10))
    new = meter(initial="0", multiplier="2", installed_on=date(2026, 1, 15))
    replaced = customer_catalog.build(
        MeterReplaced(
            account_no=h,
            old_meter_id=old.meter_id,
            old_serial_no=old.serial_no,
            removed_on=date(2026, 1, 15),
            final_reading=Decimal(170),
            new_meter=new,
        ),
        subject=h,
    ).model_copy(update={"time": at(15, 3)})
    uow = UnitOfWork(session_factory, settings)
    async with uow:
        await accounts.meter_replaced(uow, replaced)
        await uow.commit()
    h_end = await read(client, auth, h, 10, at(25))
    assert (h_end["kind"], h_end["meter_serial"], Decimal(h_end["volume"])) == (
        "replacement",
        new.serial_no,
        40,
    )

    unknown = f"2{uuid.uuid4().int % 10**10:010d}"
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with session_factory() as session:
            volumes = await period_volumes(session, [a, b, c, d, e, f, g, h, unknown, a], *JAN)
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 2  # whatever the number of accounts

    assert set(volumes) == {a, b, c, e, f, h}
    assert volumes[a].volume == Decimal("30.000")
    assert (volumes[a].start_reading_id, volumes[a].end_reading_id) == (
        uuid.UUID(a_start["id"]),
        uuid.UUID(a_end["id"]),
    )
    assert volumes[a].estimated is False and volumes[a].tou_volumes is None
    assert volumes[b].volume == Decimal("70.000")
    assert volumes[c].volume == Decimal("26.250")
    assert volumes[e].volume == Decimal("10.000") and volumes[e].start_reading_id is not None
    assert volumes[f].estimated is True
    assert volumes[f].end_reading_id == uuid.UUID(estimate.json()["id"])
    assert volumes[f].volume == Decimal(estimate.json()["volume"]).quantize(Decimal("0.001"))
    assert volumes[h].volume == Decimal("90.000")  # 50 on the old meter, then 20 × 1 + 10 × 2

    # February for A: from the 31 January reading to the 1 February (Shanghai) one
    async with session_factory() as session:
        february = await period_volumes(session, [a, d], date(2026, 2, 1), date(2026, 3, 1))
    assert set(february) == {a}
    assert february[a].volume == Decimal("10.000")
    assert february[a].start_reading_id == uuid.UUID(a_end["id"])


async def test_period_volumes_refuses_an_empty_period_and_answers_nothing_for_nobody(session_factory) -> None:
    async with session_factory() as session:
        assert await period_volumes(session, [], *JAN) == {}
        try:
            await period_volumes(session, ["20000000001"], date(2026, 2, 1), date(2026, 2, 1))
        except ValueError:
            pass
        else:
            raise AssertionError("an empty period must be refused")
