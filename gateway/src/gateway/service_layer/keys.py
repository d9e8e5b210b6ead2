"""Signing keys: the active one (cached per process), the published set (JWKS), rotation.

Rotation makes a new key active at once and retires the old one; the old public key stays in the JWKS
until ``retired_at + access-token lifetime + leeway``, so every token it signed verifies until it expires.
Verifiers that meet an unknown ``kid`` re-fetch the JWKS (``utilis_shared.auth.JwksKeySet``), so a new
key needs no pre-publication delay.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.adapters import crypto
from gateway.adapters.orm import SigningKey
from gateway.settings import Settings
from utilis_shared.auth import JwksKeySet
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import utcnow


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    loaded_at: float


def publication_window(settings: Settings) -> timedelta:
    """How long a retired key stays published: until every token it signed is past expiry and leeway."""
    return timedelta(seconds=settings.access_token_ttl_seconds + settings.jwt_leeway_seconds)


def _new_key_row(cipher: PiiCipher) -> SigningKey:
    pem, jwk = crypto.generate_es256_key()
    kid = crypto.new_kid()
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return SigningKey(
        kid=kid,
        algorithm="ES256",
        private_key_enc=cipher.encrypt(pem, field=crypto.SIGNING_KEY_FIELD),
        public_jwk=jwk,
    )


async def rotate_keys(session: AsyncSession, cipher: PiiCipher, *, now: datetime | None = None) -> SigningKey:
    """Retire the active key (if any) and make a new one active, in the caller's transaction."""
    now = now or utcnow()
    await session.execute(update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now))
    row = _new_key_row(cipher)
    session.add(row)
    await session.flush()
    return row


async def published_keys(
    session: AsyncSession, settings: Settings, *, now: datetime | None = None
) -> list[SigningKey]:
    """The active key and the retired keys whose tokens may still be valid, newest first."""
    now = now or utcnow()
    rows = await session.scalars(
        select(SigningKey)
        .where(
            or_(
                SigningKey.retired_at.is_(None),
                SigningKey.retired_at > now - publication_window(settings),
            )
        )
        .order_by(SigningKey.created_at.desc())
    )
    return list(rows)


class KeyRing:
    """What the API process signs and verifies with. Reads the database in its own short transactions
    (key material is not part of any business transaction)."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], cipher: PiiCipher, settings: Settings
    ) -> None:
        self._session_factory = session_factory
        self._cipher = cipher
        self._settings = settings
        self._active: ActiveKey | None = None
        self._lock = asyncio.Lock()

    async def active(self) -> ActiveKey:
        cached = self._active
        if cached and time.monotonic() - cached.loaded_at < self._settings.signing_key_cache_seconds:
            return cached
        async with self._lock:
            self._active = await self._load_active()
            return self._active

    async def _load_active(self) -> ActiveKey:
        for _ in range(3):
            async with self._session_factory() as session:
                row = await session.scalar(select(SigningKey).where(SigningKey.retired_at.is_(None)))
                if row is None:
                    # First start: create the first key. Two replicas racing here are serialised by the
                    # one-active-key unique index; the loser reads the winner's key.
                    row = _new_key_row(self._cipher)
                    session.add(row)
                    try:
                        await session.commit()
                    except IntegrityError:
                        await session.rollback()
                        continue
            pem = self._cipher.decrypt(row.private_key_enc, field=crypto.SIGNING_KEY_FIELD)
            return ActiveKey(row.kid, crypto.load_private_key(pem), time.monotonic())
        raise RuntimeError("could not establish an active signing key")

    async def jwks(self) -> dict[str, Any]:
        async with self._session_factory() as session:
            rows = await published_keys(session, self._settings)
        return {"keys": [row.public_jwk for row in rows]}

    async def verification_key(self, kid: str) -> Any | None:
        """The public key of a published ``kid`` (None for an unknown or no longer published key)."""
        async with self._session_factory() as session:
            for row in await published_keys(session, self._settings):
                if row.kid == kid:
                    return jwt.PyJWK(row.public_jwk).key
        return None

    def forget_cached(self) -> None:
        self._active = None


class OwnJwks(JwksKeySet):
    """The gateway's own published keys for ``utilis_shared.auth.TokenVerifier``, read from the database
    instead of over HTTP: the gateway verifies bearer tokens (its own API, the proxy) exactly as every
    service does, with the same algorithm allow-list, ``kid`` rule, issuer, audience and leeway."""

    def __init__(self, ring: KeyRing, *, max_age_seconds: float = 30.0) -> None:
        super().__init__("gateway:own-keys", min_refresh_seconds=1.0, max_age_seconds=max_age_seconds)
        self._ring = ring

    async def _fetch(self) -> dict[str, Any]:
        return await self._ring.jwks()
