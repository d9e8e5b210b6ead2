"""Residents sign in with phone + SMS code, against the real database and Redis: the token the services
accept with the phone's bound accounts, single use, burning after wrong tries, the send limits, no
enumeration, and codes stored only as hashes."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import jwt
import pytest

from gateway.service_layer.residents import bind_accounts
from gateway.service_layer.sms_codes import resident_subject
from utilis_shared.auth import TokenVerifier
from utilis_shared.pii import PiiCipher

SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"
MOBILE_APP = "mobile-app"


def new_phone() -> str:
    return f"139{secrets.randbelow(10**8):08d}"


@pytest.fixture
async def app_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """The resident app, from its own network address (the per-IP limit is per test)."""
    ip = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


@pytest.fixture
def send(app_client) -> Callable[..., Awaitable[httpx.Response]]:
    async def post(phone: str, client_id: str = MOBILE_APP) -> httpx.Response:
        return await app_client.post("/oauth/sms-codes", data={"phone": phone, "client_id": client_id})

    return post


@pytest.fixture
def sign_in_sms(app_client) -> Callable[..., Awaitable[httpx.Response]]:
    async def post(phone: str, code: str) -> httpx.Response:
        form = {"grant_type": SMS_OTP, "phone": phone, "code": code, "client_id": MOBILE_APP}
        return await app_client.post("/oauth/token", data=form)

    return post


def last_code(app, phone: str) -> str:
    code = app.state.sms_sender.last_code(phone)
    assert code is not None and len(code) == 6 and code.isdigit()
    return code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_sms_code_sign_in_gives_a_resident_token_with_the_bound_accounts(
    app, send, sign_in_sms, in_db, verifier: TokenVerifier, settings
):
    phone = new_phone()
    await in_db(lambda uow: bind_accounts(uow, phone, ["10000000017", "10000000025"]))
    response = await send(phone)
    assert response.status_code == 202, response.text
    assert response.json() == {"expires_in": 300}

    response = await sign_in_sms(phone, last_code(app, phone))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"]
    principal = await verifier.verify(body["access_token"])
    assert principal.is_resident and principal.channel == "mobile_app"
    assert principal.account_nos == {"10000000017", "10000000025"}

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    bidx = PiiCipher.from_settings(settings).blind_index(phone, field="phone")
    assert claims["sub"] == resident_subject(bidx) and claims["sub"].startswith("resident:")
    assert phone not in body["access_token"] and phone[-8:] not in str(claims)


async def test_the_refresh_token_rotates_and_picks_up_accounts_bound_since(
    app, app_client, send, sign_in_sms, in_db, verifier: TokenVerifier
):
    phone = new_phone()
    await in_db(lambda uow: bind_accounts(uow, phone, ["20000000011"]))
    await send(phone)
    first = (await sign_in_sms(phone, last_code(app, phone))).json()
    await in_db(lambda uow: bind_accounts(uow, phone, ["20000000029"]))
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": MOBILE_APP}
    response = await app_client.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    principal = await verifier.verify(response.json()["access_token"])
    assert principal.is_resident and principal.account_nos == {"20000000011", "20000000029"}
    again = await app_client.post("/oauth/token", data=form)
    assert again.json()["error"] == "invalid_grant"  # the rotated token is spent


async def test_a_code_works_once(app, send, sign_in_sms):
    phone = new_phone()
    await send(phone)
    code = last_code(app, phone)
    assert (await sign_in_sms(phone, code)).status_code == 200
    again = await sign_in_sms(phone, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_five_wrong_codes_burn_the_code(app, send, sign_in_sms, settings, redis):
    assert settings.sms_code_max_attempts == 5
    phone = new_phone()
    await send(phone)
    code = last_code(app, phone)
    bidx = PiiCipher.from_settings(settings).blind_index(phone, field="phone")
    for _ in range(5):
        response = await sign_in_sms(phone, wrong(code))
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert not await redis.exists(f"{settings.redis_prefix}sms:code:{bidx}")  # deleted, not just refused
    burned = await sign_in_sms(phone, code)
    assert burned.status_code == 400 and burned.json()["error"] == "invalid_grant"


async def test_four_wrong_codes_still_leave_the_right_one_usable(app, send, sign_in_sms):
    phone = new_phone()
    await send(phone)
    code = last_code(app, phone)
    for _ in range(4):
        assert (await sign_in_sms(phone, wrong(code))).status_code == 400
    assert (await sign_in_sms(phone, code)).status_code == 200


async def test_a_second_send_within_a_minute_is_429_with_retry_after(send):
    phone = new_phone()
    assert (await send(phone)).status_code == 202
    response = await send(phone)
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    assert 0 < int(response.headers["retry-after"]) <= 60


async def test_the_daily_limit_per_phone(send, redis, settings):
    phone = new_phone()
    bidx = PiiCipher.from_settings(settings).blind_index(phone, field="phone")
    for _ in range(settings.sms_phone_daily_limit):
        assert (await send(phone)).status_code == 202
        await redis.delete(f"{settings.redis_prefix}sms:cooldown:{bidx}")  # as if a minute had passed
    response = await send(phone)
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) > 0


async def test_the_hourly_limit_per_network_address(send, settings):
    for _ in range(settings.sms_ip_hourly_limit):
        assert (await send(new_phone())).status_code == 202
    response = await send(new_phone())
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) > 0


async def test_an_unknown_phone_gets_the_same_answer_and_a_token_without_accounts(
    app, send, sign_in_sms, verifier: TokenVerifier
):
    phone = new_phone()
    response = await send(phone)
    assert response.status_code == 202 and response.json() == {"expires_in": 300}
    signed_in = await sign_in_sms(phone, last_code(app, phone))
    assert signed_in.status_code == 200, signed_in.text
    principal = await verifier.verify(signed_in.json()["access_token"])
    assert principal.is_resident and principal.account_nos == set()


async def test_codes_are_stored_hashed_and_expire(app, send, redis, settings):
    phone = new_phone()
    await send(f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}")  # the same phone, written differently
    code = last_code(app, phone)
    bidx = PiiCipher.from_settings(settings).blind_index(phone, field="phone")
    key = f"{settings.redis_prefix}sms:code:{bidx}"
    stored = await redis.hgetall(key)
    assert stored and code.encode() not in b"".join(k + v for k, v in stored.items())
    assert 0 < await redis.ttl(key) <= 300
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
    assert keys and not any(phone.encode() in k for k in keys)


async def test_sms_codes_refuse_bad_phones_unknown_clients_and_clients_without_the_grant(send, app_client):
    response = await send("12345")
    assert response.status_code == 400 and response.json()["code"] == "invalid_phone"
    assert (await send(new_phone(), client_id="no-such-app")).status_code == 401
    refused = await send(new_phone(), client_id="staff-console")
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    as_json = await app_client.post("/oauth/sms-codes", json={"phone": new_phone(), "client_id": MOBILE_APP})
    assert as_json.status_code == 202


async def test_the_staff_console_cannot_use_the_sms_grant(app, send, client):
    phone = new_phone()
    await send(phone)
    code = last_code(app, phone)
    form = {"grant_type": SMS_OTP, "phone": phone, "code": code, "client_id": "staff-console"}
    response = await client.post("/oauth/token", data=form)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
