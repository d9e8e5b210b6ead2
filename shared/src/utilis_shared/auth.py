"""Verifying access tokens in every service: one FastAPI dependency, deny by default.

Tokens are JWTs signed by the gateway (ES256 or RS256, with a ``kid``). A service checks the signature
against the issuer's JWKS (cached; re-fetched, at most every few seconds, when an unknown ``kid`` shows up
after a key rotation), then issuer, audience, expiry and not-before, and builds a :class:`Principal`.

Claims: ``sub``; ``kind`` (``resident`` | ``staff`` | ``partner``); ``roles`` (staff); ``scope``
(space-separated, OAuth2); ``account_nos`` (the accounts a resident may act on); ``channel`` (where the
request came from); ``act`` (RFC 8693 actor: the staff member acting on a resident's behalf).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from utilis_shared.errors import Forbidden, Unauthorized
from utilis_shared.settings import ServiceSettings

ALLOWED_ALGORITHMS = ["ES256", "RS256"]


class Role(StrEnum):
    AGENT = "agent"  # 客服
    DISPATCHER = "dispatcher"
    TECHNICIAN = "technician"
    INSPECTOR = "inspector"
    BILLING_CLERK = "billing_clerk"
    BILLING_SUPERVISOR = "billing_supervisor"  # approves late-fee waivers
    ANALYST = "analyst"
    ADMIN = "admin"


@dataclass(frozen=True)
class Actor:
    """The staff member behind an assisted-service token (RFC 8693 ``act``)."""

    subject: str
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: str  # resident | staff | partner
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    account_nos: frozenset[str] = frozenset()
    channel: str | None = None
    actor: Actor | None = None
    token_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_resident(self) -> bool:
        return self.kind == "resident"

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles)) or Role.ADMIN in self.roles

    def can_access_account(self, account_no: str) -> bool:
        """Object-level check: staff by role (checked at the route), residents only their own accounts."""
        if self.is_staff:
            return True
        return account_no in self.account_nos

    @property
    def audit_actor(self) -> str:
        """How the audit trail names who did something (the staff member first, when assisting)."""
        if self.actor is not None:
            return f"{self.actor.subject} on behalf of {self.subject}"
        return self.subject


class JwksKeySet:
    """The issuer's public keys by ``kid``, from an https:// or file:// URL, cached."""

    def __init__(self, url: str, *, min_refresh_seconds: float = 5.0, max_age_seconds: float = 300.0) -> None:
        self.url = url
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._attempted_at = float("-inf")
        self._last_error: Exception | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> dict[str, Any]:
        if self.url.startswith("file://"):
            path = Path(self.url.removeprefix("file://"))
            return json.loads(await asyncio.to_thread(path.read_text))
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            return response.json()

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._fetched_at < self.max_age_seconds and self._keys:
                return
            # Whatever the reason (unknown kids sprayed by an attacker, an issuer that is down or serves an
            # empty set), ask the issuer at most once per min_refresh_seconds.
            if now - self._attempted_at < self.min_refresh_seconds:
                if self._last_error is not None and not self._keys:
                    raise self._last_error
                return
            self._attempted_at = now
            try:
                document = await self._fetch()
            except (OSError, ValueError, httpx.HTTPError) as exc:
                self._last_error = exc
                raise
            self._last_error = None
            keys = {}
            for jwk in document.get("keys", []):
                if jwk.get("kid") and jwk.get("alg", "ES256") in ALLOWED_ALGORITHMS:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def get(self, kid: str) -> jwt.PyJWK | None:
        await self.refresh()
        if kid not in self._keys:
            await self.refresh(force=True)
        return self._keys.get(kid)


#: A verified token's principal is kept this long at most (and never past the token's expiry).
VERIFIED_CACHE_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 50_000


class TokenVerifier:
    """Verifies access tokens against the issuer's JWKS: ES256/RS256 only, ``kid`` required, issuer,
    audience, expiry (with leeway) and the required claims.

    A client sends the same token with every request for its whole lifetime, and verifying it (the JWS
    parsing and the ES256 signature) is most of a cached lookup's own work; so the principal of a verified
    token is remembered, keyed by the exact token string, for at most ``VERIFIED_CACHE_SECONDS`` and never
    past its ``exp``. Refused tokens are never remembered. (Revocation is checked at the gateway, on every
    request, against its deny list.)"""

    def __init__(self, keys: JwksKeySet, *, issuer: str, audience: str, leeway: int = 30) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._verified: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenVerifier:
        """The verifier every service API builds at start-up: the issuer's JWKS, issuer, audience, leeway."""
        return cls(
            JwksKeySet(settings.jwks_url),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
        )

    async def verify(self, token: str) -> Principal:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        expires = float(principal.claims.get("exp", now))
        self._verified[token] = (principal, min(expires, now + VERIFIED_CACHE_SECONDS))
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The access token is malformed.", code="invalid_token") from exc
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthorized("The token's signing algorithm is not accepted.", code="invalid_token")
        kid = header.get("kid")
        if not kid:
            raise Unauthorized("The token names no signing key.", code="invalid_token")
        try:
            key = await self.keys.get(kid)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise Unauthorized(
                "The token issuer's keys are unavailable.", code="issuer_unavailable", status=503
            ) from exc
        if key is None:
            raise Unauthorized("The token is signed by an unknown key.", code="invalid_token")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The access token has expired.", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("The access token is not valid.", code="invalid_token") from exc
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    act = claims.get("act")
    actor = None
    if isinstance(act, dict) and act.get("sub"):
        actor = Actor(subject=str(act["sub"]), roles=frozenset(act.get("roles") or ()))
    kind = claims.get("kind", "resident")
    if kind not in ("resident", "staff", "partner"):
        raise Unauthorized("The token's subject kind is unknown.", code="invalid_token")
    return Principal(
        subject=str(claims["sub"]),
        kind=kind,
        roles=frozenset(claims.get("roles") or ()),
        scopes=frozenset((claims.get("scope") or "").split()),
        account_nos=frozenset(str(a) for a in claims.get("account_nos") or ()),
        channel=claims.get("channel"),
        actor=actor,
        token_id=claims.get("jti"),
        claims=claims,
    )


_bearer = HTTPBearer(auto_error=False, description="An access token issued by the Utilis gateway.")


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "An access token is required.", code="unauthorized", headers={"WWW-Authenticate": "Bearer"}
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


def require(
    *,
    roles: Iterable[str] = (),
    scopes: Iterable[str] = (),
    residents: bool = False,
) -> Callable[..., Any]:
    """A dependency that admits staff with one of ``roles``, partners with one of ``scopes`` and, when
    ``residents`` is true, residents (whose object-level access the route then checks). Nobody else."""
    role_set, scope_set = frozenset(roles), frozenset(scopes)

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.is_staff and role_set and principal.has_role(*role_set):
            return principal
        if principal.kind == "partner" and scope_set and principal.scopes & scope_set:
            return principal
        if principal.is_resident and residents:
            return principal
        raise Forbidden("Your role does not allow this operation.", code="forbidden")

    return dependency
