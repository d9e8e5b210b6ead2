"""The 360° view's one-statement document says exactly what the ORM presenters say (contract)."""

from __future__ import annotations

import uuid

from customer.adapters import repository
from customer.api import schemas as s
from customer.api.presenters import account_read, customer_read
from customer.service_layer import queries


async def test_document_matches_the_orm_presenters(
    client, auth, open_account, person, premise, session_factory
):
    serial = f"DOC-{uuid.uuid4().hex[:8]}"
    holder = person(
        name="欧阳娜娜",
        contacts=[{"phone": "13512345678", "label": "本人"}, {"phone": "0451-82345678"}],
        tags=["elderly_alone", "with_children"],
    )
    first = await open_account(
        customer=holder,
        premise_body=premise(latitude="45.756789", longitude="126.642345"),
        meters=[
            {
                "serial_no": serial,
                "kind": "heat",
                "installed_on": "2023-10-01",
                "multiplier": "1.5",
                "initial_reading": "12.345",
            }
        ],
    )
    cid = first["customer_id"]
    await open_account(customer_id=cid, premise_body=premise(heated_area_m2=None), utility="gas")
    replaced = await client.post(
        f"/v1/accounts/{first['account_no']}/meters/{serial}/replacement",
        headers=auth("technician"),
        json={
            "removed_on": "2026-10-01",
            "final_reading": "900.5",
            "new_meter": {"serial_no": f"{serial}-N", "kind": "heat", "installed_on": "2026-10-01"},
        },
    )
    assert replaced.status_code == 200, replaced.text

    async with session_factory() as session:
        customer, accounts = await queries.customer_document(session, uuid.UUID(cid))
        orm = await repository.get_customer_with_accounts(session, uuid.UUID(cid))
    assert len(accounts) == 2 and len(accounts[0]["meters"]) == 2 and len(customer["contacts"]) == 2
    assert s.CustomerRead.model_validate(customer) == customer_read(orm)
    assert [s.AccountRead.model_validate(a) for a in accounts] == [account_read(a) for a in orm.accounts]
    async with session_factory() as session:
        assert await queries.customer_document(session, uuid.uuid4()) is None
