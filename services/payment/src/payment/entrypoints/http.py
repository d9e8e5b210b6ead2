"""The payment API process: ``payment api`` (app factory ``payment.entrypoints.http:create``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from payment import __version__
from payment import metrics as _metrics  # noqa: F401  (its series are on /metrics before the first order)
from payment.adapters.channels import Channels
from payment.api import callbacks, reconciliation
from payment.api.routes import router
from payment.settings import Settings, get_settings
from utilis_shared.auth import TokenVerifier
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.health import HealthCheck, KafkaProbe, database_check, redis_check
from utilis_shared.logging import configure_logging
from utilis_shared.web import create_app

DESCRIPTION = """
Payments (缴费) of the Utilis platform: payment orders for a bill, for everything an account owes, or a
prepaid top-up, checked against what billing reports owed; the provider channels (WeChat Pay, Alipay, bank
direct-connect, the service counter); the providers' signed callbacks, verified and applied exactly once;
every transition an event (`payment.events`) that billing settles bills from.

Errors are `application/problem+json` with a stable `code`. Money is `{"amount_fen": …, "currency": "CNY"}`.
"""


def create(settings: Settings | None = None, *, channels: Channels | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.kafka_probe = KafkaProbe(settings.kafka_bootstrap)
        app.state.token_verifier = TokenVerifier.from_settings(settings)
        app.state.redis = Redis.from_url(settings.redis_url)
        # Calls to the providers' APIs (refund requests): bounded, never inside a transaction.
        app.state.provider_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.provider_request_timeout_seconds, connect=3.0)
        )
        app.state.channels = channels or callbacks.channels_from_settings(settings)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.provider_http.aclose()
            await app.state.kafka_probe.close()
            await engine.dispose()

    def readiness(app: FastAPI) -> list[HealthCheck]:
        return [
            HealthCheck("database", database_check(app.state.engine)),
            HealthCheck("redis", redis_check(app.state.redis)),  # callbacks' replay protection
            HealthCheck("broker", app.state.kafka_probe.check, critical=False),
        ]

    app = create_app(
        settings,
        title="Utilis payment service",
        description=DESCRIPTION,
        version=__version__,
        routers=[router, callbacks.router, reconciliation.router],
        lifespan=lifespan,
        readiness=readiness,
    )
    app.state.constraint_problems = {
        "uq_payment_orders_provider_txn": (
            "provider_txn_reused",
            "This provider transaction already paid another order.",
        ),
    }
    return app
