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
    billing_chunk_size: int = Field(2000, ge=1, le=20_000)
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

    # ---- payment reminders (service_layer/reminders.py, adapters/notifications.py)
    # Channel: "development" records and logs each message (nothing leaves the process); "sms" and "wechat"
    # post a template message to the notification gateway, which resolves the account's phone number or
    # WeChat openid (billing never holds either).
    notification_channel: str = Field("development", pattern="^(development|sms|wechat)$")
    notification_sms_url: str = "http://127.0.0.1:8190/v1/sms-messages"
    notification_wechat_url: str = "http://127.0.0.1:8190/v1/wechat-template-messages"
    notification_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # The gateway's template code per reminder kind (before_due, overdue, collection).
    notification_templates: dict[str, str] = Field(
        default_factory=lambda: {
            "before_due": "billing_due_soon",
            "overdue": "billing_overdue",
            "collection": "billing_collection",
        }
    )
    # Reminder steps as [{"code": "due_minus_5d", "offset_days": -5, "kind": "before_due"}, ...]; empty: the
    # domain's defaults (5 and 1 days before the due date, 1 and 15 days overdue, collection at 30 days).
    reminder_steps: list[dict[str, str | int]] = Field(default_factory=list)
    reminder_send_time: str = Field("09:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")  # Asia/Shanghai
    # A failed send is retried by later sweeps, after retry_minutes × 2^(attempts − 1), at most max_attempts.
    reminder_max_attempts: int = Field(6, ge=1, le=50)
    reminder_retry_minutes: int = Field(5, ge=0, le=1440)
    # How far past the last step a bill is still looked at (a scheduler down for longer misses steps).
    reminder_window_margin_days: int = Field(10, ge=0, le=365)
    # Open bills read per query while sweeping (each bill is then its own transaction).
    reminder_sweep_batch_size: int = Field(200, ge=1, le=10_000)


@lru_cache
def get_settings() -> Settings:
    return Settings()
