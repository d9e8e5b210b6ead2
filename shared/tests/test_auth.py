"""Access-token verification against a JWKS, and the ``require`` dependency."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI

from utilis_shared.auth import (
    Actor,
    JwksKeySet,
    Principal,
    Role,
    TokenVerifier,
    principal_from_claims,
    require,
)
from utilis_shared.devtokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, DevIssuer
from utilis_shared.errors import Forbidden, Unauthorized, install_problem_handlers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(obj: dict) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _payload(token: str) -> dict:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@pytest.fixture
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "keys")


@pytest.fixture
def verifier(issuer: DevIssuer) -> TokenVerifier:
    return TokenVerifier(
        JwksKeySet(issuer.jwks_url), issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE, leeway=30
    )


async def _refused(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(token)
    assert info.value.status == 401
    return info.value


# --- accepted tokens -------------------------------------------------------------------------------------


async def test_staff_token_gives_principal_with_roles(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(issuer.staff("zhang.wei", Role.AGENT, Role.DISPATCHER))
    assert principal.subject == "zhang.wei"
    assert principal.kind == "staff"
    assert principal.is_staff and not principal.is_resident
    assert principal.roles == frozenset({"agent", "dispatcher"})
    assert principal.channel == "staff_console"
    assert principal.token_id is not None
    assert principal.actor is None
    assert principal.audit_actor == "zhang.wei"
    assert principal.has_role("dispatcher")
    assert not principal.has_role("billing_clerk")


async def test_resident_token_carries_accounts(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(issuer.resident("u-42", ["1001234567", "1001234568"]))
    assert principal.is_resident
    assert principal.account_nos == frozenset({"1001234567", "1001234568"})
    assert principal.can_access_account("1001234567")
    assert not principal.can_access_account("1009999999")
    assert principal.roles == frozenset()


async def test_partner_token_carries_scopes(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(issuer.partner("icbc", "bills:read", "payments:write"))
    assert principal.kind == "partner"
    assert principal.scopes == frozenset({"bills:read", "payments:write"})
    assert not principal.can_access_account("1001234567")


async def test_actor_claim(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = issuer.resident("u-42", ["1001234567"], act={"sub": "agent-7", "roles": ["agent"]})
    principal = await verifier.verify(token)
    assert principal.actor == Actor(subject="agent-7", roles=frozenset({"agent"}))
    assert principal.subject == "u-42"
    assert principal.audit_actor == "agent-7 on behalf of u-42"


def test_actor_without_subject_is_ignored() -> None:
    principal = principal_from_claims({"sub": "u-1", "kind": "resident", "act": {"roles": ["agent"]}})
    assert principal.actor is None


def test_unknown_kind_refused() -> None:
    with pytest.raises(Unauthorized) as info:
        principal_from_claims({"sub": "u-1", "kind": "robot"})
    assert info.value.code == "invalid_token"


async def test_expiry_within_leeway_is_accepted(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(issuer.staff("zhang.wei", "agent", ttl_seconds=-5))
    assert principal.subject == "zhang.wei"


# --- refused tokens --------------------------------------------------------------------------------------


async def test_expired_token(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    exc = await _refused(verifier, issuer.staff("zhang.wei", "agent", ttl_seconds=-120))
    assert exc.code == "token_expired"


async def test_wrong_issuer(tmp_path: Path, verifier: TokenVerifier) -> None:
    other = DevIssuer(tmp_path / "keys", issuer="https://evil.example")  # same key, other iss
    exc = await _refused(verifier, other.staff("zhang.wei", "agent"))
    assert exc.code == "invalid_token"


async def test_wrong_audience(tmp_path: Path, verifier: TokenVerifier) -> None:
    other = DevIssuer(tmp_path / "keys", audience="another-api")
    exc = await _refused(verifier, other.staff("zhang.wei", "agent"))
    assert exc.code == "invalid_token"


async def test_tampered_payload(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = issuer.staff("zhang.wei", "agent")
    header, _, signature = token.split(".")
    claims = _payload(token)
    claims["roles"] = ["admin"]
    exc = await _refused(verifier, f"{header}.{_b64json(claims)}.{signature}")
    assert exc.code == "invalid_token"


async def test_alg_none(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    claims = _payload(issuer.staff("zhang.wei", "admin"))
    token = f"{_b64json({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{_b64json(claims)}."
    exc = await _refused(verifier, token)
    assert exc.code == "invalid_token"


async def test_hs256_signed_with_public_key(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    public_pem = issuer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = _payload(issuer.staff("zhang.wei", "admin"))
    signing_input = f"{_b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': issuer.kid})}.{_b64json(claims)}"
    for secret in (public_pem, issuer.jwks_path.read_bytes()):
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        exc = await _refused(verifier, f"{signing_input}.{_b64(signature)}")
        assert exc.code == "invalid_token"


async def test_unknown_kid(tmp_path: Path, verifier: TokenVerifier) -> None:
    stranger = DevIssuer(tmp_path / "elsewhere", kid="rogue-1")
    exc = await _refused(verifier, stranger.staff("zhang.wei", "admin"))
    assert exc.code == "invalid_token"


async def test_right_kid_wrong_key(tmp_path: Path, verifier: TokenVerifier) -> None:
    impostor = DevIssuer(tmp_path / "elsewhere")  # same kid "dev-1", its own key pair
    exc = await _refused(verifier, impostor.staff("zhang.wei", "admin"))
    assert exc.code == "invalid_token"


async def test_missing_kid(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = issuer.staff("zhang.wei", "agent")
    _, payload, signature = token.split(".")
    header = _b64json({"alg": "ES256", "typ": "JWT"})
    exc = await _refused(verifier, f"{header}.{payload}.{signature}")
    assert exc.code == "invalid_token"


@pytest.mark.parametrize("kid", [["dev-1"], {"k": "dev-1"}, 7])
async def test_non_string_kid(issuer: DevIssuer, verifier: TokenVerifier, kid: object) -> None:
    token = issuer.staff("zhang.wei", "agent")
    _, payload, signature = token.split(".")
    header = _b64json({"alg": "ES256", "typ": "JWT", "kid": kid})
    exc = await _refused(verifier, f"{header}.{payload}.{signature}")
    assert exc.code == "invalid_token"


async def test_token_without_sub(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = jwt.encode(
        {k: v for k, v in _payload(issuer.staff("x", "agent")).items() if k != "sub"},
        issuer._key,
        algorithm="ES256",
        headers={"kid": issuer.kid},
    )
    exc = await _refused(verifier, token)
    assert exc.code == "invalid_token"


async def test_token_without_exp(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    claims = {k: v for k, v in _payload(issuer.staff("x", "agent")).items() if k != "exp"}
    token = jwt.encode(claims, issuer._key, algorithm="ES256", headers={"kid": issuer.kid})
    exc = await _refused(verifier, token)
    assert exc.code == "invalid_token"


async def test_not_yet_valid(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    claims = _payload(issuer.staff("x", "agent"))
    claims["nbf"] = claims["iat"] + 3600
    claims["exp"] = claims["iat"] + 7200
    token = jwt.encode(claims, issuer._key, algorithm="ES256", headers={"kid": issuer.kid})
    exc = await _refused(verifier, token)
    assert exc.code == "invalid_token"


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "", "Bearer xyz", "....."])
async def test_garbage(verifier: TokenVerifier, garbage: str) -> None:
    exc = await _refused(verifier, garbage)
    assert exc.code == "invalid_token"


async def test_issuer_keys_unavailable(issuer: DevIssuer, tmp_path: Path) -> None:
    keys = JwksKeySet(f"file://{tmp_path / 'missing.json'}")
    verifier = TokenVerifier(keys, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(issuer.staff("zhang.wei", "agent"))
    assert info.value.code == "issuer_unavailable"
    assert info.value.status == 503


# --- JWKS caching and rotation ---------------------------------------------------------------------------


def _counting(keys: JwksKeySet, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = keys._fetch

    async def counting_fetch() -> dict:
        calls.append(1)
        return await original()

    monkeypatch.setattr(keys, "_fetch", counting_fetch)
    return calls


async def test_unknown_kid_refetch_is_rate_limited(
    tmp_path: Path, issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = JwksKeySet(issuer.jwks_url, min_refresh_seconds=60)
    calls = _counting(keys, monkeypatch)
    verifier = TokenVerifier(keys, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    stranger = DevIssuer(tmp_path / "elsewhere", kid="rogue-1")

    await verifier.verify(issuer.staff("zhang.wei", "agent"))
    assert len(calls) == 1
    await verifier.verify(issuer.staff("zhang.wei", "agent"))
    assert len(calls) == 1  # cached

    # Once the cache is older than min_refresh_seconds, an unknown kid may trigger one refetch...
    keys._fetched_at -= 120
    keys._attempted_at -= 120  # time passes for both clocks
    for kid in ("rogue-1", "rogue-2", "rogue-3"):
        token = stranger.mint("x", kind="staff", headers={"kid": kid})
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
    # ...but a stream of unknown kids does not make us hammer the issuer.
    assert len(calls) == 2


async def test_unknown_kid_right_after_fetch_does_not_refetch(
    tmp_path: Path, issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = JwksKeySet(issuer.jwks_url, min_refresh_seconds=60)
    calls = _counting(keys, monkeypatch)
    verifier = TokenVerifier(keys, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    stranger = DevIssuer(tmp_path / "elsewhere", kid="rogue-1")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await verifier.verify(stranger.staff("x", "agent"))
    assert len(calls) <= 2  # the initial fetch plus at most one refetch
    assert len(calls) == 1


async def test_rotated_key_is_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "keys"
    old = DevIssuer(folder, kid="2026-01")
    keys = JwksKeySet(old.jwks_url, min_refresh_seconds=1)
    calls = _counting(keys, monkeypatch)
    verifier = TokenVerifier(keys, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    assert (await verifier.verify(old.staff("a", "agent"))).subject == "a"

    new = DevIssuer(folder, kid="2026-02")  # rewrites jwks.json with the new key
    token = new.staff("b", "agent")
    with pytest.raises(Unauthorized):
        await verifier.verify(token)  # still inside min_refresh_seconds: no refetch yet
    assert len(calls) == 1

    keys._fetched_at -= 5

    keys._attempted_at -= 5  # time passes for both clocks
    assert (await verifier.verify(token)).subject == "b"
    assert len(calls) == 2


async def test_keys_expire_after_max_age(issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = JwksKeySet(issuer.jwks_url, max_age_seconds=300)
    calls = _counting(keys, monkeypatch)
    await keys.get(issuer.kid)
    await keys.get(issuer.kid)
    assert len(calls) == 1
    keys._fetched_at -= 301
    keys._attempted_at -= 301  # time passes for both clocks
    assert await keys.get(issuer.kid) is not None
    assert len(calls) == 2


async def test_jwks_filters_disallowed_algorithms(tmp_path: Path, issuer: DevIssuer) -> None:
    document = json.loads(issuer.jwks_path.read_text())
    hs_key = {"kty": "oct", "k": _b64(b"s" * 32), "kid": "hs", "alg": "HS256"}
    no_kid = dict(document["keys"][0])
    no_kid.pop("kid")
    document["keys"] += [hs_key, no_kid]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    keys = JwksKeySet(f"file://{path}")
    assert await keys.get(issuer.kid) is not None
    assert await keys.get("hs") is None


async def test_https_jwks(issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.loads(issuer.jwks_path.read_text())
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=document)

    real_client = httpx.AsyncClient

    def client(**kwargs: object) -> httpx.AsyncClient:
        return real_client(transport=httpx.MockTransport(handler), **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", client)
    keys = JwksKeySet("https://auth.example/.well-known/jwks.json")
    verifier = TokenVerifier(keys, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    assert (await verifier.verify(issuer.staff("a", "agent"))).subject == "a"
    assert seen == ["https://auth.example/.well-known/jwks.json"]


# --- require(...) ----------------------------------------------------------------------------------------

STAFF_AGENT = Principal(subject="s1", kind="staff", roles=frozenset({"agent"}))
STAFF_ANALYST = Principal(subject="s2", kind="staff", roles=frozenset({"analyst"}))
ADMIN = Principal(subject="root", kind="staff", roles=frozenset({"admin"}))
RESIDENT = Principal(subject="u1", kind="resident", account_nos=frozenset({"1001"}))
PARTNER = Principal(subject="bank", kind="partner", scopes=frozenset({"bills:read"}))
PARTNER_OTHER = Principal(subject="bank2", kind="partner", scopes=frozenset({"payments:write"}))


async def _admits(dependency, principal: Principal) -> bool:
    try:
        assert await dependency(principal=principal) is principal
    except Forbidden as exc:
        assert exc.status == 403
        assert exc.code == "forbidden"
        return False
    return True


async def test_require_staff_role() -> None:
    dep = require(roles=[Role.AGENT, Role.DISPATCHER])
    assert await _admits(dep, STAFF_AGENT)
    assert not await _admits(dep, STAFF_ANALYST)
    assert await _admits(dep, ADMIN)
    assert not await _admits(dep, RESIDENT)
    assert not await _admits(dep, PARTNER)


async def test_require_residents() -> None:
    assert await _admits(require(roles=["agent"], residents=True), RESIDENT)
    assert not await _admits(require(roles=["agent"]), RESIDENT)


async def test_require_partner_scope() -> None:
    dep = require(scopes=["bills:read"])
    assert await _admits(dep, PARTNER)
    assert not await _admits(dep, PARTNER_OTHER)
    assert not await _admits(dep, STAFF_AGENT)  # no roles listed: staff are not admitted either
    assert not await _admits(dep, RESIDENT)


async def test_require_admin_passes_any_role_check() -> None:
    for role in Role:
        assert await _admits(require(roles=[role]), ADMIN)
    assert not await _admits(require(scopes=["bills:read"]), ADMIN)  # but needs some role check


async def test_require_nothing_admits_nobody() -> None:
    dep = require()
    for principal in (STAFF_AGENT, ADMIN, RESIDENT, PARTNER):
        assert not await _admits(dep, principal)


async def test_partner_with_admin_role_is_refused_by_require() -> None:
    principal = Principal(subject="bank", kind="partner", roles=frozenset({"admin"}))
    assert principal.has_role("agent")  # has_role alone would say yes...
    assert not await _admits(require(roles=["agent"]), principal)  # ...require checks the kind first


async def test_require_through_fastapi(issuer: DevIssuer, verifier: TokenVerifier) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/bills")
    async def bills(principal: Principal = Depends(require(roles=["billing_clerk"]))) -> dict:
        return {"by": principal.audit_actor}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        anonymous = await client.get("/bills")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["code"] == "unauthorized"

        basic = await client.get("/bills", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401

        clerk = issuer.staff("li.na", "billing_clerk")
        ok = await client.get("/bills", headers={"Authorization": f"Bearer {clerk}"})
        assert ok.status_code == 200
        assert ok.json() == {"by": "li.na"}

        agent = issuer.staff("zhang.wei", "agent")
        forbidden = await client.get("/bills", headers={"Authorization": f"Bearer {agent}"})
        assert forbidden.status_code == 403
        assert forbidden.json()["code"] == "forbidden"

        expired = issuer.staff("li.na", "billing_clerk", ttl_seconds=-3600)
        late = await client.get("/bills", headers={"Authorization": f"Bearer {expired}"})
        assert late.status_code == 401
        assert late.json()["code"] == "token_expired"


async def test_an_unreachable_issuer_is_not_hammered(
    issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = JwksKeySet("https://issuer.invalid/jwks.json", min_refresh_seconds=60)
    calls: list[int] = []

    async def down() -> dict:
        calls.append(1)
        raise OSError("connection refused")

    monkeypatch.setattr(keys, "_fetch", down)
    verifier = TokenVerifier(keys, issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    for _ in range(5):
        with pytest.raises(Unauthorized) as caught:
            await verifier.verify(issuer.staff("a", "agent"))
        assert caught.value.code == "issuer_unavailable" and caught.value.status == 503
    assert len(calls) == 1
