"""The service layer's own small rules for readings, without I/O: the register size of a meter, the business
boundary instant, billed volume across a meter replacement (each meter's multiplier), the replacement records
built from meter rows, cursors, and the IoT payload contract."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from billing.adapters.orm import Meter, MeterReadingRow
from billing.domain.readings import ConsumptionKind
from billing.service_layer import readings as r
from billing.settings import Settings


def meter(**kw) -> Meter:
    values = {
        "meter_id": uuid.uuid4(),
        "account_no": "20000000001",
        "serial_no": "GM-1",
        "kind": "gas",
        "multiplier": Decimal(1),
        "reading_mode": "manual",
        "digits": 5,
        "installed_on": date(2025, 12, 1),
        "initial_reading": Decimal(0),
        "status": "active",
    }
    return Meter(**(values | kw))


def reading(m: Meter, value: str, when: datetime) -> MeterReadingRow:
    return MeterReadingRow(
        id=uuid.uuid4(), meter_id=m.meter_id, meter_serial=m.serial_no, value=Decimal(value), read_at=when
    )


def test_register_digits_come_from_the_kind_and_hold_the_initial_reading() -> None:
    settings = Settings()
    assert r.register_digits(settings, "gas", Decimal(0)) == 5
    assert r.register_digits(settings, "electricity", Decimal("999999.9")) == 6
    assert r.register_digits(settings, "gas", Decimal("123456")) == 6  # wider than configured: widened
    assert r.register_digits(settings, "steam", Decimal(0)) == settings.meter_register_digits_default


def test_the_business_boundary_is_midnight_in_shanghai() -> None:
    assert r.business_start(date(2026, 1, 1)) == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)


def test_volume_across_a_replacement_uses_each_meters_multiplier() -> None:
    old = meter(serial_no="GM-OLD", final_reading=Decimal(170), multiplier=Decimal(1))
    new = meter(serial_no="GM-NEW", initial_reading=Decimal(5), multiplier=Decimal("2.5"))
    old.replaced_by_id = new.meter_id
    old.removed_at = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
    prev = reading(old, "150", datetime(2026, 1, 10, tzinfo=UTC))
    cur = reading(new, "15", datetime(2026, 1, 25, tzinfo=UTC))
    meters = {old.meter_id: old, new.meter_id: new}
    assert r._scaled(prev, cur, ConsumptionKind.REPLACEMENT, Decimal(30), meters) == Decimal(20) + Decimal(25)
    same = reading(new, "25", datetime(2026, 2, 25, tzinfo=UTC))
    assert r._scaled(cur, same, ConsumptionKind.NORMAL, Decimal(10), meters) == Decimal(25)
    (rep,) = r.replacements_of([old, new])
    assert (rep.old_serial, rep.old_final_value, rep.new_serial, rep.new_initial_value) == (
        "GM-OLD",
        Decimal(170),
        "GM-NEW",
        Decimal(5),
    )
    assert rep.replaced_at == old.removed_at
    assert r.replacements_of([meter()]) == []


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    when, ident = datetime(2026, 1, 1, 1, 0, tzinfo=UTC), uuid.uuid4()
    assert r.decode_cursor(r.encode_cursor(when, ident)) == (when, ident)
    for bad in ("x!", "", "bm90IGEgY3Vyc29y"):
        with pytest.raises(ValueError):
            r.decode_cursor(bad)
    with pytest.raises(ValueError):
        r.decode_queue_cursor("abc")


def test_the_iot_payload_contract() -> None:
    ok = r.ReadingReported.model_validate(
        {"meter_serial": "GM-1", "read_at": "2026-01-01T09:00:00+08:00", "value": "12.5", "gateway_id": "gw"}
    )
    assert ok.value == Decimal("12.5") and ok.external_id is None
    for bad in (
        {"meter_serial": "GM-1", "read_at": "2026-01-01T09:00:00", "value": "1", "gateway_id": "gw"},  # naive
        {"meter_serial": "GM-1", "read_at": "2026-01-01T09:00:00Z", "value": "1.2345", "gateway_id": "gw"},
        {"meter_serial": "GM-1", "read_at": "2026-01-01T09:00:00Z", "value": "-1", "gateway_id": "gw"},
        {"meter_serial": "GM-1", "read_at": "2026-01-01T09:00:00Z", "value": "1"},  # no gateway
    ):
        with pytest.raises(ValidationError):
            r.ReadingReported.model_validate(bad)


def test_the_metering_config_follows_the_settings() -> None:
    config = r.metering_config(Settings(readings_expected_cycle_days=30, readings_mad_threshold=Decimal(5)))
    assert config.expected_cycle is not None and config.expected_cycle.days == 30
    assert config.mad_threshold == 5
    assert r.metering_config(Settings()).expected_cycle is None
