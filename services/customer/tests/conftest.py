"""Fixtures for the customer service's tests.

Integration tests run against the real PostgreSQL and Kafka that ``make test`` starts: each test session
gets its own freshly migrated database (``customer_test_<run>``) and its own topic prefix, so runs never
see each other's data, and both are removed at the end.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from customer.domain.identity import resident_id_check_char
from customer.entrypoints.http import create
from customer.settings import Settings
from utilis_shared import devstack
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.devtokens import DevIssuer
from utilis_shared.pii import PiiCipher

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
    async with devstack.throwaway_database(f"customer_test_{run_id}", MIGRATIONS) as url:
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
def cipher(settings: Settings) -> PiiCipher:
    return PiiCipher.from_settings(settings)


@pytest.fixture(scope="session")
async def app(settings: Settings):
    application = create(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://customer.test") as c:
        yield c


@pytest.fixture(scope="session")
def auth(issuer: DevIssuer) -> Callable[..., dict[str, str]]:
    """Headers with a token: ``auth("agent")`` for staff roles, ``auth(accounts=[...])`` for a resident."""

    def make(*roles: str, accounts: list[str] | None = None, subject: str | None = None, **claims: Any):
        if accounts is not None:
            token = issuer.resident(subject or f"resident-{uuid.uuid4().hex[:6]}", accounts, **claims)
        else:
            token = issuer.staff(subject or f"staff-{'-'.join(roles)}", *roles, **claims)
        return {"Authorization": f"Bearer {token}"}

    return make


_rng = random.Random()


def new_resident_id() -> str:
    """A valid, random 18-character resident ID number (Harbin area code)."""
    born = f"{_rng.randint(1940, 2004)}{_rng.randint(1, 12):02d}{_rng.randint(1, 28):02d}"
    body = f"230103{born}{_rng.randint(0, 999):03d}"
    return body + resident_id_check_char(body)


def new_mobile() -> str:
    return f"13{_rng.randint(0, 9)}{_rng.randint(0, 99_999_999):08d}"


@pytest.fixture
def person() -> Callable[..., dict[str, Any]]:
    def make(name: str = "王秀英", **overrides: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "id_number": new_resident_id(),
            "contacts": [{"phone": new_mobile(), "label": "本人"}],
        }
        body.update(overrides)
        return body

    return make


@pytest.fixture
def premise() -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        body = {
            "district": "南岗区",
            "community": f"学府四道街小区{_rng.randint(1, 10**9)}",
            "building": "12",
            "unit": "3",
            "room": "502",
            "heated_area_m2": "89.50",
            "property_cert_no": f"黑(2019)哈尔滨市不动产权第{_rng.randint(0, 9_999_999):07d}号",
        }
        body.update(overrides)
        return body

    return make


@pytest.fixture
def open_account(client, auth, person, premise) -> Callable[..., Any]:
    """Open an account through the API and return the response body."""

    async def make(
        customer: dict | None = None, premise_body: dict | None = None, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"premise": premise_body or premise(), "utility": "heating", **extra}
        if "customer_id" not in extra:
            body["customer"] = customer or person()
        response = await client.post("/v1/accounts", json=body, headers=auth("agent"))
        assert response.status_code == 201, response.text
        return response.json()

    return make
