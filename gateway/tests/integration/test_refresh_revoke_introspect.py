"""Refresh rotation and reuse detection, revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from sqlalchemy import select, update

from gateway.adapters import crypto
from gateway.adapters.orm import RefreshToken, RefreshTokenFamily, StaffUser
from utilis_shared.errors import Problem


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def refresh(client, token: str, **extra: str):
    return await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "staff-console", **extra},
    )


@pytest.fixture
def introspect(client, partner):
    """Introspection by a resource server (a confidential client)."""
    holder: dict[str, tuple[str, str]] = {}

    async def ask(token: str) -> dict:
        if "rs" not in holder:
            holder["rs"] = await partner("accounts:read")
        response = await client.post("/oauth/introspect", data={"token": token}, headers=basic(*holder["rs"]))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        return response.json()

    return ask


async def test_refresh_rotates_once_and_a_reused_token_revokes_the_family(
    client, sign_in, staff, verifier, session_factory
):
    username, password = await staff("agent")
    first = (await sign_in(username, password)).json()

    second = await refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await verifier.verify(second["access_token"])).roles == {"agent"}
    third = (await refresh(client, second["refresh_token"])).json()

    # The first refresh token comes back: reuse. Refused, and the whole family is revoked...
    reused = await refresh(client, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # ...so the newest refresh token of the family, never used, is refused too.
    newest = await refresh(client, third["refresh_token"])
    assert newest.status_code == 400 and newest.json()["error"] == "invalid_grant"
    async with session_factory() as s:
        token = await s.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == crypto.token_digest(third["refresh_token"]))
        )
        family = await s.get(RefreshTokenFamily, token.family_id)
        assert token.status == "revoked" and family.revoked_reason == "reuse_detected"
    # A new sign-in starts a new, working family.
    fresh = (await sign_in(username, password)).json()
    assert (await refresh(client, fresh["refresh_token"])).status_code == 200


async def test_refresh_uses_current_roles_refuses_disabled_staff_and_narrower_scope_only(
    client, sign_in, staff, verifier, session_factory
):
    username, password = await staff("agent")
    tokens = (await sign_in(username, password)).json()
    async with session_factory() as s:
        await s.execute(
            update(StaffUser).where(StaffUser.username == username).values(roles=["agent", "admin"])
        )
        await s.commit()
    rotated = (await refresh(client, tokens["refresh_token"])).json()
    assert (await verifier.verify(rotated["access_token"])).roles == {"agent", "admin"}
    wider = await refresh(client, rotated["refresh_token"], scope="bills:read")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"

    async with session_factory() as s:
        await s.execute(update(StaffUser).where(StaffUser.username == username).values(status="disabled"))
        await s.commit()
    disabled = await refresh(client, rotated["refresh_token"])
    assert disabled.status_code == 400 and disabled.json()["error"] == "invalid_grant"


async def test_refresh_token_is_bound_to_its_client_and_unknown_ones_are_invalid_grant(
    client, sign_in, staff, partner
):
    username, password = await staff("agent")
    tokens = (await sign_in(username, password)).json()
    client_id, secret = await partner("bills:read")
    other = await client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(client_id, secret),
    )
    assert other.status_code == 400 and other.json()["error"] == "unauthorized_client"
    unknown = await refresh(client, "not-a-token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    # The staff console's token still works: nothing was rotated by the refused attempts.
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200


async def test_revoked_access_token_is_inactive_at_introspection(client, sign_in, staff, introspect):
    username, password = await staff("technician")
    tokens = (await sign_in(username, password)).json()
    active = await introspect(tokens["access_token"])
    assert active["active"] is True and active["sub"] == username and active["roles"] == ["technician"]

    revoked = await client.post(
        "/oauth/revoke", data={"token": tokens["access_token"], "client_id": "staff-console"}
    )
    assert revoked.status_code == 200
    assert await introspect(tokens["access_token"]) == {"active": False}
    # Revoking twice, or revoking something unknown, answers the same.
    for token in (tokens["access_token"], "unknown-token", "a.b.c"):
        again = await client.post("/oauth/revoke", data={"token": token, "client_id": "staff-console"})
        assert again.status_code == 200


async def test_revoking_a_refresh_token_ends_its_family(client, sign_in, staff, introspect):
    username, password = await staff("agent")
    first = (await sign_in(username, password)).json()
    second = (await refresh(client, first["refresh_token"])).json()
    response = await client.post(
        "/oauth/revoke",
        data={
            "token": second["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": "staff-console",
        },
    )
    assert response.status_code == 200
    refused = await refresh(client, second["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_revocation_of_another_clients_refresh_token_does_nothing(client, sign_in, staff, partner):
    username, password = await staff("agent")
    tokens = (await sign_in(username, password)).json()
    client_id, secret = await partner("bills:read")
    response = await client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=basic(client_id, secret)
    )
    assert response.status_code == 200
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200


async def test_introspection_needs_an_authenticated_confidential_client(client, sign_in, staff, partner):
    username, password = await staff("agent")
    tokens = (await sign_in(username, password)).json()
    public = await client.post(
        "/oauth/introspect", data={"token": tokens["access_token"], "client_id": "staff-console"}
    )
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"
    client_id, _ = await partner("bills:read")
    wrong = await client.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=basic(client_id, "x")
    )
    assert wrong.status_code == 401
    nobody = await client.post("/oauth/introspect", data={"token": tokens["access_token"]})
    assert nobody.status_code == 401


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_tampered_alg_none_expired_and_foreign_tokens_are_inactive(
    app, client, sign_in, staff, introspect, verifier, settings
):
    username, password = await staff("agent")
    token = (await sign_in(username, password)).json()["access_token"]
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})

    tampered = ".".join([header, b64url({**claims, "roles": ["admin"]}), signature])
    alg_none = ".".join(
        [b64url({"alg": "none", "typ": "JWT", "kid": jwt.get_unverified_header(token)["kid"]}), payload, ""]
    )
    active_key = await app.state.keys.active()
    now = int(time.time())
    expired = jwt.encode(
        {**claims, "jti": str(uuid.uuid4()), "iat": now - 3600, "nbf": now - 3600, "exp": now - 60},
        active_key.private_key,
        algorithm="ES256",
        headers={"kid": active_key.kid},
    )
    wrong_audience = jwt.encode(
        {**claims, "aud": "elsewhere"},
        active_key.private_key,
        algorithm="ES256",
        headers={"kid": active_key.kid},
    )
    unknown_kid = jwt.encode(claims, active_key.private_key, algorithm="ES256", headers={"kid": "not-ours"})
    foreign_pem, _ = crypto.generate_es256_key()
    foreign_key = jwt.encode(
        claims, crypto.load_private_key(foreign_pem), algorithm="ES256", headers={"kid": active_key.kid}
    )

    assert (await introspect(token))["active"] is True
    for forged in (tampered, alg_none, expired, wrong_audience, unknown_kid, foreign_key, "garbage"):
        assert await introspect(forged) == {"active": False}
        with pytest.raises(Problem):  # and the services refuse them too
            await verifier.verify(forged)


async def test_refresh_tokens_introspect_for_their_own_client_only(client, sign_in, staff, introspect):
    username, password = await staff("agent")
    tokens = (await sign_in(username, password)).json()
    # The resource server did not receive this refresh token: it learns nothing about it.
    assert await introspect(tokens["refresh_token"]) == {"active": False}
