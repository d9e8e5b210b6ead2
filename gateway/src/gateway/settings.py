"""The gateway's settings (environment variables ``UTILIS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from utilis_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "gateway"
    database_url: str = "postgresql+asyncpg://app@127.0.0.1:55432/gateway"
    http_port: int = 8000
    # The gateway is the issuer: services verify its tokens against its own JWKS.
    jwks_url: str = "http://127.0.0.1:8000/.well-known/jwks.json"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where clients reach the gateway; the metadata document's endpoint URLs start here.",
    )

    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    # A refresh token lives this long after its last rotation, and its family no longer than the maximum.
    refresh_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    refresh_family_max_seconds: int = Field(default=7 * 86400, ge=60)
    # How long the API process reuses the active signing key before asking the database again (a key
    # rotated by `gateway rotate-keys` is used by every API process within this delay).
    signing_key_cache_seconds: float = 30.0
    jwks_max_age_seconds: int = 300

    # Staff password grant: lock an account for lockout_seconds after lockout_max_failures failures in a row.
    lockout_max_failures: int = 5
    lockout_seconds: int = 900


@lru_cache
def get_settings() -> Settings:
    return Settings()
