"""The metering-and-billing service's settings (environment variables ``UTILIS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from utilis_shared.settings import ServiceSettings

# Other services' topics this service consumes (each producer's own topic).
CONSUMED_TOPICS = ["customer.events", "payment.events"]


class Settings(ServiceSettings):
    service_name: str = "metering-and-billing"
    database_url: str = "postgresql+asyncpg://app@127.0.0.1:55432/metering_and_billing"
    # The one agreed exception to ``<service>.events`` (docs/adding-a-service.md).
    events_topic: str = "billing.events"
    http_port: int = 8102
    # /livez /readyz /metrics of the relay (9102) or the consumer (9302: platform.yaml sets it per process
    # through UTILIS_MANAGEMENT_PORT, as for the customer service).
    management_port: int = 9102
    consumes: list[str] = Field(default_factory=lambda: list(CONSUMED_TOPICS))


@lru_cache
def get_settings() -> Settings:
    return Settings()
