"""Bad input gets a problem+json 4xx with a stable code (never a 500); every route checks who asks;
personal data never leaves unmasked by default, in responses or in log lines."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (
        body["code"] == code
        and body["status"] == status
        and body["instance"] == response.headers["x-request-id"]
    )
    return body


async def test_malformed_json(client, auth):
    response = await client.post(
        "/v1/accounts",
        content=b'{"utility": "heating",',
        headers={**auth("agent"), "content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")


async def test_wrong_types_are_listed_per_field(client, auth, person, premise):
    body = {
        "customer": person(),
        "premise": {**premise(), "heated_area_m2": "lots"},
        "utility": "steam",
        "household_size": "three",
    }
    problem = assert_problem(
        await client.post("/v1/accounts", json=body, headers=auth("agent")), 422, "validation_failed"
    )
    fields = {e["field"] for e in problem["errors"]}
    assert {"body.premise.heated_area_m2", "body.utility", "body.household_size"} <= fields


async def test_invalid_id_checksum_is_refused_and_not_echoed(client, auth, person, premise):
    bad = person(id_number="230103198001010011")  # the last digit should be 6, not 1
    response = await client.post(
        "/v1/accounts",
        json={"customer": bad, "premise": premise(), "utility": "heating"},
        headers=auth("agent"),
    )
    problem = assert_problem(response, 422, "invalid_id_number")
    assert problem["errors"][0]["field"] == "customer.id_number"
    assert "230103198001010011" not in response.text


async def test_invalid_phone(client, auth, person, premise):
    bad = person(contacts=[{"phone": "12345"}])
    response = await client.post("/v1/customers", json=bad, headers=auth("agent"))
    assert_problem(response, 422, "invalid_phone")


async def test_oversized_field_and_oversized_body(client, auth, person, premise):
    long_name = person(name="王" * 101)
    assert_problem(
        await client.post("/v1/customers", json=long_name, headers=auth("agent")), 422, "validation_failed"
    )
    huge = {"customer": person(), "premise": premise(), "utility": "heating", "pad": "x" * 1_100_000}
    assert_problem(
        await client.post("/v1/accounts", json=huge, headers=auth("agent")), 413, "payload_too_large"
    )


async def test_unknown_fields_are_refused(client, auth, person, premise):
    body = {"customer": person(), "premise": premise(), "utility": "heating", "account_no": "8000000001"}
    assert_problem(
        await client.post("/v1/accounts", json=body, headers=auth("agent")), 422, "validation_failed"
    )


async def test_unknown_account_and_customer(client, auth):
    assert_problem(
        await client.get("/v1/accounts/19999999999", headers=auth("agent")), 404, "account_not_found"
    )
    assert_problem(
        await client.get(f"/v1/customers/{uuid.uuid4()}", headers=auth("agent")), 404, "customer_not_found"
    )
    assert_problem(
        await client.post("/v1/accounts/19999999999/suspension", headers=auth("agent"), json={"reason": "x"}),
        404,
        "account_not_found",
    )
    assert_problem(await client.get("/v1/accounts/bad-no!", headers=auth("agent")), 422, "validation_failed")
    assert_problem(
        await client.get("/v1/customers/not-a-uuid", headers=auth("agent")), 422, "validation_failed"
    )
    assert_problem(await client.get("/v1/customers?cursor=%%%", headers=auth("agent")), 400, "invalid_cursor")


async def test_authentication_is_required_and_checked(client, auth, issuer):
    assert_problem(await client.get("/v1/customers"), 401, "unauthorized")
    assert_problem(
        await client.get("/v1/customers", headers={"Authorization": "Bearer x.y.z"}), 401, "invalid_token"
    )
    expired = issuer.staff("agent-x", "agent", exp=1)
    assert_problem(
        await client.get("/v1/customers", headers={"Authorization": f"Bearer {expired}"}),
        401,
        "token_expired",
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("agent", True),
        ("billing_clerk", True),
        ("dispatcher", True),
        ("admin", True),
        ("inspector", False),
        ("technician", False),
        ("analyst", False),
    ],
)
async def test_search_by_role(client, auth, role, allowed):
    response = await client.get("/v1/customers?limit=1", headers=auth(role))
    if allowed:
        assert response.status_code == 200
    else:
        assert_problem(response, 403, "forbidden")


async def test_resident_sees_only_own_accounts(client, auth, open_account):
    mine = await open_account()
    theirs = await open_account()
    me = auth(accounts=[mine["account_no"]])
    assert (await client.get(f"/v1/accounts/{mine['account_no']}/view", headers=me)).status_code == 200
    assert_problem(
        await client.get(f"/v1/accounts/{theirs['account_no']}/view", headers=me), 404, "account_not_found"
    )
    assert_problem(
        await client.get(f"/v1/accounts/{theirs['account_no']}", headers=me), 404, "account_not_found"
    )
    # Residents cannot search, read customer records, or change accounts.
    assert_problem(await client.get("/v1/customers", headers=me), 403, "forbidden")
    assert_problem(await client.get(f"/v1/customers/{mine['customer_id']}", headers=me), 403, "forbidden")
    assert_problem(
        await client.post(f"/v1/accounts/{mine['account_no']}/suspension", headers=me, json={"reason": "x"}),
        403,
        "forbidden",
    )


async def test_a_bank_with_accounts_read_looks_up_any_account_and_nothing_else(client, issuer, open_account):
    account = await open_account()
    no = account["account_no"]
    bank = {"Authorization": f"Bearer {issuer.partner('icbc-test', 'accounts:read')}"}
    other_scope = {"Authorization": f"Bearer {issuer.partner('regulator-test', 'reports:read')}"}
    found = await client.get(f"/v1/accounts/{no}", headers=bank)
    assert found.status_code == 200 and found.json()["account_no"] == no
    assert_problem(await client.get(f"/v1/accounts/{no}", headers=other_scope), 403, "forbidden")
    # The 360° view and customer records stay with staff and the residents themselves.
    assert_problem(await client.get(f"/v1/accounts/{no}/view", headers=bank), 403, "forbidden")
    assert_problem(await client.get("/v1/customers", headers=bank), 403, "forbidden")


async def test_reveal_needs_an_allowed_role_and_is_audited(
    client, auth, open_account, person, session_factory
):
    from sqlalchemy import select

    from customer.adapters.orm import AuditEntry

    holder = person()
    cid = (await open_account(customer=holder))["customer_id"]
    assert_problem(
        await client.get(f"/v1/customers/{cid}?reveal=true", headers=auth("dispatcher")),
        403,
        "pii_reveal_forbidden",
    )
    revealed = (
        await client.get(f"/v1/customers/{cid}?reveal=true", headers=auth("agent", subject="agent-42"))
    ).json()
    assert revealed["id_number"] == holder["id_number"]
    assert revealed["contacts"][0]["phone"] == holder["contacts"][0]["phone"]
    async with session_factory() as s:
        actors = (
            (
                await s.execute(
                    select(AuditEntry.actor).where(
                        AuditEntry.entity_id == cid, AuditEntry.action == "customer.pii_revealed"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert actors == ["agent-42"]


async def test_no_personal_data_in_responses_or_logs(client, auth, person, premise):
    holder = person()
    phone, id_number = holder["contacts"][0]["phone"], holder["id_number"]
    # Read what the service's own JSON log handler writes while the requests run.
    handler = logging.getLogger().handlers[0]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        bodies = []
        created = await client.post(
            "/v1/accounts",
            json={"customer": holder, "premise": premise(), "utility": "heating"},
            headers=auth("agent"),
        )
        bodies.append(created.text)
        no, cid = created.json()["account_no"], created.json()["customer_id"]
        for path in (
            f"/v1/customers/{cid}",
            f"/v1/customers/{cid}/view",
            f"/v1/accounts/{no}/view",
            f"/v1/customers?phone={phone}",
            f"/v1/customers?id_number={id_number}",
        ):
            response = await client.get(path, headers=auth("agent"))
            assert response.status_code == 200
            bodies.append(response.text)
        # A wrong-typed field carrying the phone must not be echoed either.
        bodies.append(
            (
                await client.post(
                    "/v1/accounts", json={"customer": {**holder, "kind": phone}}, headers=auth("agent")
                )
            ).text
        )
        # Even a careless log call with personal data in it comes out masked.
        logging.getLogger("customer.test").warning("calling back %s about %s", phone, id_number)
    finally:
        handler.setStream(previous)
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 8 and all(json.loads(line)["service"] == "customer" for line in lines)
    assert any(json.loads(line).get("route") == "/v1/customers" for line in lines)
    for text in (*bodies, *lines):
        assert phone not in text and id_number not in text
