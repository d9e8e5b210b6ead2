"""Settings base every service extends (pydantic-settings, environment variables prefixed ``UTILIS_``).

A service declares ``class Settings(ServiceSettings)`` with its own fields. Outside development and test,
start-up refuses placeholder secrets, so a forgotten value cannot reach production.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "staging", "production"]

# Recognisable development-only values. They are fine on a laptop and refused anywhere else.
PLACEHOLDER_MARK = "dev-only"
DEV_PII_KEY = base64.b64encode(b"dev-only-pii-key-0123456789abcde").decode()  # 32 bytes
DEV_BLIND_INDEX_KEY = base64.b64encode(b"dev-only-blind-index-key-0123456").decode()


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UTILIS_", env_file=None, extra="ignore")

    service_name: str
    environment: Environment = "development"
    log_level: str = "INFO"

    # Stores
    database_url: str = Field(
        default="postgresql+asyncpg://app@127.0.0.1:55432/postgres",
        description="SQLAlchemy URL of this service's own database.",
    )
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Optimistic disconnect handling: no ping round trip before every transaction (a round trip costs
    # ~0.4 ms of CPU here, a tenth of a payment callback). After a database restart the first statement on
    # a dead connection fails (a 503, or a consumer retry) and invalidates the whole pool, so the next one
    # reconnects; connections are recycled every half hour regardless.
    db_pool_pre_ping: bool = False
    db_pool_recycle_seconds: int = 1800
    redis_url: str = "redis://127.0.0.1:56379/0"
    kafka_bootstrap: str = "127.0.0.1:59092"
    # Prepended to every topic name; tests use a per-run prefix to stay out of each other's way.
    kafka_topic_prefix: str = ""
    # The logical topic this service publishes to (``<service>.events``; billing's is ``billing.events``).
    events_topic: str = ""

    # HTTP
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_body_bytes: int = 1_048_576
    # /livez /readyz /metrics of a background process (relay, consumer); one port per process kind.
    management_port: int = 9100

    # Authentication: access tokens are verified here, against the issuer's published keys.
    jwks_url: str = Field(
        default="file://.local/keys/jwks.json",
        description="Where the token issuer publishes its keys (https://... or file://...).",
    )
    jwt_issuer: str = "https://auth.utilis.local"
    jwt_audience: str = "utilis"
    jwt_leeway_seconds: int = 30

    # Personal data: AES-256-GCM keys by key id (base64), the one used for new writes, and the HMAC key
    # of the blind index that keeps exact search working on encrypted columns.
    pii_keys: dict[str, SecretStr] = Field(default_factory=lambda: {"k1": SecretStr(DEV_PII_KEY)})
    pii_active_key_id: str = "k1"
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)

    # Outbox relay and consumers
    outbox_batch_size: int = 500
    outbox_poll_interval_seconds: float = 1.0  # backstop: the relay wakes on NOTIFY
    # After a wake-up, so that the commits right behind it share the round (and its Kafka produce request):
    # 50 ms adds that much to an event's way out and, at the payment peak, cut the relays' and the broker's
    # CPU per payment by half against 5 ms (README, "Payment" benchmark).
    outbox_linger_seconds: float = 0.05
    outbox_retention_hours: int = 72
    consumer_max_attempts: int = 5
    consumer_batch_size: int = 100  # events of one fetch applied in one transaction (1: one each)
    # The broker answers a fetch when it has this much, or after this long: under load a fetch (so one
    # transaction and one offset commit) carries many events; idle, each consumer fetches 4 times a second.
    consumer_fetch_min_bytes: int = 65_536
    consumer_fetch_max_wait_ms: int = 250
    consumer_retry_backoff_seconds: float = 0.2

    @field_validator("pii_keys")
    @classmethod
    def _keys_are_aes256(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for kid, key in value.items():
            if len(base64.b64decode(key.get_secret_value())) != 32:
                raise ValueError(f"pii key {kid!r} must be 32 bytes, base64-encoded")
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> ServiceSettings:
        if self.pii_active_key_id not in self.pii_keys:
            raise ValueError("pii_active_key_id must name one of pii_keys")
        if self.environment in ("development", "test"):
            return self
        secrets = [*self.pii_keys.values(), self.blind_index_key]
        for secret in secrets:
            raw = base64.b64decode(secret.get_secret_value())
            if PLACEHOLDER_MARK.encode() in raw:
                raise ValueError(
                    f"placeholder secret refused in environment {self.environment!r}: "
                    "set UTILIS_PII_KEYS and UTILIS_BLIND_INDEX_KEY"
                )
        if self.jwks_url.startswith("file://"):
            raise ValueError("a file:// JWKS is for development only; point UTILIS_JWKS_URL at the issuer")
        return self

    @property
    def own_events_topic(self) -> str:
        return self.events_topic or f"{self.service_name}.events"

    def topic(self, name: str) -> str:
        """The broker-side name of a logical topic (``customer.events`` -> prefix + name)."""
        return f"{self.kafka_topic_prefix}{name}"

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")
