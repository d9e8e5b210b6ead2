"""Unit fixtures of the provider adapters: one provider simulator (its RSA and SM2 keys are generated once
per session: key generation is the slow part) and a fixed instant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payment.adapters.providers.simulator import ProviderSimulator

NOW = datetime(2026, 11, 23, 2, 15, 30, tzinfo=UTC)  # 10:15:30 in Beijing


@pytest.fixture(scope="session")
def sim() -> ProviderSimulator:
    return ProviderSimulator(banks={"icbc": "RSA2", "boc": "SM2"}, clock=lambda: NOW)


@pytest.fixture
def now() -> datetime:
    return NOW
