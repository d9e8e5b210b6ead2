"""The customer service's settings (environment variables ``UTILIS_*``)."""

from __future__ import annotations

from functools import lru_cache

from utilis_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "customer"
    database_url: str = "postgresql+asyncpg://app@127.0.0.1:55432/customer"
    http_port: int = 8101
    management_port: int = 9101  # /livez /readyz /metrics of the relay or consumer process


@lru_cache
def get_settings() -> Settings:
    return Settings()
