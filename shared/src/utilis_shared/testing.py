"""The fixtures every service's tests share (test tooling, like ``devstack``): a service's conftest names
the service under test and imports these, instead of writing its own copy::

    from utilis_shared.testing import *  # noqa: F403  (the shared fixtures)

    @pytest.fixture(scope="session")
    def service() -> ServiceUnderTest:
        return ServiceUnderTest(Settings, "payment", MIGRATIONS, "http://payment.test")

    @pytest.fixture(scope="session")
    async def app(settings): ...   # the service's own app factory

Integration tests run against the real PostgreSQL and Kafka (``scripts/infra.sh``): each test session gets
its own freshly migrated database (``<stem>_test_<run>``), topic prefix and Redis prefix, so runs never see
each other's data; the database and topics are removed at the end. Tokens come from the development issuer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from utilis_shared import devstack
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.devtokens import DevIssuer
from utilis_shared.settings import ServiceSettings

__all__ = [
    "ServiceUnderTest",
    "auth",
    "client",
    "engine",
    "issuer",
    "pytest_collection_modifyitems",
    "run_id",
    "session_factory",
    "settings",
]


@dataclass(frozen=True)
class ServiceUnderTest:
    settings_class: type[ServiceSettings]
    stem: str  # the test database is <stem>_test_<run>, the Redis prefix <stem>_test_<run>:
    migrations: Path
    base_url: str  # the in-process client's base URL
    overrides: dict[str, Any] = field(default_factory=dict)


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
async def settings(service: ServiceUnderTest, run_id: str, issuer: DevIssuer) -> AsyncIterator[Any]:
    prefix, bootstrap = f"t{run_id}.", devstack.kafka_bootstrap()
    async with devstack.throwaway_database(f"{service.stem}_test_{run_id}", service.migrations) as url:
        await devstack.ensure_topics(bootstrap, devstack.load_platform().topics, prefix=prefix)
        try:
            yield service.settings_class(
                environment="test",
                database_url=url,
                kafka_bootstrap=bootstrap,
                kafka_topic_prefix=prefix,
                jwks_url=issuer.jwks_url,
                outbox_poll_interval_seconds=0.05,
                consumer_retry_backoff_seconds=0.02,
                consumer_max_attempts=3,
                redis_prefix=f"{service.stem}_test_{run_id}:",
                **service.overrides,
            )
        finally:
            await devstack.delete_topics(bootstrap, prefix)


@pytest.fixture(scope="session")
async def engine(settings):
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_factory(engine):
    return create_session_factory(engine)


@pytest.fixture(scope="session")
async def client(app, service: ServiceUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=service.base_url) as c:
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
