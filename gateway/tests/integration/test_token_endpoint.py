"""The token endpoint through HTTP against the real database: staff password grant (verified the way every
service verifies), lockout, partner client credentials, and RFC 6749 errors."""

from __future__ import annotations

import base64
from datetime import timedelta

import jwt
from sqlalchemy import select, update

from gateway.adapters.orm import StaffUser
from utilis_shared.auth import Principal, TokenVerifier
from utilis_shared.timeutil import utcnow

CLAIMS = {"iss", "aud", "sub", "kind", "roles", "scope", "account_nos", "channel", "jti", "iat", "nbf", "exp"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def assert_oauth_error(response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def test_staff_password_grant_gives_a_token_the_services_accept_with_the_staff_roles(
    sign_in, staff, verifier: TokenVerifier, settings
):
    username, password = await staff("agent", "dispatcher")
    response = await sign_in(username, password)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == settings.access_token_ttl_seconds
    assert body["refresh_token"] and "." not in body["refresh_token"]

    principal: Principal = await verifier.verify(body["access_token"])
    assert principal.is_staff and principal.subject == username
    assert principal.roles == {"agent", "dispatcher"} and principal.channel == "staff_console"
    assert principal.has_role("agent") and not principal.has_role("inspector")

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == CLAIMS and claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"]


async def test_username_is_case_insensitive_and_wrong_or_unknown_credentials_are_invalid_grant(
    sign_in, staff
):
    username, password = await staff("inspector")
    assert (await sign_in(username.upper(), password)).status_code == 200
    assert_oauth_error(await sign_in(username, password + "x"), "invalid_grant")
    assert_oauth_error(await sign_in("nobody-here", password), "invalid_grant")


async def test_five_wrong_passwords_lock_the_account_until_the_lock_expires(sign_in, staff, session_factory):
    username, password = await staff("billing_clerk")
    for attempt in range(5):
        response = await sign_in(username, f"wrong-{attempt}")
        assert_oauth_error(response, "invalid_grant")
    assert "locked" in response.json()["error_description"]

    # The sixth attempt, with the right password, is refused: the account is locked.
    sixth = await sign_in(username, password)
    assert_oauth_error(sixth, "invalid_grant")
    assert "locked" in sixth.json()["error_description"]
    async with session_factory() as s:
        row = await s.scalar(select(StaffUser).where(StaffUser.username == username))
        assert row.locked_until is not None
        assert timedelta(minutes=14) < row.locked_until - utcnow() <= timedelta(minutes=15)

    # Fifteen minutes later (moved back in the database), the right password works and resets the count.
    async with session_factory() as s:
        await s.execute(
            update(StaffUser)
            .where(StaffUser.username == username)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
        await s.commit()
    assert (await sign_in(username, password)).status_code == 200
    async with session_factory() as s:
        row = await s.scalar(select(StaffUser).where(StaffUser.username == username))
        assert row.failed_attempts == 0 and row.locked_until is None and row.last_login_at is not None


async def test_failures_must_be_consecutive(sign_in, staff):
    username, password = await staff("analyst")
    for _ in range(4):
        assert_oauth_error(await sign_in(username, "wrong-password"), "invalid_grant")
    assert (await sign_in(username, password)).status_code == 200
    for _ in range(4):
        assert_oauth_error(await sign_in(username, "wrong-password"), "invalid_grant")
    assert (await sign_in(username, password)).status_code == 200


async def test_client_credentials_grant_only_allowed_scopes(client, partner, verifier):
    client_id, secret = await partner("bills:read", "payments:write")
    asked = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "bills:read"},
        headers=basic(client_id, secret),
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["scope"] == "bills:read" and "refresh_token" not in asked.json()
    principal = await verifier.verify(asked.json()["access_token"])
    assert principal.kind == "partner" and principal.subject == client_id
    assert principal.scopes == {"bills:read"} and not principal.roles and principal.channel == "bank"

    # No scope asked: everything the client is allowed. client_secret_post works too.
    default = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert default.status_code == 200 and default.json()["scope"] == "bills:read payments:write"

    wider = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "bills:read reports:read"},
        headers=basic(client_id, secret),
    )
    assert_oauth_error(wider, "invalid_scope")


async def test_wrong_or_missing_client_secret_is_invalid_client(client, partner):
    client_id, secret = await partner("bills:read")
    wrong = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, "x")
    )
    assert_oauth_error(wrong, "invalid_client", 401)
    assert wrong.headers["www-authenticate"].startswith("Basic")
    missing = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id}
    )
    assert_oauth_error(missing, "invalid_client", 401)
    unknown = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic("nobody", secret)
    )
    assert_oauth_error(unknown, "invalid_client", 401)


async def test_grants_a_client_is_not_registered_for_are_unauthorized_client(client, partner, sign_in, staff):
    client_id, secret = await partner("bills:read")
    username, password = await staff("agent")
    as_partner = await client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=basic(client_id, secret),
    )
    assert_oauth_error(as_partner, "unauthorized_client")
    console = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": "staff-console"}
    )
    assert_oauth_error(console, "unauthorized_client")
    # The staff console is a public client: presenting a secret for it is an authentication failure.
    assert_oauth_error(await sign_in(username, password, client_secret="guess"), "invalid_client", 401)
    # The staff console may ask for no partner scope.
    assert_oauth_error(await sign_in(username, password, scope="bills:read"), "invalid_scope")


async def test_malformed_requests_answer_rfc6749_errors(client):
    assert_oauth_error(
        await client.post("/oauth/token", data={"client_id": "staff-console"}), "invalid_request"
    )
    assert_oauth_error(
        await client.post("/oauth/token", data={"grant_type": "urn:x", "client_id": "staff-console"}),
        "unsupported_grant_type",
    )
    assert_oauth_error(
        await client.post("/oauth/token", data={"grant_type": "password", "client_id": "staff-console"}),
        "invalid_request",
    )
    as_json = await client.post("/oauth/token", json={"grant_type": "password", "client_id": "staff-console"})
    assert_oauth_error(as_json, "invalid_request")
    repeated = await client.post(
        "/oauth/token",
        content=b"grant_type=password&grant_type=client_credentials&client_id=staff-console",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(repeated, "invalid_request")
