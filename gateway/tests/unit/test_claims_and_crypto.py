"""Access-token claims as the services read them, and the secret handling primitives."""

from __future__ import annotations

import jwt
import pytest

from gateway.adapters import crypto
from gateway.domain.claims import Grant, access_token_claims
from utilis_shared.auth import principal_from_claims


def claims_for(grant: Grant) -> dict:
    return access_token_claims(
        grant, issuer="https://iss", audience="utilis", jti="j1", now=1000, ttl_seconds=900
    )


def test_staff_claims_are_exactly_what_principal_from_claims_reads():
    grant = Grant(
        subject="agent01",
        kind="staff",
        client_id="staff-console",
        channel="staff_console",
        roles=("agent", "admin"),
    )
    claims = claims_for(grant)
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "kind",
        "roles",
        "scope",
        "account_nos",
        "channel",
        "jti",
        "iat",
        "nbf",
        "exp",
    }
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1000, 1000, 1900)
    principal = principal_from_claims(claims)
    assert principal.is_staff and principal.roles == {"agent", "admin"} and principal.token_id == "j1"
    assert principal.channel == "staff_console" and principal.scopes == frozenset()


def test_partner_claims_carry_scopes_not_roles():
    grant = Grant(
        subject="icbc",
        kind="partner",
        client_id="icbc",
        channel="bank",
        scopes=frozenset({"bills:read", "payments:write"}),
    )
    principal = principal_from_claims(claims_for(grant))
    assert (
        principal.kind == "partner"
        and principal.scopes == {"bills:read", "payments:write"}
        and not principal.roles
    )
    assert claims_for(grant)["scope"] == "bills:read payments:write"


def test_unknown_subject_kind_is_refused():
    with pytest.raises(ValueError):
        Grant(subject="x", kind="robot", client_id="c", channel=None)


def test_generated_keys_publish_only_the_public_part_and_round_trip():
    pem, jwk = crypto.generate_es256_key()
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk
    token = jwt.encode({"sub": "x"}, crypto.load_private_key(pem), algorithm="ES256")
    assert jwt.decode(token, jwt.PyJWK({**jwk, "alg": "ES256"}).key, algorithms=["ES256"]) == {"sub": "x"}
    assert crypto.new_kid() != crypto.new_kid()


def test_secret_hasher_is_argon2id_and_never_accepts_a_missing_hash():
    hasher = crypto.SecretHasher()
    stored = hasher.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert hasher.verify(stored, "correct horse")
    assert not hasher.verify(stored, "correct horse ")
    assert not hasher.verify(None, "correct horse")
    assert not hasher.verify("not-a-hash", "correct horse")


def test_refresh_tokens_are_random_and_stored_as_sha256():
    a, b = crypto.new_refresh_token(), crypto.new_refresh_token()
    assert a != b and len(a) >= 43
    assert crypto.token_digest(a) == crypto.token_digest(a) and len(crypto.token_digest(a)) == 64
    assert crypto.token_digest(a) != a
