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

    # Resident SMS one-time codes (Redis at ``redis_url``; every key starts with ``redis_prefix``, so
    # parallel test runs and several gateways on one Redis do not clash).
    redis_prefix: str = "gateway:"
    sms_code_ttl_seconds: int = Field(default=300, ge=60, le=900)
    sms_code_max_attempts: int = Field(default=5, ge=1, le=10)
    sms_phone_interval_seconds: int = Field(default=60, ge=1)
    sms_phone_daily_limit: int = Field(default=10, ge=1)
    sms_ip_hourly_limit: int = Field(default=20, ge=1)

    # ---- The front door: routing to the services (gateway/src/gateway/domain/policy.py says who may) ----
    # Service name -> base URL; /api/<name>/<path> goes to <base URL>/<path>. Set by `make up` from
    # deploy/platform.yaml, by the chart from the services' Kubernetes Service names.
    upstreams: dict[str, str] = Field(default_factory=dict)
    upstream_connect_timeout_seconds: float = 1.0
    upstream_read_timeout_seconds: float = 10.0
    upstream_max_connections: int = 200
    upstream_attempts: int = Field(default=3, ge=1, le=5, description="first try included")
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=10.0, gt=0)
    # Rate limits (GCRA in Redis): requests per minute. Residents at the heating-fee peak often share a
    # carrier-grade NAT address, so the per-IP limit is generous and the per-user one does the work.
    rate_limit_user_per_minute: int = Field(default=300, ge=1)
    rate_limit_ip_per_minute: int = Field(default=6000, ge=1)
    rate_limit_partner_per_minute: int = Field(default=12000, ge=1)
    rate_limit_callback_ip_per_minute: int = Field(default=6000, ge=1)
    # Provider/bank callbacks (no OAuth2; the payment service checks their signatures): the networks each
    # provider calls from. A provider not listed here cannot reach its callback path.
    callback_networks: dict[str, list[str]] = Field(
        default_factory=lambda: {
            p: ["127.0.0.1/32", "::1/128"] for p in ("wechat", "alipay", "bank", "unionpay", "simulator")
        }
    )
    # Merged OpenAPI document: how long a service's document is reused before asking it again.
    openapi_cache_seconds: float = 60.0
    # Requests per channel are counted in memory and added to the channel_usage table this often.
    channel_usage_flush_seconds: float = Field(default=5.0, gt=0)

    # ---- Resident account binding (issue 3: the accounts a resident may act on) ----
    # The consumer process (`gateway consumer`, like the customer service's): /livez /readyz /metrics on
    # management_port; it reads the `consumes` topics (logical names; kafka_topic_prefix is prepended) as
    # consumer group `service_name`, and keeps residents' account bindings from the customer's events.
    management_port: int = 9202
    consumes: list[str] = Field(default_factory=lambda: ["customer.events"])
    # Binding by account number + holder name (`POST /api/gateway/me/accounts`): wrong pairs a resident may
    # give per UTC day before 429 rate_limited (counted in Redis under redis_prefix).
    account_binding_daily_failures: int = Field(default=5, ge=1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
