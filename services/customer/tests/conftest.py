"""Fixtures for the customer service's tests: the shared ones (``utilis_shared.testing``: a throwaway
database and topic prefix per session, tokens from the development issuer) and the customer service's own
(the app, the PII cipher, valid identity numbers, people, premises, accounts)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from customer.domain.identity import resident_id_check_char
from customer.entrypoints.http import create
from customer.settings import Settings
from utilis_shared.pii import PiiCipher
from utilis_shared.testing import *  # noqa: F403  (the shared fixtures)
from utilis_shared.testing import ServiceUnderTest

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture(scope="session")
def service() -> ServiceUnderTest:
    return ServiceUnderTest(Settings, "customer", MIGRATIONS, "http://customer.test")


@pytest.fixture(scope="session")
def cipher(settings: Settings) -> PiiCipher:
    return PiiCipher.from_settings(settings)


@pytest.fixture(scope="session")
async def app(settings: Settings):
    application = create(settings)
    async with application.router.lifespan_context(application):
        yield application


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
