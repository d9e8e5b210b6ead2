"""A signed-in resident binds accounts by account number + holder name (户号 + 户主姓名), lists and unbinds
them, and the refresh grant carries the current bindings: the real API in-process, the real database and
Redis, holders known to the gateway only through the customer service's events."""

from __future__ import annotations

import secrets
import uuid

import jwt
import pytest

ACCOUNTS = "/api/gateway/me/accounts"


def new_phone() -> str:
    return f"136{secrets.randbelow(10**8):08d}"


def new_account_no() -> str:
    return f"1{secrets.randbelow(10**10):010d}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def account_nos(token: str) -> list[str]:
    return jwt.decode(token, options={"verify_signature": False})["account_nos"]


@pytest.fixture
def holder(events, deliver):
    """An account opened for a new holder named ``name`` (registered, then opened, as the events come)."""

    async def make(name: str = "张三", phones: list[str] | None = None) -> tuple[str, uuid.UUID]:
        customer_id, account_no = uuid.uuid4(), new_account_no()
        phones = phones if phones is not None else [new_phone()]
        assert await deliver(events.registered(customer_id, name, phones)) == "processed"
        assert await deliver(events.opened(account_no, customer_id, phones)) == "processed"
        return account_no, customer_id

    return make


async def test_a_resident_binds_an_account_by_number_and_holder_name(
    app_client, sign_in_resident, refresh, holder
):
    account_no, _ = await holder("欧阳 娜娜")
    tokens = await sign_in_resident(new_phone())
    assert account_nos(tokens["access_token"]) == []

    response = await app_client.post(
        ACCOUNTS,
        json={"account_no": f" {account_no} ", "holder_name": "欧阳娜娜"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["account_nos"] == [account_no]
    assert body["accounts"][0]["source"] == "verified" and body["accounts"][0]["removable"] is True

    listed = await app_client.get(ACCOUNTS, headers=bearer(tokens["access_token"]))
    assert listed.status_code == 200 and listed.json()["account_nos"] == [account_no]
    # The next access token carries it.
    assert account_nos((await refresh(tokens["refresh_token"]))["access_token"]) == [account_no]


async def test_a_wrong_name_and_an_unknown_account_get_the_same_answer(app_client, sign_in_resident, holder):
    account_no, _ = await holder("李四")
    token = (await sign_in_resident(new_phone()))["access_token"]
    wrong_name = await app_client.post(
        ACCOUNTS, json={"account_no": account_no, "holder_name": "李五"}, headers=bearer(token)
    )
    unknown = await app_client.post(
        ACCOUNTS, json={"account_no": new_account_no(), "holder_name": "李四"}, headers=bearer(token)
    )
    assert wrong_name.status_code == unknown.status_code == 404
    assert wrong_name.headers["content-type"] == unknown.headers["content-type"] == "application/problem+json"

    def without_instance(body: dict) -> dict:
        return {k: v for k, v in body.items() if k != "instance"}

    assert without_instance(wrong_name.json()) == without_instance(unknown.json())
    assert wrong_name.json()["code"] == "account_not_found"
    listed = await app_client.get(ACCOUNTS, headers=bearer(token))
    assert listed.json()["account_nos"] == []


async def test_a_closed_account_cannot_be_bound(app_client, sign_in_resident, holder, events, deliver):
    account_no, _ = await holder("王五")
    await deliver(events.closed(account_no))
    token = (await sign_in_resident(new_phone()))["access_token"]
    response = await app_client.post(
        ACCOUNTS, json={"account_no": account_no, "holder_name": "王五"}, headers=bearer(token)
    )
    assert response.status_code == 404
    assert response.json()["code"] == "account_not_found"


async def test_wrong_pairs_are_limited_per_resident_per_day(app_client, sign_in_resident, holder, settings):
    account_no, _ = await holder("赵六")
    token = (await sign_in_resident(new_phone()))["access_token"]
    for _ in range(settings.account_binding_daily_failures):
        response = await app_client.post(
            ACCOUNTS, json={"account_no": account_no, "holder_name": "赵七"}, headers=bearer(token)
        )
        assert response.status_code == 404
    # Past the limit even the right pair is refused, until the day is over.
    limited = await app_client.post(
        ACCOUNTS, json={"account_no": account_no, "holder_name": "赵六"}, headers=bearer(token)
    )
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 86400

    # Another resident is not affected.
    other = (await sign_in_resident(new_phone()))["access_token"]
    response = await app_client.post(
        ACCOUNTS, json={"account_no": account_no, "holder_name": "赵六"}, headers=bearer(other)
    )
    assert response.status_code == 201


async def test_successful_bindings_do_not_count_against_the_limit(
    app_client, sign_in_resident, holder, settings
):
    token = (await sign_in_resident(new_phone()))["access_token"]
    for _ in range(settings.account_binding_daily_failures + 1):
        account_no, _ = await holder("孙八")
        response = await app_client.post(
            ACCOUNTS, json={"account_no": account_no, "holder_name": "孙八"}, headers=bearer(token)
        )
        assert response.status_code == 201, response.text


async def test_another_resident_neither_sees_nor_unbinds_it(app_client, sign_in_resident, holder):
    account_no, _ = await holder("周九")
    mine = (await sign_in_resident(new_phone()))["access_token"]
    theirs = (await sign_in_resident(new_phone()))["access_token"]
    bound = await app_client.post(
        ACCOUNTS, json={"account_no": account_no, "holder_name": "周九"}, headers=bearer(mine)
    )
    assert bound.status_code == 201

    assert (await app_client.get(ACCOUNTS, headers=bearer(theirs))).json()["account_nos"] == []
    response = await app_client.delete(f"{ACCOUNTS}/{account_no}", headers=bearer(theirs))
    assert response.status_code == 404
    assert (await app_client.get(ACCOUNTS, headers=bearer(mine))).json()["account_nos"] == [account_no]


async def test_staff_and_anonymous_callers_are_refused(app_client, staff, sign_in, holder):
    account_no, _ = await holder("吴十")
    username, password = await staff("admin")
    token = (await sign_in(username, password)).json()["access_token"]
    for response in (
        await app_client.get(ACCOUNTS, headers=bearer(token)),
        await app_client.post(
            ACCOUNTS, json={"account_no": account_no, "holder_name": "吴十"}, headers=bearer(token)
        ),
        await app_client.delete(f"{ACCOUNTS}/{account_no}", headers=bearer(token)),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
    anonymous = await app_client.get(ACCOUNTS)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"


async def test_staff_acting_for_a_resident_is_refused(app, app_client, sign_in_resident):
    """An assisted-service token (RFC 8693 ``act``) speaks for a resident but is not the resident."""
    own = jwt.decode(
        (await sign_in_resident(new_phone()))["access_token"], options={"verify_signature": False}
    )
    key = await app.state.keys.active()

    def signed(**extra) -> str:
        claims = {**own, "jti": uuid.uuid4().hex, **extra}
        return jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})

    assert (await app_client.get(ACCOUNTS, headers=bearer(signed()))).status_code == 200
    response = await app_client.get(
        ACCOUNTS, headers=bearer(signed(act={"sub": "agent01", "roles": ["agent"]}))
    )
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


async def test_a_revoked_access_token_is_refused(app_client, sign_in_resident):
    token = (await sign_in_resident(new_phone()))["access_token"]
    assert (await app_client.get(ACCOUNTS, headers=bearer(token))).status_code == 200
    revoked = await app_client.post("/oauth/revoke", data={"token": token, "client_id": "mobile-app"})
    assert revoked.status_code == 200
    response = await app_client.get(ACCOUNTS, headers=bearer(token))
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


async def test_unbinding_own_bindings_but_not_the_customer_records(
    app_client, sign_in_resident, refresh, holder
):
    phone = new_phone()
    own_account, _ = await holder("郑一", phones=[phone])
    other_account, _ = await holder("钱二")
    tokens = await sign_in_resident(phone)
    token = tokens["access_token"]
    assert account_nos(token) == [own_account]
    bound = await app_client.post(
        ACCOUNTS, json={"account_no": other_account, "holder_name": "钱二"}, headers=bearer(token)
    )
    assert bound.json()["account_nos"] == sorted([own_account, other_account])
    sources = {a["account_no"]: (a["source"], a["removable"]) for a in bound.json()["accounts"]}
    assert sources == {own_account: ("customer", False), other_account: ("verified", True)}

    refused = await app_client.delete(f"{ACCOUNTS}/{own_account}", headers=bearer(token))
    assert refused.status_code == 409 and refused.json()["code"] == "binding_from_customer_record"
    removed = await app_client.delete(f"{ACCOUNTS}/{other_account}", headers=bearer(token))
    assert removed.status_code == 204
    assert (await app_client.get(ACCOUNTS, headers=bearer(token))).json()["account_nos"] == [own_account]
    assert account_nos((await refresh(tokens["refresh_token"]))["access_token"]) == [own_account]


async def test_refresh_shows_accounts_bound_and_transferred_away_since_sign_in(
    app_client, sign_in_resident, refresh, events, deliver
):
    phone, holder_id, buyer = new_phone(), uuid.uuid4(), uuid.uuid4()
    first, second = new_account_no(), new_account_no()
    await deliver(events.opened(first, holder_id, [phone]))
    tokens = await sign_in_resident(phone)
    assert account_nos(tokens["access_token"]) == [first]

    await deliver(events.opened(second, holder_id, [phone]))
    tokens = await refresh(tokens["refresh_token"])
    assert account_nos(tokens["access_token"]) == sorted([first, second])

    await deliver(events.transferred(first, holder_id, buyer, [new_phone()]))
    tokens = await refresh(tokens["refresh_token"])
    assert account_nos(tokens["access_token"]) == [second]

    await deliver(events.closed(second))
    tokens = await refresh(tokens["refresh_token"])
    assert account_nos(tokens["access_token"]) == []
