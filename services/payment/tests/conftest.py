"""Fixtures for the payment service's tests: the shared ones (``utilis_shared.testing``: a throwaway
database, topic and Redis prefix per session, tokens from the development issuer) and the provider
simulator the app's channels are configured from."""

from __future__ import annotations

from pathlib import Path

import pytest

from payment.entrypoints.http import create
from payment.settings import Settings
from utilis_shared.testing import *  # noqa: F403  (the shared fixtures)
from utilis_shared.testing import ServiceUnderTest

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture(scope="session")
def service() -> ServiceUnderTest:
    return ServiceUnderTest(Settings, "payment", MIGRATIONS, "http://payment.test")


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
