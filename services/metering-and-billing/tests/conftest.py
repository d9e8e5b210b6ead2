"""Fixtures for the metering-and-billing service's tests: the shared ones (``utilis_shared.testing``: a
throwaway database, topic and Redis prefix per session, tokens from the development issuer) and billing's
own (the app, plan codes, plan bodies, accounts with meters)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from billing.entrypoints.http import create
from billing.settings import Settings
from utilis_shared.testing import *  # noqa: F403  (the shared fixtures)
from utilis_shared.testing import ServiceUnderTest

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "tariffs"


@pytest.fixture(scope="session")
def service() -> ServiceUnderTest:
    return ServiceUnderTest(Settings, "metering_and_billing", MIGRATIONS, "http://billing.test")


@pytest.fixture(scope="session")
async def app(settings: Settings):
    application = create(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def new_code() -> Callable[[str], str]:
    """A plan code no other test uses (the session shares one database)."""

    def make(stem: str = "plan") -> str:
        return f"t-{stem}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def gas_plan(new_code) -> Callable[..., dict[str, Any]]:
    """A publication body: a residential gas plan with three tiers (350 / 500 m³)."""

    def make(code: str | None = None, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": code or new_code("gas"),
            "name": "测试 居民 管道天然气 阶梯气价",
            "utility": "gas",
            "customer_class": "residential",
            "region": "测试市",
            "volume_unit": "m³",
            "effective_from": "2026-01-01",
            "note": "测试",
            "components": [
                {
                    "kind": "tiered_volume",
                    "tiers": [
                        {"up_to": "350", "price": "2.60"},
                        {"up_to": "500", "price": "3.12"},
                        {"up_to": None, "price": "3.90"},
                    ],
                }
            ],
        }
        body.update(overrides)
        return body

    return make


# ---- readings and telemetry


@pytest.fixture
def open_account(session_factory, settings):
    """Open an account in billing as the consumer would, from a ``customer.account.opened`` event built
    with the customer service's own models: ``await open_account(meters=[meter(...)])`` -> account no."""
    from datetime import date
    from decimal import Decimal

    from billing.service_layer import accounts
    from customer.events import AccountOpened, PremiseRef
    from customer.events import catalog as customer_catalog
    from utilis_shared.db import UnitOfWork

    async def make(
        *,
        meters: list[Any] = (),
        utility: str = "gas",
        premise_id: uuid.UUID | None = None,
        status: str = "active",
    ) -> str:
        account_no = f"2{uuid.uuid4().int % 10**10:010d}"
        payload = AccountOpened(
            account_no=account_no,
            customer_id=uuid.uuid4(),
            customer_no="C000000321",
            utility=utility,
            customer_class="residential",
            household_size=3,
            opened_on=date(2025, 12, 1),
            premise=PremiseRef(
                premise_id=premise_id or uuid.uuid4(),
                district="南岗区",
                community="学府四道街小区",
                building="12",
                unit="3",
                room="502",
                address="南岗区学府四道街小区12栋3单元502室",
                heated_area_m2=Decimal("89.50"),
                latitude=None,
                longitude=None,
            ),
            meters=list(meters),
            contacts=[],
        )
        event = customer_catalog.build(payload, subject=account_no)
        uow = UnitOfWork(session_factory, settings)
        async with uow:
            await accounts.account_opened(uow, event)
            if status != "active":
                from sqlalchemy import update

                from billing.adapters.orm import BillingAccount

                await uow.session.execute(
                    update(BillingAccount)
                    .where(BillingAccount.account_no == account_no)
                    .values(status=status)
                )
            await uow.commit()
        return account_no

    return make


@pytest.fixture
def meter():
    """A ``MeterRef`` of the customer service: ``meter(initial="100", multiplier="1", kind="gas")``."""
    from datetime import date
    from decimal import Decimal

    from customer.events import MeterRef

    def make(
        *,
        serial: str | None = None,
        initial: str = "100",
        multiplier: str = "1",
        kind: str = "gas",
        installed_on: date = date(2025, 12, 1),
    ):
        return MeterRef(
            meter_id=uuid.uuid4(),
            serial_no=serial or f"GM-{uuid.uuid4().hex[:10]}",
            kind=kind,
            multiplier=Decimal(multiplier),
            reading_mode="remote",
            installed_on=installed_on,
            initial_reading=Decimal(initial),
        )

    return make
