"""Assisted service (RFC 8693 token exchange) against the real database: an agent at the counter or on
the hotline gets a short-lived token for one resident's account that carries both identities, verified the
way every service verifies it, audited in ``assisted_service_log``; everybody and everything else is
refused."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from gateway.adapters.orm import AssistedServiceLog, BindingAccount, StaffUser
from gateway.domain.claims import Grant
from gateway.service_layer import admin
from gateway.service_layer.grants.token_exchange import (
    ACCESS_TOKEN_TYPE,
    ACCOUNT_NO_TOKEN_TYPE,
    ASSISTED_TOKEN_TTL_SECONDS,
    NAME,
)
from utilis_shared.auth import TokenVerifier
from utilis_shared.timeutil import utcnow

ACCOUNT = "10000000017"  # heating, valid Luhn check digit


def assert_oauth_error(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.fixture
def staff_tool(in_db, hasher) -> Callable[..., Awaitable[str]]:
    """A new public staff tool in an assisted channel: ``client_id = await staff_tool("hotline")``."""

    async def make(channel: str = "service_counter") -> str:
        client_id = f"{channel.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
        await in_db(
            lambda uow: admin.add_client(
                uow,
                hasher,
                client_id=client_id,
                scopes=[],
                channel=channel,
                public=True,
                grant_types=["password", "refresh_token", NAME],
            )
        )
        return client_id

    return make


@pytest.fixture
def staff_token(staff, sign_in) -> Callable[..., Awaitable[tuple[str, str]]]:
    """A staff member with ``roles`` signed in at the staff console: ``username, token``."""

    async def make(*roles: str) -> tuple[str, str]:
        username, password = await staff(*roles)
        response = await sign_in(username, password)
        assert response.status_code == 200, response.text
        return username, response.json()["access_token"]

    return make


@pytest.fixture
def exchange(client, staff_tool) -> Callable[..., Awaitable[httpx.Response]]:
    async def post(actor_token: str, account_no: str = ACCOUNT, /, **overrides: str | None) -> httpx.Response:
        form: dict[str, str | None] = {
            "grant_type": NAME,
            "client_id": overrides.pop("client_id", None) or await staff_tool(),
            "actor_token": actor_token,
            "actor_token_type": ACCESS_TOKEN_TYPE,
            "subject_token": account_no,
            "subject_token_type": ACCOUNT_NO_TOKEN_TYPE,
            "reason": "热线工单 RX-20261122-0042",
        }
        form.update(overrides)
        return await client.post("/oauth/token", data={k: v for k, v in form.items() if v is not None})

    return post


async def log_rows(session_factory, **where: str) -> list[AssistedServiceLog]:
    async with session_factory() as s:
        query = select(AssistedServiceLog)
        for name, value in where.items():
            query = query.where(getattr(AssistedServiceLog, name) == value)
        return list((await s.scalars(query)).all())


async def test_an_agent_gets_a_short_lived_resident_token_carrying_both_identities(
    exchange, staff_token, staff_tool, verifier: TokenVerifier, session_factory
):
    username, actor_token = await staff_token("agent")
    counter = await staff_tool("service_counter")
    response = await exchange(actor_token, client_id=counter)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert "refresh_token" not in body  # assisted service never outlives the visit or the call
    assert body["expires_in"] == ASSISTED_TOKEN_TTL_SECONDS <= 900

    principal = await verifier.verify(body["access_token"])
    assert principal.is_resident and not principal.is_staff and not principal.roles
    assert principal.subject == f"resident:account:{ACCOUNT}"
    assert principal.account_nos == {ACCOUNT}  # just that account
    assert principal.can_access_account(ACCOUNT) and not principal.can_access_account("10000000025")
    assert principal.actor is not None and principal.actor.subject == username
    assert principal.actor.roles == {"agent"}
    assert principal.channel == "service_counter"
    assert principal.audit_actor == f"{username} on behalf of resident:account:{ACCOUNT}"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["act"] == {"sub": username, "roles": ["agent"]}
    assert claims["exp"] - claims["iat"] == ASSISTED_TOKEN_TTL_SECONDS

    (row,) = await log_rows(session_factory, token_id=claims["jti"])
    actor_claims = jwt.decode(actor_token, options={"verify_signature": False})
    assert (row.staff_username, row.staff_roles, row.account_no) == (username, ["agent"], ACCOUNT)
    assert row.reason == "热线工单 RX-20261122-0042" and row.client_id == counter
    assert row.channel == "service_counter" and row.subject == principal.subject
    assert row.actor_token_id == actor_claims["jti"]
    assert abs((row.issued_at - utcnow()).total_seconds()) < 60
    assert int(row.expires_at.timestamp()) == claims["exp"]


async def test_hotline_tokens_are_attributed_to_the_hotline_and_admins_may_assist(
    exchange, staff_token, staff_tool, verifier: TokenVerifier
):
    username, actor_token = await staff_token("admin")
    response = await exchange(actor_token, "HRB0012345", client_id=await staff_tool("hotline"))
    assert response.status_code == 200, response.text  # a legacy account number (no check digit)
    principal = await verifier.verify(response.json()["access_token"])
    assert principal.channel == "hotline" and principal.account_nos == {"HRB0012345"}
    assert principal.actor is not None and principal.actor.subject == username


@pytest.mark.parametrize("roles", [("inspector",), ("billing_clerk", "dispatcher"), ("analyst",)])
async def test_staff_without_the_agent_role_are_refused(exchange, staff_token, session_factory, roles):
    username, actor_token = await staff_token(*roles)
    response = await exchange(actor_token)
    assert_oauth_error(response, "invalid_grant")
    assert "agent" in response.json()["error_description"]
    assert await log_rows(session_factory, staff_username=username) == []


async def test_the_role_counts_as_it_is_now_and_a_disabled_agent_is_refused(
    exchange, staff_token, in_db, session_factory
):
    username, actor_token = await staff_token("agent")

    async def set_staff(**values):
        async def work(uow):
            await uow.session.execute(
                update(StaffUser).where(StaffUser.username == username).values(**values)
            )

        await in_db(work)

    await set_staff(roles=["inspector"])  # the token still says agent
    assert_oauth_error(await exchange(actor_token), "invalid_grant")
    await set_staff(roles=["agent"], status="disabled")
    assert_oauth_error(await exchange(actor_token), "invalid_grant")
    await set_staff(status="active")
    assert (await exchange(actor_token)).status_code == 200
    assert len(await log_rows(session_factory, staff_username=username)) == 1


async def test_a_resident_token_or_an_assisted_token_cannot_be_the_actor(app, exchange, staff_token):
    resident = await app.state.tokens.sign(
        Grant(
            subject="resident:0123456789abcdef0123456789abcdef",
            kind="resident",
            client_id="mobile-app",
            channel="mobile_app",
            account_nos=(ACCOUNT,),
        )
    )
    assert_oauth_error(await exchange(resident), "invalid_grant")
    # A resident token that claims staff roles is still a resident's.
    forged_roles = await app.state.tokens.sign(
        Grant(
            subject="resident:x",
            kind="resident",
            client_id="mobile-app",
            channel="mobile_app",
            roles=("agent",),
        )
    )
    assert_oauth_error(await exchange(forged_roles), "invalid_grant")

    _, actor_token = await staff_token("agent")
    assisted = (await exchange(actor_token)).json()["access_token"]
    assert_oauth_error(await exchange(assisted), "invalid_grant")  # no chains


async def test_expired_tampered_foreign_and_revoked_actor_tokens_are_refused(
    app, client, exchange, staff_token, settings
):
    username, actor_token = await staff_token("agent")
    key = await app.state.keys.active()
    now = int(time.time())
    expired = jwt.encode(
        {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": username,
            "kind": "staff",
            "roles": ["agent"],
            "jti": str(uuid.uuid4()),
            "iat": now - 3600,
            "nbf": now - 3600,
            "exp": now - 60,
        },
        key.private_key,
        algorithm="ES256",
        headers={"kid": key.kid},
    )
    assert_oauth_error(await exchange(expired), "invalid_grant")

    header, payload, signature = actor_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["agent", "admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_oauth_error(await exchange(f"{header}.{forged}.{signature}"), "invalid_grant")
    assert_oauth_error(await exchange("not-a-jwt"), "invalid_grant")
    unsigned = jwt.encode(claims, key="", algorithm="none")
    assert_oauth_error(await exchange(unsigned), "invalid_grant")

    revoked = await client.post("/oauth/revoke", data={"token": actor_token, "client_id": "staff-console"})
    assert revoked.status_code == 200
    assert_oauth_error(await exchange(actor_token), "invalid_grant")


@pytest.mark.parametrize("reason", [None, "   ", "x" * 201, "ticket\x00 42"])
async def test_a_reason_is_required(exchange, staff_token, reason):
    _, actor_token = await staff_token("agent")
    response = await exchange(actor_token, reason=reason)
    assert_oauth_error(response, "invalid_request")
    if reason is None:
        assert "reason" in response.json()["error_description"]


async def test_malformed_exchanges_are_refused(exchange, staff_token, in_db):
    _, actor_token = await staff_token("agent")
    assert_oauth_error(await exchange(actor_token, subject_token_type=ACCESS_TOKEN_TYPE), "invalid_request")
    assert_oauth_error(await exchange(actor_token, actor_token_type=ACCOUNT_NO_TOKEN_TYPE), "invalid_request")
    assert_oauth_error(await exchange(actor_token, actor_token=None), "invalid_request")
    assert_oauth_error(await exchange(actor_token, subject_token=None), "invalid_request")
    assert_oauth_error(
        await exchange(actor_token, requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
        "invalid_request",
    )
    assert_oauth_error(await exchange(actor_token, audience="https://elsewhere.example"), "invalid_target")
    for not_an_account in ("1000000001!", "12345", "' OR 1=1 --"):
        assert_oauth_error(await exchange(actor_token, not_an_account), "invalid_grant")
    assert_oauth_error(await exchange(actor_token, "10000000018"), "invalid_grant")  # misheard check digit

    async def close(uow):
        uow.session.add(BindingAccount(account_no="20000000015", status="closed", holder_since=utcnow()))

    await in_db(close)
    closed = await exchange(actor_token, "20000000015")
    assert_oauth_error(closed, "invalid_grant")
    assert "closed" in closed.json()["error_description"]


async def test_only_assisted_staff_tools_may_exchange(exchange, staff_token, in_db, hasher):
    _, actor_token = await staff_token("agent")
    # The staff console (back office) and the resident app are not registered for the grant.
    assert_oauth_error(await exchange(actor_token, client_id="staff-console"), "unauthorized_client")
    assert_oauth_error(await exchange(actor_token, client_id="mobile-app"), "unauthorized_client")
    # ...and cannot be: the grant belongs to the assisted channels.
    for channel in ("staff_console", "web", "bank"):
        with pytest.raises(admin.AdminError, match="may not use"):
            await in_db(
                lambda uow, channel=channel: admin.add_client(
                    uow,
                    hasher,
                    client_id=f"x-{uuid.uuid4().hex[:8]}",
                    scopes=[],
                    channel=channel,
                    public=True,
                    grant_types=[NAME],
                )
            )


async def test_assisted_staff_tools_sign_staff_in_at_their_channel(client, staff, staff_tool, verifier):
    username, password = await staff("agent")
    counter = await staff_tool("service_counter")
    form = {"grant_type": "password", "username": username, "password": password, "client_id": counter}
    response = await client.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    principal = await verifier.verify(response.json()["access_token"])
    assert principal.is_staff and principal.channel == "service_counter" and principal.actor is None
