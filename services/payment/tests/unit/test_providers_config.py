"""The providers file (production key material): the merchant's side of the simulator's keys written in
the file's format and read back builds adapters that verify the simulator's callbacks for every provider;
the file never holds a provider's private key; a file that cannot be used is refused at load, naming the
provider and the field and never showing a key; the simulator's bundle is refused outside development."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from payment.adapters.channels import configured_adapters
from payment.adapters.providers import config, sm2
from payment.adapters.providers.base import load_rsa_private_key, public_pem
from payment.adapters.providers.simulator import ProviderSimulator
from payment.entrypoints.cli import app as cli_app
from payment.settings import Settings

from .conftest import NOW

PROVIDERS = ["wechat", "alipay", "bank:icbc", "bank:boc"]  # the fixture's banks: icbc RSA2, boc SM2


def _file_data(sim: ProviderSimulator) -> dict:
    return json.loads(sim.merchant_config().to_json())


def _providers_private_keys(sim: ProviderSimulator) -> list[str]:
    k = sim.keys
    return [k.wechat_platform_private, k.alipay_private, *(b["bank_private"] for b in k.banks.values())]


def _key_lines(key: str) -> list[str]:
    """The text of a key as it could leak: its hex, or each base64 line of its PEM."""
    lines = [line for line in key.splitlines() if line and not line.startswith("-----")]
    return lines or [key]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_file_read_back_verifies_each_providers_callbacks(sim: ProviderSimulator, provider: str) -> None:
    text = sim.merchant_config().to_json()
    adapters = config.parse(text).adapters()
    assert sorted(adapters) == sorted(PROVIDERS)
    callback = sim.callback(provider, f"P-CFG-{provider[-3:]}", 4_321, now=NOW)
    notice = adapters[provider].verify_callback(headers=callback.headers, body=callback.body, now=NOW)
    assert (notice.order_no, notice.amount_fen) == (f"P-CFG-{provider[-3:]}", 4_321)


def test_the_file_holds_no_providers_private_key(sim: ProviderSimulator) -> None:
    text = sim.merchant_config().to_json()
    for key in _providers_private_keys(sim):
        assert all(line not in text for line in _key_lines(key))
    # ... and our own private keys are there (the service signs with them)
    assert sim.keys.wechat_merchant_private.splitlines()[1] in text


def test_fingerprints_match_across_a_private_key_and_its_public_half(sim: ProviderSimulator) -> None:
    rsa_private = sim.keys.alipay_app_private
    rsa_public = public_pem(load_rsa_private_key(rsa_private))
    assert config.fingerprint("RSA2", rsa_private, private=True) == config.fingerprint("RSA2", rsa_public)
    sm2_private = sim.keys.banks["boc"]["merchant_private"]
    assert config.fingerprint("SM2", sm2_private, private=True) == config.fingerprint(
        "SM2", sm2.public_key_of(sm2_private)
    )
    assert config.fingerprint("RSA2", rsa_public) != config.fingerprint(
        "RSA2", sim.keys.wechat_merchant_private, private=True
    )


def test_a_wrong_key_is_refused_by_field_without_its_text(sim: ProviderSimulator) -> None:
    data = _file_data(sim)
    leaked = sim.keys.alipay_private  # a private key pasted where Alipay's public key belongs
    data["alipay"]["alipay_public_key"] = leaked
    data["banks"]["boc"]["merchant_private_key"] = sim.keys.banks["icbc"]["merchant_private"]  # RSA for SM2
    with pytest.raises(config.ProvidersConfigError) as refused:
        config.parse(json.dumps(data))
    message = str(refused.value)
    assert "alipay.alipay_public_key: Value error, not an RSA public key or certificate (PEM)" in message
    assert "banks.boc: Value error, not an SM2 private key (hex d)" in message
    for key in (leaked, sim.keys.banks["icbc"]["merchant_private"]):
        assert all(line not in message for line in _key_lines(key))


def test_a_misspelt_or_missing_field_is_refused_by_name(sim: ProviderSimulator) -> None:
    data = _file_data(sim)
    data["wechat"]["merchant_privat_key"] = data["wechat"].pop("merchant_private_key")
    data["wechat"]["apiv3_key"] = "too-short"
    with pytest.raises(config.ProvidersConfigError) as refused:
        config.parse(json.dumps(data))
    message = str(refused.value)
    assert "wechat.merchant_private_key: Field required" in message
    assert "wechat.merchant_privat_key: Extra inputs are not permitted" in message
    assert "wechat.apiv3_key:" in message and "too-short" not in message
    with pytest.raises(config.ProvidersConfigError, match="not JSON"):
        config.parse("{")


def test_only_the_configured_providers_are_offered(sim: ProviderSimulator, tmp_path) -> None:
    data = _file_data(sim)
    del data["alipay"], data["banks"]["boc"]
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    settings = Settings(environment="production", providers_file=str(path), **_production_secrets())
    assert sorted(configured_adapters(settings)) == ["bank:icbc", "wechat"]
    assert configured_adapters(Settings(environment="development")) == {}


def test_the_simulators_bundle_is_refused_outside_development(tmp_path) -> None:
    with pytest.raises(ValueError, match="UTILIS_PROVIDERS_FILE"):
        Settings(
            environment="production",
            provider_keys_file=str(tmp_path / "bundle.json"),
            **_production_secrets(),
        )


def test_providers_check_prints_fingerprints_and_never_a_key(sim: ProviderSimulator, tmp_path) -> None:
    good, bad = tmp_path / "providers.json", tmp_path / "bad.json"
    good.write_text(sim.merchant_config().to_json(), encoding="utf-8")
    data = _file_data(sim)
    data["wechat"]["platform_public_keys"] = {"PUB_KEY_ID_X": "not a key"}
    bad.write_text(json.dumps(data), encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["providers-check", str(good)])
    assert ok.exit_code == 0, ok.output
    summary = sim.merchant_config().summary()
    assert summary["bank:boc"]["bank_keys"]["BOC-BANK-01"] in ok.output
    assert summary["wechat"]["merchant_key"] in ok.output
    assert "4 provider(s): wechat, alipay, bank:boc, bank:icbc" in ok.output
    assert "BEGIN" not in ok.output and sim.keys.wechat_apiv3_key not in ok.output
    refused = runner.invoke(cli_app, ["providers-check", str(bad)])
    assert refused.exit_code == 1
    assert "wechat.platform_public_keys: Value error, not an RSA public key" in refused.output


def _production_secrets() -> dict:
    """Settings that pass the production checks other than the one under test (no placeholder secrets, an
    https JWKS)."""
    import base64
    import os

    return {
        "pii_keys": {"k1": base64.b64encode(os.urandom(32)).decode()},
        "pii_active_key_id": "k1",
        "blind_index_key": base64.b64encode(os.urandom(32)).decode(),
        "jwks_url": "https://auth.utilis.example/.well-known/jwks.json",
    }
