"""The importer builds its events without pydantic (``importer._event_record``): the bytes must be exactly
those of ``catalog.build(payload).to_bytes()``, so the fast path cannot drift from the schemas."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from customer import events as ev
from customer.service_layer import importer as imp
from utilis_shared.context import correlation_id_var
from utilis_shared.events import Event

TOPIC = "test.customer.events"


def _both_ways(model: type[BaseModel], subject: str, data: dict[str, Any], payload: BaseModel) -> None:
    record = imp._event_record(model, subject, data, TOPIC)
    event_id, topic, key, event_type, raw, headers = record
    fast = Event.from_bytes(raw)
    model.model_validate(fast.data)  # a valid payload of its schema

    slow = ev.catalog.build(payload, subject=subject)
    # Same event but for its id and time (made when it is built): then the same bytes and the same headers.
    slow = slow.model_copy(update={"id": fast.id, "time": fast.time})
    assert raw == slow.to_bytes()
    assert Event.from_bytes(slow.to_bytes()) == fast
    assert model.model_validate(fast.data) == payload
    assert (event_id, topic, key, event_type) == (slow.id, TOPIC, slow.subject, slow.type)
    assert json.loads(headers) == slow.kafka_headers_dict()


CONTACTS = [
    imp._contact_data("mobile", None, "138****5678", "k1:AAAA+/==", True),
    imp._contact_data("landline", "家里", "010****1234", "k1:BBBB", False),
]


@pytest.mark.parametrize("correlation_id", [None, "req-1"])
def test_customer_registered(correlation_id: str | None) -> None:
    cid = imp._new_id()
    token = correlation_id_var.set(correlation_id)
    try:
        data = imp._registered_data(
            cid,
            "C000000042",
            "person",
            '王"小\\明',
            "resident_id",
            "110***********1234",
            CONTACTS,
            ("elderly_alone", "vip"),
        )
        payload = ev.CustomerRegistered(
            customer_id=cid,
            customer_no="C000000042",
            kind="person",
            name='王"小\\明',
            id_type="resident_id",
            id_number_masked="110***********1234",
            contacts=[ev.ContactRef(**c) for c in CONTACTS],
            tags=["elderly_alone", "vip"],
        )
        _both_ways(ev.CustomerRegistered, str(cid), data, payload)
    finally:
        correlation_id_var.reset(token)


@pytest.mark.parametrize(
    ("area", "latitude", "longitude"),
    [
        (Decimal("85.50"), None, None),
        (None, Decimal("39.904200"), Decimal("116.407400")),
        (Decimal("1E+2"),) * 3,
    ],
)
def test_account_opened(area: Decimal | None, latitude: Decimal | None, longitude: Decimal | None) -> None:
    cid, pid, mid = imp._new_id(), uuid.uuid4(), imp._new_id()
    premise = imp._premise_data(
        pid,
        "平房区",
        "平新家园二期",
        "4",
        "1",
        "301",
        "平房区平新家园二期4栋1单元301室",
        area,
        latitude,
        longitude,
    )
    meters = [imp._meter_data(mid, "HM-0001", "heat", "remote", date(2023, 12, 31))]
    data = imp._opened_data(
        "8000000003",
        cid,
        "C000000001",
        "heating",
        "residential",
        3,
        date(2023, 12, 31),
        premise,
        meters,
        CONTACTS,
    )
    payload = ev.AccountOpened(
        account_no="8000000003",
        customer_id=cid,
        customer_no="C000000001",
        utility="heating",
        customer_class="residential",
        household_size=3,
        opened_on=date(2023, 12, 31),
        premise=ev.PremiseRef(
            premise_id=pid,
            district="平房区",
            community="平新家园二期",
            building="4",
            unit="1",
            room="301",
            address="平房区平新家园二期4栋1单元301室",
            heated_area_m2=area,
            latitude=latitude,
            longitude=longitude,
        ),
        meters=[
            ev.MeterRef(
                meter_id=mid,
                serial_no="HM-0001",
                kind="heat",
                multiplier=1,
                reading_mode="remote",
                installed_on=date(2023, 12, 31),
                initial_reading=0,
            )
        ],
        contacts=[ev.ContactRef(**c) for c in CONTACTS],
    )
    _both_ways(ev.AccountOpened, "8000000003", data, payload)
    # The meterless version the loader writes when a meter was installed elsewhere in the meantime.
    _both_ways(
        ev.AccountOpened, "8000000003", {**data, "meters": []}, payload.model_copy(update={"meters": []})
    )
