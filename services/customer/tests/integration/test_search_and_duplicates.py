"""Search (account number, phone, ID number, name, address fragment; cursor pages), probable-duplicate
flags (same phone + same property certificate) and the audited merge."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from customer.adapters.orm import AuditEntry


async def test_search_by_each_key(client, auth, open_account, person, premise):
    unique = uuid.uuid4().hex[:6]
    holder = person(name=f"欧阳{unique}")
    place = premise(community=f"保利清华颐园{unique}")
    account = await open_account(customer=holder, premise_body=place)
    cid, no = account["customer_id"], account["account_no"]
    agent = auth("agent")
    phone = holder["contacts"][0]["phone"]
    queries = {
        "account_no": no,
        "phone": f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}",  # normalised before the blind-index lookup
        "id_number": holder["id_number"].lower(),
        "name": unique,
        "address": f"清华颐园{unique}12栋",
    }
    for key, value in queries.items():
        response = await client.get("/v1/customers", params={key: value}, headers=agent)
        assert response.status_code == 200, (key, response.text)
        items = response.json()["items"]
        assert [i["id"] for i in items] == [cid], key
        assert items[0]["account_nos"] == [no] and items[0]["phone"].startswith(phone[:3] + "****")
    nothing = await client.get(
        "/v1/customers", params={"phone": "13000000000", "name": unique}, headers=agent
    )
    assert nothing.json()["items"] == []


async def test_cursor_pagination_visits_each_customer_once(client, auth, open_account, person):
    tag = uuid.uuid4().hex[:6]
    ids = {(await open_account(customer=person(name=f"分页{tag}{i}")))["customer_id"] for i in range(7)}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"name": f"分页{tag}", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/customers", params=params, headers=auth("agent"))).json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 7 and set(seen) == ids


async def test_limit_is_bounded(client, auth):
    response = await client.get("/v1/customers", params={"limit": 1000}, headers=auth("agent"))
    assert response.status_code == 422


async def test_same_phone_and_certificate_flags_a_duplicate_and_merge_moves_everything(
    client, auth, open_account, person, premise, session_factory
):
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    place = premise()
    # The same household typed twice into the legacy system: heating under one record, gas under another.
    first = await open_account(customer=person(name="张三", contacts=[{"phone": phone}]), premise_body=place)
    second = await client.post(
        "/v1/accounts",
        headers=auth("agent"),
        json={
            "customer": person(name="张 三", contacts=[{"phone": phone}]),
            "premise": place,
            "utility": "gas",
        },
    )
    assert second.status_code == 201
    second = second.json()
    admin = auth("admin", subject="admin-1")
    flags = (await client.get("/v1/duplicates", params={"limit": 100}, headers=admin)).json()["items"]
    mine = [
        f
        for f in flags
        if {f["customer_id"], f["duplicate_of_id"]} == {first["customer_id"], second["customer_id"]}
    ]
    assert len(mine) == 1 and mine[0]["reason"] == "same_phone_and_property_cert"
    assert mine[0]["customer_id"] == second["customer_id"]  # the newer record is the suspected duplicate

    # Only admins merge.
    denied = await client.post(
        f"/v1/customers/{first['customer_id']}/merges",
        headers=auth("agent"),
        json={"source_customer_id": second["customer_id"]},
    )
    assert denied.status_code == 403
    merged = await client.post(
        f"/v1/customers/{first['customer_id']}/merges",
        headers=admin,
        json={"source_customer_id": second["customer_id"]},
    )
    assert merged.status_code == 200, merged.text
    view = (await client.get(f"/v1/customers/{first['customer_id']}/view", headers=auth("agent"))).json()
    assert sorted(a["account"]["account_no"] for a in view["accounts"]) == sorted(
        [first["account_no"], second["account_no"]]
    )
    assert view["open_duplicate_flags"] == 0
    source = (await client.get(f"/v1/customers/{second['customer_id']}", headers=auth("agent"))).json()
    assert source["status"] == "merged" and source["merged_into_id"] == first["customer_id"]
    again = await client.post(
        f"/v1/customers/{first['customer_id']}/merges",
        headers=admin,
        json={"source_customer_id": second["customer_id"]},
    )
    assert again.status_code == 409 and again.json()["code"] == "customer_merged"
    async with session_factory() as s:
        audit = (
            await s.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "customer.merged", AuditEntry.entity_id == first["customer_id"]
                )
            )
        ).scalar_one()
    assert audit.actor == "admin-1" and second["account_no"] in audit.changes["after"]["moved_account_nos"]


async def test_dismissing_a_flag(client, auth, open_account, person, premise):
    phone = f"136{uuid.uuid4().int % 10**8:08d}"
    place = premise()
    a = await open_account(customer=person(name="刘洋", contacts=[{"phone": phone}]), premise_body=place)
    b = await client.post(
        "/v1/accounts",
        headers=auth("agent"),
        json={
            "customer": person(name="刘洋洋", contacts=[{"phone": phone}]),
            "premise": place,
            "utility": "electricity",
        },
    )
    admin = auth("admin")
    flags = (await client.get("/v1/duplicates", params={"limit": 100}, headers=admin)).json()["items"]
    flag = next(
        f
        for f in flags
        if f["duplicate_of_id"] == a["customer_id"] and f["customer_id"] == b.json()["customer_id"]
    )
    dismissed = await client.post(f"/v1/duplicates/{flag['id']}/dismissal", headers=admin)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    twice = await client.post(f"/v1/duplicates/{flag['id']}/dismissal", headers=admin)
    assert twice.status_code == 409 and twice.json()["code"] == "duplicate_flag_resolved"
