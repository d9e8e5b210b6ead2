"""What every OAuth use case works with: the unit of work, settings, hashing, tokens, the lockout rules,
the residents' SMS codes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from gateway.adapters.crypto import SecretHasher
from gateway.adapters.ratelimit import RateLimiter
from gateway.domain.lockout import LockoutPolicy
from gateway.service_layer.sms_codes import SmsCodes
from gateway.service_layer.tokens import TokenService
from gateway.settings import Settings
from utilis_shared.db import UnitOfWork


@dataclass
class OAuthContext:
    uow: UnitOfWork
    settings: Settings
    hasher: SecretHasher
    tokens: TokenService
    sms_codes: SmsCodes | None = None
    # The proxy's deny list of revoked access tokens (Redis), filled by the revocation endpoint.
    limiter: RateLimiter | None = None

    @property
    def lockout(self) -> LockoutPolicy:
        return LockoutPolicy(
            max_failures=self.settings.lockout_max_failures,
            lock_for=timedelta(seconds=self.settings.lockout_seconds),
        )

    async def verify_secret(self, stored_hash: str | None, secret: str) -> bool:
        # argon2 is deliberately slow (tens of ms, CPU-bound): off the event loop.
        return await asyncio.to_thread(self.hasher.verify, stored_hash, secret)
