"""Signing keys: JWKS publication, rotation keeping old tokens verifiable, encryption at rest; metadata."""

from __future__ import annotations

from datetime import timedelta

import jwt
from sqlalchemy import select, update

from gateway.adapters.crypto import SIGNING_KEY_FIELD
from gateway.adapters.orm import SigningKey
from gateway.service_layer.keys import rotate_keys
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import utcnow


async def test_jwks_publishes_public_keys_only_with_cache_control(client, sign_in, staff):
    username, password = await staff("agent")
    await sign_in(username, password)  # there is an active key from the first token on
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age=" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert keys and all(
        k["kty"] == "EC" and k["alg"] == "ES256" and k["use"] == "sig" and k["kid"] for k in keys
    )
    assert all("d" not in k for k in keys)


async def test_rotation_keeps_old_tokens_verifiable_and_signs_new_ones_with_the_new_key(
    client, sign_in, staff, verifier, in_db, settings
):
    username, password = await staff("agent")
    old_token = (await sign_in(username, password)).json()["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    await verifier.verify(old_token)  # the verifier caches the current JWKS

    cipher = PiiCipher.from_settings(settings)
    new_kid = await in_db(lambda uow: _rotate(uow, cipher))  # what `gateway rotate-keys` does
    assert new_kid != old_kid

    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, new_kid} <= kids
    assert (await verifier.verify(old_token)).subject == username

    new_token = (await sign_in(username, password)).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    # The services' verifier meets an unknown kid and re-fetches the JWKS.
    assert (await verifier.verify(new_token)).subject == username


async def _rotate(uow, cipher) -> str:
    return (await rotate_keys(uow.session, cipher)).kid


async def test_retired_keys_leave_the_jwks_once_their_tokens_have_expired(
    client, in_db, settings, session_factory
):
    cipher = PiiCipher.from_settings(settings)
    retired_kid = await in_db(lambda uow: _rotate(uow, cipher))
    await in_db(lambda uow: _rotate(uow, cipher))  # retired_kid is now retired
    assert retired_kid in {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    window = settings.access_token_ttl_seconds + settings.jwt_leeway_seconds
    async with session_factory() as s:
        await s.execute(
            update(SigningKey)
            .where(SigningKey.kid == retired_kid)
            .values(retired_at=utcnow() - timedelta(seconds=window + 1))
        )
        await s.commit()
    assert retired_kid not in {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}


async def test_exactly_one_active_key_and_private_keys_encrypted_at_rest(session_factory, settings):
    async with session_factory() as s:
        rows = list(await s.scalars(select(SigningKey)))
    assert sum(1 for r in rows if r.retired_at is None) == 1
    cipher = PiiCipher.from_settings(settings)
    for row in rows:
        assert "PRIVATE KEY" not in row.private_key_enc
        assert "BEGIN PRIVATE KEY" in cipher.decrypt(row.private_key_enc, field=SIGNING_KEY_FIELD)


async def test_authorization_server_metadata(client, settings):
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == settings.jwt_issuer
    assert meta["token_endpoint"].endswith("/oauth/token") and meta["jwks_uri"].endswith(
        "/.well-known/jwks.json"
    )
    assert meta["revocation_endpoint"].endswith("/oauth/revoke")
    assert meta["introspection_endpoint"].endswith("/oauth/introspect")
    assert set(meta["grant_types_supported"]) == {
        "password",
        "client_credentials",
        "refresh_token",
        "urn:utilis:params:oauth:grant-type:sms-otp",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }
    assert "bills:read" in meta["scopes_supported"]


async def test_openapi_documents_the_oauth_endpoints(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/oauth/token", "/oauth/revoke", "/oauth/introspect", "/.well-known/jwks.json"} <= set(paths)
    assert "application/x-www-form-urlencoded" in paths["/oauth/token"]["post"]["requestBody"]["content"]
