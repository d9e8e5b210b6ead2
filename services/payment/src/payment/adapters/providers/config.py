"""The merchant's side of every provider: what a deployment configures to take payments (production key
material), read from one JSON file (``UTILIS_PROVIDERS_FILE``, mounted from a Kubernetes Secret).

It holds only what is ours or public: our merchant / app ids, our private signing keys, WeChat's API v3
key, and the providers' **public** keys (WeChat Pay's platform public key by its ``PUB_KEY_ID_…``, or a
platform certificate by its serial; Alipay's public key; each bank's public keys by key id). A provider's
private key is never in it (the simulator's key bundle, which has them, is for development only)::

    {
      "wechat": {"mchid": "1900000109", "appid": "wx…", "apiv3_key": "<32 characters>",
                 "merchant_serial": "<our certificate's serial>", "merchant_private_key": "-----BEGIN …",
                 "platform_public_keys": {"PUB_KEY_ID_…": "-----BEGIN PUBLIC KEY-----…"}},
      "alipay": {"app_id": "2021…", "seller_id": "2088…", "app_private_key": "-----BEGIN …",
                 "alipay_public_key": "-----BEGIN PUBLIC KEY-----…"},
      "banks": {"icbc": {"merchant_no": "M…", "sign_type": "RSA2", "format": "JSON",
                         "merchant_key_id": "ICBC-MER-01", "merchant_private_key": "-----BEGIN …",
                         "bank_public_keys": {"ICBC-BANK-01": "-----BEGIN PUBLIC KEY-----…"}},
                "boc": {"sign_type": "SM2", "merchant_private_key": "<hex d>",
                        "bank_public_keys": {"BOC-BANK-01": "04<hex x><hex y>"}, …}}
    }

A provider left out is not offered (its callbacks answer 404 ``unknown_provider``). :func:`load` checks the
whole file before the service starts: every key is parsed and every adapter built, and an error names the
provider and the field, never a key's text. :meth:`ProvidersConfig.summary` lists what is configured with
key fingerprints (SHA-256 of the public key), for ``payment providers-check`` and the start-up log.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives import serialization
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from payment.adapters.providers import sm2
from payment.adapters.providers.alipay import AlipayAdapter
from payment.adapters.providers.bank import BankDirectAdapter
from payment.adapters.providers.base import DEFAULT_WINDOW, load_rsa_private_key, load_rsa_public_key
from payment.adapters.providers.wechat import WeChatPayAdapter


class ProvidersConfigError(ValueError):
    """The providers file cannot be used: the message names the provider and the field, never a key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _key_check(sign_type: str, key: str, *, private: bool) -> None:
    """Parse ``key`` as ``sign_type`` expects; a ValueError that says what was expected, never the key."""
    try:
        fingerprint(sign_type, key, private=private)
    except Exception:  # cryptography and gmssl raise several kinds; the message must not carry the key on
        raise ValueError(f"not {_EXPECTED[sign_type == 'SM2', private]}") from None


_EXPECTED = {
    (False, True): "an RSA private key (PEM)",
    (False, False): "an RSA public key or certificate (PEM)",
    (True, True): "an SM2 private key (hex d)",
    (True, False): "an SM2 public key (hex 04||x||y)",
}


def _private(value: SecretStr) -> SecretStr:
    _key_check("RSA2", value.get_secret_value(), private=True)
    return value


def _publics(value: dict[str, str]) -> dict[str, str]:
    for key in value.values():
        _key_check("RSA2", key, private=False)
    return value


class WeChatConfig(_Strict):
    mchid: str = Field(pattern=r"^[0-9]{8,12}$")
    appid: str = Field(min_length=4, max_length=32)
    apiv3_key: SecretStr = Field(min_length=32, max_length=32)
    merchant_serial: str = Field(min_length=8, max_length=64)
    merchant_private_key: SecretStr
    platform_public_keys: dict[str, str] = Field(min_length=1)

    _merchant_key = field_validator("merchant_private_key")(_private)
    _platform_keys = field_validator("platform_public_keys")(_publics)

    def adapter(self, window: timedelta) -> WeChatPayAdapter:
        return WeChatPayAdapter(
            mchid=self.mchid,
            appid=self.appid,
            apiv3_key=self.apiv3_key.get_secret_value(),
            platform_keys=self.platform_public_keys,
            merchant_private_key=self.merchant_private_key.get_secret_value(),
            merchant_serial=self.merchant_serial,
            window=window,
        )


class AlipayConfig(_Strict):
    app_id: str = Field(pattern=r"^[0-9]{16}$")
    seller_id: str | None = Field(default=None, pattern=r"^2088[0-9]{12}$")
    app_private_key: SecretStr
    alipay_public_key: str

    _app_key = field_validator("app_private_key")(_private)

    @field_validator("alipay_public_key")
    @classmethod
    def _alipay_key(cls, value: str) -> str:
        _key_check("RSA2", value, private=False)
        return value

    def adapter(self, window: timedelta) -> AlipayAdapter:
        return AlipayAdapter(
            app_id=self.app_id,
            alipay_public_key=self.alipay_public_key,
            app_private_key=self.app_private_key.get_secret_value(),
            seller_id=self.seller_id,
            window=window,
        )


class BankConfig(_Strict):
    merchant_no: str = Field(min_length=1, max_length=32)
    sign_type: Literal["RSA2", "SM2"]
    format: Literal["JSON", "XML"] = "JSON"
    merchant_key_id: str = Field(min_length=1, max_length=64)
    merchant_private_key: SecretStr
    bank_public_keys: dict[str, str] = Field(min_length=1)
    gateway_url: str = ""

    @model_validator(mode="after")
    def _keys(self) -> BankConfig:
        _key_check(self.sign_type, self.merchant_private_key.get_secret_value(), private=True)
        for key in self.bank_public_keys.values():
            _key_check(self.sign_type, key, private=False)
        return self

    def adapter(self, code: str, window: timedelta) -> BankDirectAdapter:
        return BankDirectAdapter(
            bank_code=code,
            merchant_no=self.merchant_no,
            sign_type=self.sign_type,
            bank_public_keys=self.bank_public_keys,
            merchant_private_key=self.merchant_private_key.get_secret_value(),
            merchant_key_id=self.merchant_key_id,
            base_url=self.gateway_url,
            window=window,
            message_format=self.format,
        )


class ProvidersConfig(_Strict):
    wechat: WeChatConfig | None = None
    alipay: AlipayConfig | None = None
    banks: dict[Annotated[str, Field(pattern=r"^[a-z0-9]{2,20}$")], BankConfig] = Field(default_factory=dict)

    def adapters(self, *, window: timedelta = DEFAULT_WINDOW) -> dict[str, Any]:
        """``{provider name: adapter}`` (what ``Channels`` takes); every field and key was checked when
        the configuration was read."""
        out: dict[str, Any] = {}
        if self.wechat:
            out["wechat"] = self.wechat.adapter(window)
        if self.alipay:
            out["alipay"] = self.alipay.adapter(window)
        for code, bank in sorted(self.banks.items()):
            out[f"bank:{code}"] = bank.adapter(code, window)
        return out

    def to_json(self) -> str:
        """The file's text, secrets included (for ``payment dev-keys --providers-file``, development)."""

        def reveal(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return value.get_secret_value()
            if isinstance(value, dict):
                return {k: reveal(v) for k, v in value.items()}
            return value

        return json.dumps(reveal(self.model_dump(exclude_none=True)), indent=2, ensure_ascii=False)

    def summary(self) -> dict[str, dict[str, Any]]:
        """What is configured, for people: ids and the fingerprints of our and the providers' public keys."""
        out: dict[str, dict[str, Any]] = {}
        if self.wechat:
            w = self.wechat
            out["wechat"] = {
                "mchid": w.mchid,
                "appid": w.appid,
                "merchant_serial": w.merchant_serial,
                "merchant_key": fingerprint("RSA2", w.merchant_private_key.get_secret_value(), private=True),
                "platform_keys": {k: fingerprint("RSA2", v) for k, v in w.platform_public_keys.items()},
            }
        if self.alipay:
            a = self.alipay
            out["alipay"] = {
                "app_id": a.app_id,
                "seller_id": a.seller_id,
                "app_key": fingerprint("RSA2", a.app_private_key.get_secret_value(), private=True),
                "alipay_key": fingerprint("RSA2", a.alipay_public_key),
            }
        for code, b in sorted(self.banks.items()):
            out[f"bank:{code}"] = {
                "merchant_no": b.merchant_no,
                "sign_type": b.sign_type,
                "format": b.format,
                "merchant_key": {
                    b.merchant_key_id: fingerprint(
                        b.sign_type, b.merchant_private_key.get_secret_value(), private=True
                    )
                },
                "bank_keys": {k: fingerprint(b.sign_type, v) for k, v in b.bank_public_keys.items()},
            }
        return out


def fingerprint(sign_type: str, key: str, *, private: bool = False) -> str:
    """``SHA256:<first 16 hex>`` of the public key (RSA: its DER SubjectPublicKeyInfo; SM2: its ``04||x||y``
    bytes): the same for a private key and its public half, so both sides can compare without a key."""
    if sign_type == "SM2":
        public = bytes.fromhex("04" + sm2.normalize_public_key(sm2.public_key_of(key) if private else key))
    else:
        rsa_public = load_rsa_private_key(key).public_key() if private else load_rsa_public_key(key)
        public = rsa_public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return "SHA256:" + hashlib.sha256(public).hexdigest()[:16]


def parse(text: str, *, source: str = "providers file") -> ProvidersConfig:
    """The configuration in ``text`` (JSON), validated; errors name the field, never its value."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProvidersConfigError(f"{source}: not JSON (line {exc.lineno})") from None
    try:
        return ProvidersConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
        )
        raise ProvidersConfigError(f"{source}: {problems}") from None


def load(path: str | Path, *, window: timedelta = DEFAULT_WINDOW) -> tuple[ProvidersConfig, dict[str, Any]]:
    """Read, validate and build every adapter of the file at ``path``: (the configuration, the adapters)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvidersConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    config = parse(text, source=str(path))
    return config, config.adapters(window=window)
