"""The event envelope, its wire format, and the per-service EventCatalog."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from utilis_shared.context import KAFKA_CORRELATION_HEADER, correlation_id_var
from utilis_shared.events import Event, EventCatalog


def _catalog() -> tuple[EventCatalog, type[BaseModel], type[BaseModel]]:
    catalog = EventCatalog("metering-and-billing", type_prefix="billing")

    @catalog.register("billing.bill.issued", schema_version=2)
    class BillIssued(BaseModel):
        bill_no: str
        account_no: str
        amount_fen: int
        due_date: date

    @catalog.register("billing.bill.paid")
    class BillPaid(BaseModel):
        bill_no: str
        paid_fen: int

    return catalog, BillIssued, BillPaid


def test_event_round_trip_through_bytes() -> None:
    event = Event(
        type="customer.account.opened",
        source="customer",
        subject="1001234567",
        correlation_id="corr-1",
        data={"account_no": "1001234567", "holder": "张三", "balance_fen": 0},
    )
    raw = event.to_bytes()
    assert isinstance(raw, bytes)
    assert "张三" in raw.decode()
    back = Event.from_bytes(raw)
    assert back == event
    assert back.time.tzinfo is not None
    assert isinstance(back.id, uuid.UUID)


def test_event_defaults() -> None:
    before = datetime.now(UTC)
    a = Event(type="customer.account.opened", source="customer", subject="1", data={})
    b = Event(type="customer.account.opened", source="customer", subject="1", data={})
    assert a.id != b.id
    assert a.id.version == 7
    assert a.id < b.id or a.time <= b.time  # time-ordered ids
    assert a.time >= before
    assert a.time.utcoffset().total_seconds() == 0
    assert a.schema_version == 1
    assert a.correlation_id is None


def test_event_takes_correlation_id_from_context() -> None:
    token = correlation_id_var.set("corr-ctx-9")
    try:
        event = Event(type="customer.account.opened", source="customer", subject="1", data={})
    finally:
        correlation_id_var.reset(token)
    assert event.correlation_id == "corr-ctx-9"
    headers = event.kafka_headers_dict()
    assert headers == {
        "event_type": "customer.account.opened",
        "event_id": str(event.id),
        KAFKA_CORRELATION_HEADER: "corr-ctx-9",
    }


def test_kafka_headers_without_correlation() -> None:
    event = Event(type="t.a.b", source="t", subject="1", data={})
    assert KAFKA_CORRELATION_HEADER not in event.kafka_headers_dict()


def test_event_is_frozen() -> None:
    event = Event(type="t.a.b", source="t", subject="1", data={})
    with pytest.raises(ValidationError):
        event.subject = "2"


def test_from_bytes_refuses_incomplete_envelope() -> None:
    with pytest.raises(ValidationError):
        Event.from_bytes(json.dumps({"type": "t.a.b", "source": "t", "data": {}}).encode())


def test_register_refuses_type_without_prefix() -> None:
    catalog = EventCatalog("customer")
    with pytest.raises(ValueError, match="customer"):
        catalog.register("billing.bill.issued")
    with pytest.raises(ValueError):
        catalog.register("customer_account.opened")  # prefix must be followed by a dot
    catalog.register("customer.account.opened")  # fine


def test_default_prefix_replaces_dashes() -> None:
    catalog = EventCatalog("work-order")
    assert catalog.type_prefix == "work_order"
    catalog.register("work_order.order.created")
    with pytest.raises(ValueError):
        catalog.register("work-order.order.created")


def test_build_fills_the_envelope() -> None:
    catalog, bill_issued, bill_paid = _catalog()
    payload = bill_issued(
        bill_no="B-1", account_no="1001234567", amount_fen=207600, due_date=date(2026, 12, 15)
    )
    event = catalog.build(payload, subject="1001234567")
    assert event.type == "billing.bill.issued"
    assert event.source == "metering-and-billing"
    assert event.schema_version == 2
    assert event.subject == "1001234567"
    assert event.data == {
        "bill_no": "B-1",
        "account_no": "1001234567",
        "amount_fen": 207600,
        "due_date": "2026-12-15",
    }
    paid = catalog.build(bill_paid(bill_no="B-1", paid_fen=207600), subject="1001234567")
    assert paid.type == "billing.bill.paid"
    assert paid.schema_version == 1
    # The wire form survives the round trip.
    assert Event.from_bytes(event.to_bytes()).data == event.data


def test_payload_is_validated() -> None:
    _, bill_issued, _ = _catalog()
    with pytest.raises(ValidationError):
        bill_issued(bill_no="B-1", account_no="1", amount_fen="a lot", due_date="2026-12-15")


def test_build_refuses_unregistered_model() -> None:
    catalog, _, _ = _catalog()

    class Stray(BaseModel):
        x: int

    with pytest.raises(KeyError):
        catalog.build(Stray(x=1), subject="1")


def test_build_refuses_model_of_another_catalog() -> None:
    catalog, _, _ = _catalog()
    other = EventCatalog("billing")

    @other.register("billing.bill.voided")
    class BillVoided(BaseModel):
        bill_no: str

    with pytest.raises(KeyError):
        catalog.build(BillVoided(bill_no="B-1"), subject="1")


def test_build_refuses_subclass_of_registered_model() -> None:
    catalog, _, bill_paid = _catalog()

    class Sneaky(bill_paid):  # type: ignore[misc, valid-type]
        extra: str = "x"

    with pytest.raises(KeyError):
        catalog.build(Sneaky(bill_no="B", paid_fen=1), subject="1")


def test_types_is_a_copy() -> None:
    catalog, bill_issued, bill_paid = _catalog()
    types = catalog.types
    assert types == {"billing.bill.issued": bill_issued, "billing.bill.paid": bill_paid}
    types.clear()
    assert len(catalog.types) == 2


def test_json_schemas_have_id_and_title() -> None:
    catalog, _, _ = _catalog()
    schemas = catalog.json_schemas()
    assert list(schemas) == ["billing.bill.issued", "billing.bill.paid"]
    issued = schemas["billing.bill.issued"]
    assert issued["$id"] == "https://schemas.utilis.dev/events/billing.bill.issued/v2.json"
    assert issued["title"] == "billing.bill.issued"
    assert set(issued["required"]) == {"bill_no", "account_no", "amount_fen", "due_date"}
    assert issued["properties"]["due_date"]["format"] == "date"
    assert schemas["billing.bill.paid"]["$id"].endswith("/billing.bill.paid/v1.json")


def test_write_schemas_one_file_per_type(tmp_path: Path) -> None:
    catalog, _, _ = _catalog()
    folder = tmp_path / "events"
    written = catalog.write_schemas(folder)
    assert sorted(p.name for p in written) == ["billing.bill.issued.v2.json", "billing.bill.paid.v1.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["title"] == path.name.rsplit(".v", 1)[0]
        assert schema["$id"].endswith("/" + path.name.rsplit(".", 2)[-2] + ".json")
        assert path.read_text().endswith("\n")
    # Deterministic output: writing again yields identical files.
    before = {p.name: p.read_text() for p in written}
    catalog.write_schemas(folder)
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
