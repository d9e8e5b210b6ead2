"""Versioned tariff plans through the API, against the real PostgreSQL: publish, supersede, refuse
overlaps, list, idempotent publication, the outbox event carrying the plan."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from billing.adapters.orm import TariffPlanVersion
from utilis_shared.db import outbox_messages
from utilis_shared.events import Event

CLERK = ("billing_clerk",)


async def publish(client, auth, body, *, key: str | None = None, role: str = "billing_clerk"):
    headers = auth(role)
    if key:
        headers["Idempotency-Key"] = key
    return await client.post("/v1/tariff-plans", json=body, headers=headers)


async def outbox_events(session_factory, code: str) -> list[Event]:
    async with session_factory() as s:
        rows = await s.execute(
            select(outbox_messages.c.payload, outbox_messages.c.topic, outbox_messages.c.key)
            .where(outbox_messages.c.key == code)
            .order_by(outbox_messages.c.seq)
        )
        return [(Event.from_bytes(r.payload), r.topic, r.key) for r in rows]


async def test_publish_first_version_stores_the_plan_and_emits_it_through_the_outbox(
    client, auth, gas_plan, session_factory, settings
) -> None:
    body = gas_plan()
    response = await publish(client, auth, body)
    assert response.status_code == 201, response.text
    read = response.json()
    assert (read["code"], read["version"], read["effective_from"], read["effective_to"]) == (
        body["code"],
        1,
        "2026-01-01",
        None,
    )
    assert read["created_by"] == "staff-billing_clerk"
    assert read["plan"]["versions"][0]["components"][0]["tiers"][1] == {"up_to": "500", "price": "3.12"}

    events = await outbox_events(session_factory, body["code"])
    assert len(events) == 1
    event, topic, key = events[0]
    assert topic == settings.topic("billing.events") and key == body["code"]
    assert event.type == "billing.tariff.published" and event.source == "metering-and-billing"
    assert event.data["version"] == 1 and event.data["closed_version"] is None
    assert event.data["plan"] == read["plan"]
    assert event.data["plan"]["volume_unit"] == "m³"


async def test_a_new_version_closes_the_previous_one_the_day_before(
    client, auth, gas_plan, session_factory
) -> None:
    body = gas_plan()
    assert (await publish(client, auth, body)).status_code == 201
    v2 = gas_plan(code=body["code"], effective_from="2026-07-01", note="调价")
    response = await publish(client, auth, v2)
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 2

    versions = await client.get(f"/v1/tariff-plans/{body['code']}/versions", headers=auth("agent"))
    assert versions.status_code == 200
    items = versions.json()["items"]
    assert [(i["version"], i["effective_from"], i["effective_to"]) for i in items] == [
        (1, "2026-01-01", "2026-06-30"),
        (2, "2026-07-01", None),
    ]
    events = await outbox_events(session_factory, body["code"])
    assert [e.data["version"] for e, _, _ in events] == [1, 2]
    assert events[1][0].data["closed_version"] == 1
    assert events[1][0].data["closed_version_effective_to"] == "2026-06-30"


async def test_a_version_that_does_not_start_after_the_latest_is_refused(client, auth, gas_plan) -> None:
    body = gas_plan()
    assert (await publish(client, auth, body)).status_code == 201
    assert (
        await publish(client, auth, gas_plan(code=body["code"], effective_from="2026-07-01"))
    ).status_code == 201
    for day in ("2026-07-01", "2026-03-01"):
        response = await publish(client, auth, gas_plan(code=body["code"], effective_from=day))
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "tariff_version_overlap"
    versions = await client.get(f"/v1/tariff-plans/{body['code']}/versions", headers=auth("agent"))
    assert len(versions.json()["items"]) == 2


async def test_a_version_keeps_the_plans_utility_class_and_unit(client, auth, gas_plan) -> None:
    body = gas_plan()
    assert (await publish(client, auth, body)).status_code == 201
    other_class = gas_plan(code=body["code"], effective_from="2026-07-01", customer_class="non_residential")
    response = await publish(client, auth, other_class)
    assert (response.status_code, response.json()["code"]) == (409, "tariff_plan_class_mismatch")
    other_unit = gas_plan(code=body["code"], effective_from="2026-07-01", volume_unit="kWh")
    response = await publish(client, auth, other_unit)
    assert (response.status_code, response.json()["code"]) == (409, "volume_unit_mismatch")


async def test_expected_version_is_checked(client, auth, gas_plan) -> None:
    body = gas_plan(expected_version=2)
    response = await publish(client, auth, body)
    assert (response.status_code, response.json()["code"]) == (409, "tariff_version_conflict")
    assert response.json()["next_version"] == 1
    assert (await publish(client, auth, gas_plan(code=body["code"], expected_version=1))).status_code == 201


async def test_the_database_refuses_overlapping_versions_of_one_code(session_factory, new_code) -> None:
    """The exclusion constraint holds even for a writer that skips the use case's checks."""
    code = new_code("overlap")

    def row(version: int, start: date, end: date | None) -> TariffPlanVersion:
        return TariffPlanVersion(
            code=code,
            version=version,
            name="x",
            utility="gas",
            customer_class="residential",
            effective_from=start,
            effective_to=end,
            plan={},
            created_by="test",
        )

    async with session_factory() as s:
        s.add(row(1, date(2026, 1, 1), date(2026, 6, 30)))
        await s.commit()
        s.add(row(2, date(2026, 7, 1), None))  # adjacent: fine
        await s.commit()
    async with session_factory() as s:
        s.add(row(3, date(2026, 6, 30), None))  # overlaps both
        with pytest.raises(IntegrityError, match="ex_tariff_plans_no_overlap"):
            await s.commit()


async def test_publish_is_idempotent_with_a_key(client, auth, gas_plan, session_factory) -> None:
    body = gas_plan()
    key = str(uuid.uuid4())
    first = await publish(client, auth, body, key=key)
    again = await publish(client, auth, body, key=key)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    async with session_factory() as s:
        count = await s.scalar(select(func.count()).where(TariffPlanVersion.code == body["code"]))
    assert count == 1
    assert len(await outbox_events(session_factory, body["code"])) == 1

    changed = dict(body, name="另一个名字")
    reused = await publish(client, auth, changed, key=key)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")


async def test_list_filters_by_utility_class_and_date(client, auth, gas_plan) -> None:
    body = gas_plan()
    assert (await publish(client, auth, body)).status_code == 201
    assert (
        await publish(client, auth, gas_plan(code=body["code"], effective_from="2026-07-01"))
    ).status_code == 201

    async def listed(**params) -> dict[str, int]:
        response = await client.get("/v1/tariff-plans", params=params, headers=auth("analyst"))
        assert response.status_code == 200, response.text
        return {i["code"]: i["version"] for i in response.json()["items"]}

    assert (await listed(utility="gas", customer_class="residential"))[body["code"]] == 2
    assert (await listed(utility="gas", on="2026-03-15"))[body["code"]] == 1
    assert (await listed(on="2026-07-01"))[body["code"]] == 2
    assert body["code"] not in await listed(on="2025-12-31")
    assert body["code"] not in await listed(utility="heating")
    assert body["code"] not in await listed(customer_class="non_residential")
