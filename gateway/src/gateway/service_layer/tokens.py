"""Issuing tokens: a signed JWT access token (PyJWT, ES256, ``kid`` header) and, when the grant asks for
it, an opaque refresh token in a family (started at sign-in, continued on rotation). Also the gateway's own
check of an access token for revocation and introspection."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select

from gateway.adapters import crypto
from gateway.adapters.orm import RefreshToken, RefreshTokenFamily, RevokedAccessToken
from gateway.domain.claims import Grant, access_token_claims
from gateway.domain.refresh import TokenStatus
from gateway.domain.scopes import format_scope
from gateway.service_layer.keys import KeyRing
from gateway.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.timeutil import utcnow

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105  # RFC 9068 header typ, not a secret


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None

    def to_response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


class TokenService:
    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self.settings = settings
        self.keys = keys

    async def sign(self, grant: Grant) -> str:
        key = await self.keys.active()
        claims = access_token_claims(
            grant,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            jti=str(uuid.uuid4()),
            now=int(time.time()),
            ttl_seconds=self.settings.access_token_ttl_seconds,
        )
        return jwt.encode(
            claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
        )

    async def issue(
        self, uow: UnitOfWork, grant: Grant, *, family: RefreshTokenFamily | None = None
    ) -> IssuedTokens:
        """The access token, plus a refresh token in ``family`` (a rotation) or in a new family (a
        sign-in) when the grant asks for one. Rows are staged in ``uow``; the caller commits."""
        refresh = None
        if grant.issue_refresh_token or family is not None:
            now = utcnow()
            if family is None:
                family = RefreshTokenFamily(
                    client_id=grant.client_id,
                    subject=grant.subject,
                    subject_kind=grant.kind,
                    scope=format_scope(grant.scopes),
                    channel=grant.channel,
                    context=grant.context,
                    expires_at=now + timedelta(seconds=self.settings.refresh_family_max_seconds),
                )
                uow.session.add(family)
                await uow.session.flush()
            refresh = self._add_refresh_token(uow, family, now)
        return IssuedTokens(
            access_token=await self.sign(grant),
            expires_in=self.settings.access_token_ttl_seconds,
            scope=format_scope(grant.scopes),
            refresh_token=refresh,
        )

    def _add_refresh_token(self, uow: UnitOfWork, family: RefreshTokenFamily, now: datetime) -> str:
        raw = crypto.new_refresh_token()
        expires = min(now + timedelta(seconds=self.settings.refresh_token_ttl_seconds), family.expires_at)
        uow.session.add(
            RefreshToken(
                family_id=family.id,
                token_hash=crypto.token_digest(raw),
                status=TokenStatus.ACTIVE.value,
                expires_at=expires,
            )
        )
        return raw

    async def verified_claims(self, uow: UnitOfWork, token: str) -> dict[str, Any] | None:
        """The claims of an access token this gateway signed, still valid and not revoked; else None.

        Only ES256 with a published ``kid``: ``alg: none``, HMAC tricks, unknown keys, tampered payloads,
        wrong issuer or audience and expired tokens all come back None."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if header.get("alg") != "ES256" or not isinstance(kid, str):
            return None
        key = await self.keys.verification_key(kid)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["ES256"],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            return None
        revoked = await uow.session.get(RevokedAccessToken, str(claims["jti"]))
        return None if revoked is not None else claims

    async def find_refresh_token(
        self, uow: UnitOfWork, token: str, *, for_update: bool = False
    ) -> tuple[RefreshToken, RefreshTokenFamily] | None:
        query = (
            select(RefreshToken, RefreshTokenFamily)
            .join(RefreshTokenFamily, RefreshTokenFamily.id == RefreshToken.family_id)
            .where(RefreshToken.token_hash == crypto.token_digest(token))
        )
        if for_update:
            # Locks the family row too: two concurrent uses of one token are decided one after the other.
            query = query.with_for_update()
        row = (await uow.session.execute(query)).one_or_none()
        return (row[0], row[1]) if row else None
