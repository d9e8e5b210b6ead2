"""Fixtures for the gateway's tests.

Integration tests run against the real PostgreSQL and Redis that ``make test`` starts: each test session
gets its own freshly migrated database (``gateway_test_<run>``) and Redis key prefix, removed at the end.
The app runs in-process over an httpx ASGI transport; services' token verification is exercised with
``utilis_shared.auth`` pointed at the gateway's own JWKS endpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.adapters.crypto import SecretHasher
from gateway.entrypoints.http import create
from gateway.service_layer import admin
from gateway.settings import Settings
from utilis_shared import devstack
from utilis_shared.auth import JwksKeySet, TokenVerifier
from utilis_shared.db import UnitOfWork, create_engine, create_session_factory

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
STAFF_CONSOLE = "staff-console"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
async def settings(run_id: str) -> AsyncIterator[Settings]:
    async with devstack.throwaway_database(f"gateway_test_{run_id}", MIGRATIONS) as url:
        # No signing-key cache: a rotation in a test is seen by the very next token.
        # Redis keys under a per-run prefix (removed at the end), so parallel runs do not clash.
        yield Settings(
            environment="test",
            database_url=url,
            signing_key_cache_seconds=0,
            redis_prefix=f"gateway_test_{run_id}:",
        )


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """The real Redis the gateway uses (keys of this run only are removed afterwards)."""
    r = Redis.from_url(settings.redis_url)
    yield r
    keys = [k async for k in r.scan_iter(match=f"{settings.redis_prefix}*", count=500)]
    if keys:
        await r.delete(*keys)
    await r.aclose()


@pytest.fixture(scope="session")
async def engine(settings: Settings):
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_factory(engine):
    return create_session_factory(engine)


@pytest.fixture(scope="session")
def hasher() -> SecretHasher:
    return SecretHasher()


@pytest.fixture(scope="session")
async def app(settings: Settings):
    application = create(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


class GatewayJwks(JwksKeySet):
    """The services' key set, fetching the gateway's JWKS endpoint through the in-process client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__("http://gateway.test/.well-known/jwks.json", min_refresh_seconds=0)
        self.client = client

    async def _fetch(self) -> dict[str, Any]:
        response = await self.client.get("/.well-known/jwks.json")
        response.raise_for_status()
        return response.json()


@pytest.fixture
def verifier(client, settings: Settings) -> TokenVerifier:
    """What every service runs on each request (a fresh key cache per test)."""
    return TokenVerifier(GatewayJwks(client), issuer=settings.jwt_issuer, audience=settings.jwt_audience)


@pytest.fixture(scope="session")
def in_db(session_factory, settings: Settings) -> Callable[..., Awaitable[Any]]:
    """Run ``work(uow)`` in a committed transaction."""

    async def run(work: Callable[[UnitOfWork], Awaitable[Any]]) -> Any:
        uow = UnitOfWork(session_factory, settings)
        async with uow:
            result = await work(uow)
            await uow.commit()
            return result

    return run


@pytest.fixture
def staff(in_db, hasher) -> Callable[..., Awaitable[tuple[str, str]]]:
    """A new staff account: ``username, password = await staff("agent")``."""

    async def make(*roles: str) -> tuple[str, str]:
        username = f"staff-{uuid.uuid4().hex[:10]}"
        password = f"pw-{uuid.uuid4().hex}"
        await in_db(
            lambda uow: admin.add_staff(uow, hasher, username=username, roles=list(roles), password=password)
        )
        return username, password

    return make


@pytest.fixture
def partner(in_db, hasher) -> Callable[..., Awaitable[tuple[str, str]]]:
    """A new confidential partner client: ``client_id, secret = await partner("bills:read")``."""

    async def make(*scopes: str, channel: str = "bank") -> tuple[str, str]:
        client_id = f"bank-{uuid.uuid4().hex[:10]}"
        secret = f"secret-{uuid.uuid4().hex}"
        await in_db(
            lambda uow: admin.add_client(
                uow, hasher, client_id=client_id, scopes=list(scopes), secret=secret, channel=channel
            )
        )
        return client_id, secret

    return make


@pytest.fixture
def sign_in(client) -> Callable[..., Awaitable[httpx.Response]]:
    async def post(username: str, password: str, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": STAFF_CONSOLE,
        }
        return await client.post("/oauth/token", data={**form, **extra})

    return post
