"""The README walkthrough, end to end on the running stack and through the gateway: an agent (password
grant) opens an account, transfers it, searches by phone, reads the 360° view; the events reach Kafka
through the real relay; an event from another service reaches the view through the real consumer; the new
holder signs in by SMS code and sees that view (bound by the gateway's consumer), but not a neighbour's."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from customer.domain.identity import resident_id_check_char
from utilis_shared import devstack
from utilis_shared.events import Event


def resident_id() -> str:
    born = f"{random.randint(1950, 1999)}0{random.randint(1, 9)}1{random.randint(0, 9)}"
    body = f"230102{born}{random.randint(0, 999):03d}"
    return body + resident_id_check_char(body)


def mobile() -> str:
    return f"15{random.randint(0, 9)}{random.randint(0, 99_999_999):08d}"


async def tail(topic: str) -> AIOKafkaConsumer:
    """A consumer positioned at the current end of every partition of ``topic``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=devstack.kafka_bootstrap(),
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    deadline = time.monotonic() + 10
    while not consumer.assignment() and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=100)
    for tp in consumer.assignment():
        await consumer.position(tp)  # resolves "latest" now, before the actions under test
    return consumer


async def event_types_for(
    consumer: AIOKafkaConsumer, key: str, want: set[str], seconds: float = 30
) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while not want <= seen and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=300)).values():
            seen |= {Event.from_bytes(r.value).type for r in records if r.key == key.encode()}
    return seen


async def test_walkthrough(customer_api, staff_login, resident_for):
    agent = await staff_login("agent")
    seller, buyer = ("王秀英", resident_id(), mobile()), ("孙志强", resident_id(), mobile())
    consumer = await tail("customer.events")
    try:
        opened = await customer_api.post(
            "/v1/accounts",
            headers={**agent, "Idempotency-Key": str(uuid.uuid4())},
            json={
                "customer": {"name": seller[0], "id_number": seller[1], "contacts": [{"phone": seller[2]}]},
                "premise": {
                    "district": "南岗区",
                    "community": f"学府四道街小区E2E{uuid.uuid4().hex[:6]}",
                    "building": "12",
                    "unit": "3",
                    "room": "502",
                    "heated_area_m2": "89.50",
                },
                "utility": "heating",
            },
        )
        assert opened.status_code == 201, opened.text
        no = opened.json()["account_no"]

        transferred = await customer_api.post(
            f"/v1/accounts/{no}/transfers",
            headers=agent,
            json={
                "to_customer": {"name": buyer[0], "id_number": buyer[1], "contacts": [{"phone": buyer[2]}]},
                "reason": "房屋买卖",
                "document_refs": ["dms://deed/e2e"],
            },
        )
        assert transferred.status_code == 200, transferred.text
        new_holder = transferred.json()["customer_id"]

        found = (await customer_api.get("/v1/customers", params={"phone": buyer[2]}, headers=agent)).json()[
            "items"
        ]
        assert [c["id"] for c in found] == [new_holder] and found[0]["account_nos"] == [no]

        view = (await customer_api.get(f"/v1/customers/{new_holder}/view", headers=agent)).json()
        assert view["customer"]["name"] == buyer[0] and view["accounts"][0]["account"]["account_no"] == no
        assert buyer[1] not in str(view) and buyer[2] not in str(view)

        # The outbox relay published both events to the real broker.
        seen = await event_types_for(
            consumer, no, {"customer.account.opened", "customer.account.transferred"}
        )
        assert {"customer.account.opened", "customer.account.transferred"} <= seen
    finally:
        await consumer.stop()

    # Billing's event reaches the resident's 360° view through the running consumer.
    producer = AIOKafkaProducer(bootstrap_servers=devstack.kafka_bootstrap(), acks="all")
    await producer.start()
    try:
        bill = Event(
            type="billing.bill.issued",
            source="metering-and-billing",
            subject=no,
            data={"account_no": no, "bill_no": f"HB{uuid.uuid4().hex[:8]}", "total_fen": 207600},
        )
        await producer.send_and_wait("billing.events", bill.to_bytes(), key=no.encode())
    finally:
        await producer.stop()
    # The buyer signs in on the app with the phone the account now lists (bound by the gateway's consumer).
    resident = await resident_for(buyer[2], no)
    deadline = time.monotonic() + 30
    while True:
        mine = (await customer_api.get(f"/v1/accounts/{no}/view", headers=resident)).json()
        bills = mine["accounts"][0]["services"]["latest_bills"]
        if bills or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert bills and bills[0]["bill_no"] == bill.data["bill_no"] and bills[0]["total_fen"] == 207600
    # Someone else's account (a neighbour's gas account) is not found for this resident.
    neighbour = await customer_api.post(
        "/v1/accounts",
        headers=agent,
        json={
            "customer": {"name": "刘洋", "id_number": resident_id(), "contacts": [{"phone": mobile()}]},
            "premise": {
                "district": "道里区",
                "community": f"中海锦城E2E{uuid.uuid4().hex[:6]}",
                "building": "1",
                "unit": "1",
                "room": "101",
            },
            "utility": "gas",
        },
    )
    assert neighbour.status_code == 201, neighbour.text
    other = await customer_api.get(f"/v1/accounts/{neighbour.json()['account_no']}/view", headers=resident)
    assert other.status_code == 404 and other.json()["code"] == "account_not_found"
