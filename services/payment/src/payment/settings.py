"""The payment service's settings (environment variables ``UTILIS_*``)."""

from __future__ import annotations

from functools import lru_cache

from utilis_shared.settings import ServiceSettings

# Other services' topics this service consumes (each producer's own topic).
CONSUMED_TOPICS = ["billing.events"]


class Settings(ServiceSettings):
    service_name: str = "payment"
    database_url: str = "postgresql+asyncpg://app@127.0.0.1:55432/payment"
    http_port: int = 8103
    management_port: int = 9103
    redis_prefix: str = "payment:"
    consumes: list[str] = list(CONSUMED_TOPICS)


@lru_cache
def get_settings() -> Settings:
    return Settings()
