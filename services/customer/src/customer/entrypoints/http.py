"""The customer API process: ``customer api`` (uvicorn, app factory ``customer.entrypoints.http:create``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from customer import __version__
from customer.api.routes import router
from customer.domain.accounts import LifecycleError
from customer.settings import Settings, get_settings
from utilis_shared.auth import TokenVerifier
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.errors import Conflict, problem_response
from utilis_shared.health import HealthCheck, KafkaProbe, database_check
from utilis_shared.logging import configure_logging
from utilis_shared.pii import PiiCipher
from utilis_shared.web import create_app

DESCRIPTION = """
The customer archive (客户档案) of the Utilis platform: customers, accounts (户号), premises, meters,
contacts and tags, their lifecycle (开户, 过户, 报停, 销户), search, duplicate detection and the 360° view.

Personal data is encrypted at rest and masked in every response unless an allowed role asks to reveal it
(audited). Errors are `application/problem+json` with a stable `code`.
"""


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.cipher = PiiCipher.from_settings(settings)
        app.state.kafka_probe = KafkaProbe(settings.kafka_bootstrap)
        app.state.token_verifier = TokenVerifier.from_settings(settings)
        try:
            yield
        finally:
            await app.state.kafka_probe.close()
            await engine.dispose()

    def readiness(app: FastAPI) -> list[HealthCheck]:
        # The API needs its database; it keeps taking writes (into the outbox) while Kafka is away.
        # (It keeps no cache: the 360° view is one indexed read of local tables.)
        return [
            HealthCheck("database", database_check(app.state.engine)),
            HealthCheck("broker", app.state.kafka_probe.check, critical=False),
        ]

    app = create_app(
        settings,
        title="Utilis customer service",
        description=DESCRIPTION,
        version=__version__,
        routers=[router],
        lifespan=lifespan,
        readiness=readiness,
    )

    # When two requests race past a use case's check, the unique index decides; name it as the check would.
    app.state.constraint_problems = {
        "uq_accounts_premise_utility_live": (
            "premise_already_has_account",
            "This premise already has a live account for this utility.",
        ),
        "uq_meters_serial_installed": (
            "meter_already_installed",
            "This meter is installed on another account.",
        ),
        "uq_customers_id_number_bidx_active": (
            "customer_already_exists",
            "A customer with this identity document is already registered.",
        ),
    }

    @app.exception_handler(LifecycleError)
    async def _lifecycle(_: Request, exc: LifecycleError) -> JSONResponse:
        # A transition the account's state does not allow (domain rule) is a 409 with the rule's code.
        return problem_response(Conflict(str(exc), code=exc.code))

    return app
