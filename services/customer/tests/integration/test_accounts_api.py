"""Account lifecycle through the HTTP API against the real database: open, transfer, suspend, resume,
close; every change audited and its event in the outbox in the same transaction."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select, text

from customer.adapters.orm import AccountProjection, AuditEntry
from utilis_shared.db import outbox_messages


async def outbox_types(session_factory, subject: str) -> list[str]:
    async with session_factory() as s:
        rows = await s.execute(
            select(outbox_messages.c.event_type)
            .where(outbox_messages.c.key == subject)
            .order_by(outbox_messages.c.seq)
        )
        return list(rows.scalars())


async def test_open_account_registers_customer_and_emits_events(
    client, auth, open_account, person, session_factory
):
    holder = person(name="李建国")
    account = await open_account(
        customer=holder,
        meters=[{"serial_no": f"HM-{uuid.uuid4().hex[:10]}", "kind": "heat", "installed_on": "2024-10-01"}],
    )
    no = account["account_no"]
    assert len(no) == 11 and no.startswith("1")  # heating, Luhn-checked
    assert account["status"] == "active" and account["meters"][0]["status"] == "installed"
    assert await outbox_types(session_factory, no) == ["customer.account.opened"]
    assert await outbox_types(session_factory, account["customer_id"]) == ["customer.customer.registered"]
    customer = (await client.get(f"/v1/customers/{account['customer_id']}", headers=auth("agent"))).json()
    assert customer["name"] == "李建国"
    # Masked by default: neither the ID number nor the phone appears in full.
    assert customer["id_number"] != holder["id_number"] and customer["id_number"].endswith(
        holder["id_number"][-4:]
    )
    assert holder["contacts"][0]["phone"] not in str(customer)


async def test_same_premise_cannot_have_two_live_heating_accounts(
    client, auth, open_account, person, premise
):
    place = premise()
    await open_account(premise_body=place)
    again = await client.post(
        "/v1/accounts",
        json={"customer": person(), "premise": place, "utility": "heating"},
        headers=auth("agent"),
    )
    assert again.status_code == 409 and again.json()["code"] == "premise_already_has_account"
    # ...but a gas account at the same premise is fine, and "12栋" / "１２" name the same building.
    gas = await client.post(
        "/v1/accounts",
        json={"customer": person(), "utility": "gas", "premise": {**place, "building": "１２栋"}},
        headers=auth("agent"),
    )
    assert gas.status_code == 201, gas.text
    assert gas.json()["premise"]["id"] != "" and gas.json()["account_no"].startswith("2")


async def test_existing_identity_is_reused_when_names_agree_and_refused_when_not(
    client, auth, open_account, person
):
    holder = person(name="赵丽")
    first = await open_account(customer=holder)
    second = await open_account(customer={**holder, "contacts": [{"phone": "13900000001"}]})
    assert second["customer_id"] == first["customer_id"]
    response = await client.post(
        "/v1/accounts",
        json={
            "customer": {**holder, "name": "赵丽丽"},
            "utility": "gas",
            "premise": {"district": "道里区", "community": "x", "building": "1", "unit": "1", "room": "101"},
        },
        headers=auth("agent"),
    )
    assert response.status_code == 409 and response.json()["code"] == "customer_identity_mismatch"


async def test_transfer_suspend_resume_close(client, auth, open_account, person, session_factory):
    account = await open_account(
        meters=[
            {
                "serial_no": f"GM-{uuid.uuid4().hex[:8]}",
                "kind": "heat",
                "installed_on": "2024-10-01",
                "initial_reading": "10.5",
            }
        ]
    )
    no = account["account_no"]
    agent = auth("agent")
    transfer = await client.post(
        f"/v1/accounts/{no}/transfers",
        headers=agent,
        json={"to_customer": person(name="孙志强"), "reason": "房屋买卖", "document_refs": ["dms://deed/1"]},
    )
    assert transfer.status_code == 200, transfer.text
    assert transfer.json()["customer_id"] != account["customer_id"]

    suspended = await client.post(
        f"/v1/accounts/{no}/suspension", headers=agent, json={"reason": "长期无人居住"}
    )
    assert suspended.json()["status"] == "suspended"
    twice = await client.post(f"/v1/accounts/{no}/suspension", headers=agent, json={"reason": "again"})
    assert twice.status_code == 409 and twice.json()["code"] == "account_not_active"
    resumed = await client.post(f"/v1/accounts/{no}/resumption", headers=agent, json={})
    assert resumed.json()["status"] == "active"

    no_reading = await client.post(f"/v1/accounts/{no}/closure", headers=agent, json={"reason": "拆迁"})
    assert no_reading.status_code == 422 and no_reading.json()["code"] == "final_reading_required"
    low = await client.post(f"/v1/accounts/{no}/closure", headers=agent, json={"final_reading": "3"})
    assert low.status_code == 422 and low.json()["code"] == "reading_below_initial"
    closed = await client.post(f"/v1/accounts/{no}/closure", headers=agent, json={"final_reading": "812.25"})
    assert closed.json()["status"] == "closed"
    assert Decimal(closed.json()["meters"][0]["final_reading"]) == Decimal("812.25")
    assert await outbox_types(session_factory, no) == [
        "customer.account.opened",
        "customer.account.transferred",
        "customer.account.suspended",
        "customer.account.resumed",
        "customer.account.closed",
    ]
    async with session_factory() as s:
        actions = (
            (
                await s.execute(
                    select(AuditEntry.action)
                    .where(AuditEntry.entity_id == no)
                    .order_by(AuditEntry.occurred_at)
                )
            )
            .scalars()
            .all()
        )
    assert actions == [
        "account.opened",
        "account.transferred",
        "account.suspended",
        "account.resumed",
        "account.closed",
    ]


async def test_transfer_and_close_refused_while_billing_reports_arrears(
    client, auth, open_account, session_factory, person
):
    no = (await open_account())["account_no"]
    async with session_factory() as s, s.begin():
        s.add(
            AccountProjection(
                account_no=no,
                view="balance",
                item_key="",
                data={"owed_fen": 207600},
                event_id=uuid.uuid4(),
                event_time=text("now()"),
            )
        )
    refused = await client.post(
        f"/v1/accounts/{no}/transfers",
        headers=auth("agent"),
        json={"to_customer": person(), "document_refs": ["dms://deed/2"]},
    )
    assert refused.status_code == 409 and refused.json()["code"] == "outstanding_balance"
    closing = await client.post(f"/v1/accounts/{no}/closure", headers=auth("agent"), json={})
    assert closing.status_code == 409 and closing.json()["code"] == "outstanding_balance"


async def test_idempotency_key_replays_and_refuses_reuse(client, auth, person, premise, session_factory):
    key = str(uuid.uuid4())
    body = {"customer": person(), "premise": premise(), "utility": "heating"}
    headers = {**auth("agent", subject="agent-idem"), "Idempotency-Key": key}
    first = await client.post("/v1/accounts", json=body, headers=headers)
    again = await client.post("/v1/accounts", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert await outbox_types(session_factory, first.json()["account_no"]) == ["customer.account.opened"]
    other = await client.post("/v1/accounts", json={**body, "utility": "gas"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


async def test_concurrent_retries_with_one_key_open_one_account(
    client, auth, person, premise, session_factory
):
    import asyncio

    key = str(uuid.uuid4())
    body = {"customer": person(), "premise": premise(), "utility": "heating"}
    headers = {**auth("agent", subject="agent-race"), "Idempotency-Key": key}
    responses = await asyncio.gather(
        *(client.post("/v1/accounts", json=body, headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["account_no"] for r in responses}) == 1


async def test_meter_replacement_keeps_history(client, auth, open_account, session_factory):
    serial = f"EM-{uuid.uuid4().hex[:8]}"
    no = (await open_account(meters=[{"serial_no": serial, "kind": "heat", "installed_on": "2023-10-01"}]))[
        "account_no"
    ]
    new_serial = f"EM-{uuid.uuid4().hex[:8]}"
    response = await client.post(
        f"/v1/accounts/{no}/meters/{serial}/replacement",
        headers=auth("technician"),
        json={
            "removed_on": "2026-11-01",
            "final_reading": "1520.5",
            "new_meter": {
                "serial_no": new_serial,
                "kind": "heat",
                "installed_on": "2026-11-01",
                "reading_mode": "remote",
            },
        },
    )
    assert response.status_code == 200, response.text
    meters = {m["serial_no"]: m for m in response.json()["meters"]}
    assert (
        meters[serial]["status"] == "removed" and meters[serial]["replaced_by_id"] == meters[new_serial]["id"]
    )
    assert meters[new_serial]["status"] == "installed"
    taken = await client.post(
        f"/v1/accounts/{no}/meters",
        headers=auth("technician"),
        json={"serial_no": new_serial, "kind": "heat", "installed_on": "2026-11-02"},
    )
    assert taken.status_code == 409 and taken.json()["code"] == "meter_already_installed"
    assert (await outbox_types(session_factory, no))[-1] == "customer.meter.replaced"


async def test_customer_update_contacts_and_tags(client, auth, open_account, session_factory):
    account = await open_account()
    cid = account["customer_id"]
    response = await client.patch(
        f"/v1/customers/{cid}",
        headers=auth("agent"),
        json={
            "contacts": [
                {"phone": "13712345678", "label": "本人", "is_primary": True},
                {"phone": "0451-86412345", "label": "座机"},
            ],
            "tags": ["elderly_alone", "low_income_subsidy"],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(c["phone"] for c in body["contacts"]) == ["045*****2345", "137****5678"]
    assert body["tags"] == ["elderly_alone", "low_income_subsidy"] and body["version"] == 2
    assert (await outbox_types(session_factory, cid))[-1] == "customer.customer.updated"


async def test_racing_openings_at_one_premise_open_one_account_and_refuse_the_rest(
    client, auth, person, premise
):
    import asyncio

    place = premise()
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/accounts",
                json={"customer": person(), "premise": place, "utility": "heating"},
                headers=auth("agent"),
            )
            for _ in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(409) == 5, [r.text for r in responses]
    codes = {r.json()["code"] for r in responses if r.status_code == 409}
    assert codes == {"premise_already_has_account"}  # the unique index decides, named as the check would
