"""Fixtures for the payment service's tests.

Integration tests run against the real PostgreSQL and Kafka (``scripts/infra.sh``): each test session gets
its own freshly migrated database (``payment_test_<run>``) and its own topic prefix, so runs
never see each other's data, and both are removed at the end. Tokens come from the development issuer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from payment.entrypoints.http import create
from payment.settings import Settings
from utilis_shared import devstack
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.devtokens import DevIssuer

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
async def settings(run_id: str, issuer: DevIssuer) -> AsyncIterator[Settings]:
    prefix, bootstrap = f"t{run_id}.", devstack.kafka_bootstrap()
    async with devstack.throwaway_database(f"payment_test_{run_id}", MIGRATIONS) as url:
        await devstack.ensure_topics(bootstrap, devstack.load_platform().topics, prefix=prefix)
        try:
            yield Settings(
                environment="test",
                database_url=url,
                kafka_bootstrap=bootstrap,
                kafka_topic_prefix=prefix,
                jwks_url=issuer.jwks_url,
                outbox_poll_interval_seconds=0.05,
                consumer_retry_backoff_seconds=0.02,
                consumer_max_attempts=3,
                redis_prefix=f"payment_test_{run_id}:",
            )
        finally:
            await devstack.delete_topics(bootstrap, prefix)


@pytest.fixture(scope="session")
async def engine(settings: Settings):
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_factory(engine):
    return create_session_factory(engine)


@pytest.fixture(scope="session")
def simulator():
    """The providers' side: WeChat Pay, Alipay, and two banks (icbc signs RSA2, boc SM2/SM3)."""
    from payment.adapters.providers.simulator import ProviderSimulator

    return ProviderSimulator()


@pytest.fixture(scope="session")
async def app(settings: Settings, simulator):
    from payment.adapters.channels import Channels

    channels = Channels(simulator.adapters(), notify_base_url="http://payment.test")
    application = create(settings, channels=channels)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payment.test") as c:
        yield c


@pytest.fixture(scope="session")
def auth(issuer: DevIssuer) -> Callable[..., dict[str, str]]:
    """Headers with a token: ``auth("billing_clerk")`` for staff roles, ``auth(accounts=[...])`` for a
    resident."""

    def make(*roles: str, accounts: list[str] | None = None, subject: str | None = None, **claims: Any):
        if accounts is not None:
            token = issuer.resident(subject or f"resident-{uuid.uuid4().hex[:6]}", accounts, **claims)
        else:
            token = issuer.staff(subject or f"staff-{'-'.join(roles)}", *roles, **claims)
        return {"Authorization": f"Bearer {token}"}

    return make
