"""The metering-and-billing service's settings (environment variables ``UTILIS_*``)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field

from utilis_shared.settings import ServiceSettings

# Other services' topics this service consumes (each producer's own topic).
# ``metering.readings``: inbound from IoT gateways (``metering.reading.reported``, keyed by meter serial or
# account number; see service_layer/readings.py).
CONSUMED_TOPICS = ["customer.events", "payment.events", "metering.readings"]


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

    # Late fee (滞纳金) for newly issued bills: a share of the overdue principal per day, grace days after
    # the due date, a cap as a share of the principal (never above it) and an optional absolute cap. Each
    # bill keeps the rule it was issued with (bills.late_fee_policy): a change here never reprices it.
    late_fee_daily_rate: Decimal = Decimal("0.0005")
    late_fee_grace_days: int = Field(0, ge=0, le=90)
    late_fee_cap_ratio: Decimal = Decimal("1")
    late_fee_cap_fen: int | None = Field(None, ge=0)
    # Settlement order inside a bill: the late fee before the principal (the usual rule) unless false.
    late_fee_first: bool = True

    # Billing runs: accounts per transaction (one chunk commits its bills, events and the run's cursor).
    billing_chunk_size: int = Field(1000, ge=1, le=20_000)
    # The scheduler sends due payment reminders this often.
    reminder_sweep_seconds: int = Field(60, ge=1)
    # Residents' bill lookups in Redis: the backstop TTL of a cached account statement, of a "no such
    # account" answer, and how long a cache fill may hold the per-account fill lock.
    redis_prefix: str = "billing:"
    lookup_cache_ttl_seconds: int = 600
    lookup_negative_ttl_seconds: int = 60
    lookup_fill_lock_ms: int = 2000

    # ---- readings and telemetry
    # Integer digits of a meter's register per meter kind (the customer service does not say): the value
    # wraps to 0 at 10^digits. A meter whose initial reading needs more digits gets as many as it needs.
    meter_register_digits: dict[str, int] = Field(
        default_factory=lambda: {"gas": 5, "electricity": 6, "heat": 8, "water": 5}
    )
    meter_register_digits_default: int = Field(8, ge=1, le=15)
    # The anomaly checks of domain/readings.py (MeteringConfig); the cycle is the expected reading cycle in
    # days (None: no missing-period check).
    readings_mad_threshold: Decimal = Decimal("3.5")
    readings_min_periods: int = Field(4, ge=1)
    readings_history_periods: int = Field(12, ge=1)
    readings_expected_cycle_days: int | None = Field(None, ge=1)
    readings_cycle_tolerance: Decimal = Decimal("0.5")
    # Largest bulk upload (readings per POST /v1/readings/batches, samples per POST /v1/telemetry/samples).
    readings_batch_max: int = Field(5000, ge=1, le=20_000)
    # Heating telemetry: the default minimum return temperature (a site may set its own) and how old the
    # latest return value may be before it counts as stale.
    heating_min_return_c: Decimal = Decimal("45")
    telemetry_max_age_minutes: int = Field(360, ge=1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
