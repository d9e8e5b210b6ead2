"""The payment service's settings (environment variables ``UTILIS_*``)."""

from __future__ import annotations

from datetime import time
from functools import lru_cache

from pydantic import Field, model_validator

from utilis_shared.settings import ServiceSettings

# Other services' topics this service consumes (each producer's own topic).
CONSUMED_TOPICS = ["billing.events"]


class Settings(ServiceSettings):
    service_name: str = "payment"
    database_url: str = "postgresql+asyncpg://app@127.0.0.1:55432/payment"
    http_port: int = 8103
    management_port: int = 9103
    redis_prefix: str = "payment:"
    consumes: list[str] = Field(default_factory=lambda: list(CONSUMED_TOPICS))
    # A pending order not paid within this time is asked about at its provider, then closed or settled.
    order_ttl_seconds: int = 15 * 60
    # Where providers send their notifications (the gateway's public /callbacks/<provider>).
    callback_base_url: str = "http://127.0.0.1:8000"
    # Provider callbacks older (or newer) than this are refused; their nonces are remembered this long.
    callback_window_seconds: int = 300
    # The providers' configuration: our merchant ids and keys and the providers' public keys, one JSON file
    # mounted from a Secret (adapters/providers/config.py; ``payment providers-check`` validates one).
    providers_file: str | None = None
    # Development and test only: the provider simulator's key bundle (``payment dev-keys``), which also has
    # the providers' private keys; used when no providers_file is set (adapters/channels).
    provider_keys_file: str | None = None
    # The provider's API gateway per provider (the simulator's in development): order queries for pending
    # orders past their expiry, and refund requests; an expired order is asked about until this long after
    # its expiry. A provider without one is never called (its refunds wait for the provider's notice).
    provider_query_urls: dict[str, str] = Field(default_factory=dict)
    # Refund requests: each HTTP call's timeout, tries per round (timeouts and the provider's system errors
    # only: the refund number is the provider's idempotency key), and when the scheduler tries again.
    provider_request_timeout_seconds: float = 10.0
    refund_request_attempts: int = 3
    refund_retry_seconds: int = 60
    expiry_grace_seconds: int = 24 * 3600
    # Bank withholding (代扣): the banks we send batches to, each with our merchant number at that bank (the
    # request file's header); how long a batch's orders wait for the bank's result file before the expiry
    # sweep closes them (a success that still arrives then opens a refund case).
    withholding_banks: dict[str, str] = Field(
        default_factory=lambda: {code: "M000000001" for code in ("icbc", "boc", "ccb", "abc")}
    )
    withholding_result_days: int = 7
    # The scheduler's withholding run (service_layer/withholding_exchange.py): the directory shared with the
    # banks' file transfer (<dir>/<bank>/out: request files, <dir>/<bank>/in: result files; unset: staff
    # exchange files through the API or CLI), the days of the month a batch is made for every bank, and
    # from what time of that day (Asia/Shanghai).
    withholding_exchange_dir: str | None = None
    withholding_days: list[int] = Field(default_factory=lambda: [5, 20])
    withholding_run_after: time = time(8, 0)
    # Providers' daily statements fetched by the scheduler (service_layer/statement_fetch.py): from this
    # time of the business day (Asia/Shanghai; providers make the previous day's files in the morning),
    # yesterday back this many days that have no reconciliation run yet; a day not ready or failed is asked
    # again this much later. Only providers with an API address in provider_query_urls.
    statement_fetch_after: time = time(10, 0)
    statement_lookback_days: int = Field(default=3, ge=1, le=31)
    statement_retry_seconds: int = Field(default=900, ge=30)
    statement_download_timeout_seconds: float = 120.0  # a day's file may be large
    expiry_sweep_seconds: float = 30.0

    @model_validator(mode="after")
    def _refuse_simulator_keys_outside_development(self) -> Settings:
        if self.provider_keys_file and not self.is_development:
            raise ValueError(
                "the simulator's key bundle is for development only (it holds the providers' private keys): "
                "set UTILIS_PROVIDERS_FILE instead of UTILIS_PROVIDER_KEYS_FILE"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
