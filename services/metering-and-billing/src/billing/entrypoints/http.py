"""The metering-and-billing API process: ``metering-and-billing api`` (app factory
``billing.entrypoints.http:create``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from billing import __version__
from billing.adapters.cache import LookupCache
from billing.api import bills, readings
from billing.api.routes import router
from billing.service_layer.lookups import statement_loader
from billing.settings import Settings, get_settings
from utilis_shared.auth import TokenVerifier
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.health import HealthCheck, KafkaProbe, database_check, redis_check
from utilis_shared.logging import configure_logging
from utilis_shared.web import create_app

DESCRIPTION = """
Metering and billing (抄表计费) of the Utilis platform. Built so far: versioned tariff plans (阶梯, seasonal,
time-of-use, heating by area and two-part heating, fixed fees, regulator coefficients) with effective
dates per utility and customer class, and quotes that price a period's usage with the tariff engine (bill
lines and total in integer fen); meter readings and heating telemetry; billing runs (idempotent, resumable)
that issue numbered, immutable bills with their tier lines; credit and debit notes; receivables settled by
payment events (late fee first, oldest bill first, the rest to the prepaid balance); late-fee waivers;
and the residents' bill lookups served from Redis (amount due with the late fee accrued to the second).

Errors are `application/problem+json` with a stable `code`. Money is `{"amount_fen": …, "currency": "CNY"}`.
"""


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.kafka_probe = KafkaProbe(settings.kafka_bootstrap)
        app.state.token_verifier = TokenVerifier.from_settings(settings)
        app.state.lookup_cache = LookupCache.from_settings(settings)
        app.state.statement_loader = statement_loader(app.state.session_factory)
        try:
            yield
        finally:
            await app.state.lookup_cache.close()
            await app.state.kafka_probe.close()
            await engine.dispose()

    def readiness(app: FastAPI) -> list[HealthCheck]:
        # The API needs its database; it keeps taking writes (into the outbox) while Kafka is away.
        return [
            HealthCheck("database", database_check(app.state.engine)),
            HealthCheck("broker", app.state.kafka_probe.check, critical=False),
            # Lookups fall back to the database without Redis (slower, never wrong).
            HealthCheck("cache", redis_check(app.state.lookup_cache.redis), critical=False),
        ]

    app = create_app(
        settings,
        title="Utilis metering and billing service",
        description=DESCRIPTION,
        version=__version__,
        routers=[router, readings.router, bills.router],
        lifespan=lifespan,
        readiness=readiness,
    )

    # When two publications race past the use case's checks, the database decides; name it as the check would.
    app.state.constraint_problems = {
        "ex_tariff_plans_no_overlap": (
            "tariff_version_overlap",
            "This version's effective period overlaps another version of the plan.",
        ),
        "uq_meter_readings_external_id": (
            "reading_already_recorded",
            "A reading with this external_id was recorded at the same time; re-send to get its result.",
        ),
        "uq_bills_account_cycle": (
            "already_billed",
            "Another billing run billed one of these accounts for this cycle at the same time.",
        ),
        "uq_tariff_plans_code_version": (
            "tariff_version_conflict",
            "Another version of this plan was published at the same time; reload and retry.",
        ),
    }
    return app
