"""ServiceSettings: placeholder secrets and file:// JWKS are refused outside development."""

from __future__ import annotations

import base64
import json
import os

import pytest
from pydantic import ValidationError

from utilis_shared.settings import DEV_BLIND_INDEX_KEY, DEV_PII_KEY, ServiceSettings

HTTPS_JWKS = "https://auth.utilis.example/.well-known/jwks.json"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("UTILIS_"):
            monkeypatch.delenv(name)


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _production(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "service_name": "x",
        "environment": "production",
        "pii_keys": {"k1": _key()},
        "blind_index_key": _key(),
        "jwks_url": HTTPS_JWKS,
    }
    values.update(overrides)
    return ServiceSettings(**values)


def test_development_accepts_the_defaults() -> None:
    settings = ServiceSettings(service_name="x")
    assert settings.environment == "development"
    assert settings.is_development
    assert settings.pii_keys["k1"].get_secret_value() == DEV_PII_KEY
    assert settings.jwks_url.startswith("file://")


def test_test_environment_accepts_the_defaults() -> None:
    assert ServiceSettings(service_name="x", environment="test").is_development


def test_production_with_real_keys_and_https_jwks_is_accepted() -> None:
    settings = _production()
    assert settings.environment == "production"
    assert not settings.is_development


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_default_dev_pii_key_refused(environment: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        _production(environment=environment, pii_keys={"k1": DEV_PII_KEY})


def test_default_dev_pii_key_refused_even_when_not_active() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        _production(pii_keys={"k1": DEV_PII_KEY, "k2": _key()}, pii_active_key_id="k2")


def test_default_blind_index_key_refused() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        _production(blind_index_key=DEV_BLIND_INDEX_KEY)


def test_all_defaults_refused_in_production() -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(service_name="x", environment="production")


def test_file_jwks_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="file://"):
        _production(jwks_url="file:///etc/utilis/jwks.json")


@pytest.mark.parametrize("size", [16, 24, 31, 33, 64])
def test_pii_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        ServiceSettings(service_name="x", pii_keys={"k1": base64.b64encode(os.urandom(size)).decode()})


def test_pii_key_must_be_base64() -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(service_name="x", pii_keys={"k1": "not base64 at all!"})


def test_active_key_id_must_be_known() -> None:
    with pytest.raises(ValidationError, match="pii_active_key_id"):
        ServiceSettings(service_name="x", pii_keys={"k1": _key()}, pii_active_key_id="k2")


def test_unknown_environment_refused() -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(service_name="x", environment="prod")


def test_topic_applies_the_prefix() -> None:
    settings = ServiceSettings(service_name="billing", kafka_topic_prefix="run42.")
    assert settings.topic("customer.events") == "run42.customer.events"
    assert ServiceSettings(service_name="billing").topic("customer.events") == "customer.events"


def test_own_events_topic() -> None:
    assert ServiceSettings(service_name="customer").own_events_topic == "customer.events"
    assert (
        ServiceSettings(service_name="metering-and-billing", events_topic="billing.events").own_events_topic
        == "billing.events"
    )


def test_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    k1, k2, bidx = _key(), _key(), _key()
    monkeypatch.setenv("UTILIS_ENVIRONMENT", "production")
    monkeypatch.setenv("UTILIS_PII_KEYS", json.dumps({"k1": k1, "k2": k2}))
    monkeypatch.setenv("UTILIS_PII_ACTIVE_KEY_ID", "k2")
    monkeypatch.setenv("UTILIS_BLIND_INDEX_KEY", bidx)
    monkeypatch.setenv("UTILIS_JWKS_URL", HTTPS_JWKS)
    monkeypatch.setenv("UTILIS_MAX_BODY_BYTES", "2048")
    settings = ServiceSettings(service_name="x")
    assert settings.environment == "production"
    assert settings.pii_active_key_id == "k2"
    assert settings.pii_keys["k2"].get_secret_value() == k2
    assert settings.max_body_bytes == 2048


def test_production_refused_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTILIS_ENVIRONMENT", "production")
    monkeypatch.setenv("UTILIS_JWKS_URL", HTTPS_JWKS)
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(service_name="x")


def test_secrets_are_not_in_repr() -> None:
    settings = _production()
    secret = settings.pii_keys["k1"].get_secret_value()
    assert secret not in repr(settings)
    assert settings.blind_index_key.get_secret_value() not in str(settings)
