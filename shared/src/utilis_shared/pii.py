"""Personal data at rest and on the way out: AES-256-GCM with key ids, blind indexes, masking.

- ``encrypt`` stores ``<kid>:<base64(nonce || ciphertext+tag)>``; the field name is bound in as associated
  data, so a phone ciphertext pasted into the ID-number column fails to decrypt. Rotating keys: add a new
  key id, make it active; old rows still decrypt with their own key id and can be re-encrypted lazily.
- ``blind_index`` is an HMAC-SHA256 of the normalised value under a separate key: equality search on an
  encrypted column without decrypting anything (``WHERE phone_bidx = :h``).
- ``mask_*`` are what responses and logs show by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from utilis_shared.settings import ServiceSettings


class PiiError(ValueError):
    pass


class PiiCipher:
    def __init__(self, keys: dict[str, bytes], active_key_id: str, blind_index_key: bytes) -> None:
        if active_key_id not in keys:
            raise PiiError("active key id is not among the keys")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_key_id = active_key_id
        # HMAC-SHA256 with its key pads hashed once (RFC 2104): each blind index then costs two hash
        # copies instead of a new HMAC object (an import computes two per row). Same digests as
        # hmac.new(key, message, sha256), which a test pins.
        key = blind_index_key if len(blind_index_key) <= 64 else hashlib.sha256(blind_index_key).digest()
        key = key.ljust(64, b"\0")
        self._bidx_inner = hashlib.sha256(key.translate(hmac.trans_36))
        self._bidx_outer = hashlib.sha256(key.translate(hmac.trans_5C))

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> PiiCipher:
        return cls(
            {kid: base64.b64decode(k.get_secret_value()) for kid, k in settings.pii_keys.items()},
            settings.pii_active_key_id,
            base64.b64decode(settings.blind_index_key.get_secret_value()),
        )

    def encrypt(self, plaintext: str, *, field: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead[self.active_key_id].encrypt(nonce, plaintext.encode(), field.encode())
        return f"{self.active_key_id}:{base64.b64encode(nonce + ct).decode()}"

    def encrypt_many(self, plaintexts: list[str], *, field: str) -> list[str]:
        """:meth:`encrypt` of each value (a fresh random nonce each), the nonces drawn from the system's
        generator in one call: a bulk writer encrypts a hundred thousand values."""
        aead = self._aead[self.active_key_id].encrypt
        ad = field.encode()
        nonces = os.urandom(12 * len(plaintexts))
        prefix = f"{self.active_key_id}:"
        b64 = base64.b64encode
        out = []
        for i, value in enumerate(plaintexts):
            nonce = nonces[12 * i : 12 * i + 12]
            out.append(prefix + b64(nonce + aead(nonce, value.encode(), ad)).decode())
        return out

    def decrypt(self, token: str, *, field: str) -> str:
        kid, _, blob = token.partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise PiiError(f"unknown pii key id {kid!r}")
        raw = base64.b64decode(blob)
        return aead.decrypt(raw[:12], raw[12:], field.encode()).decode()

    def blind_index(self, value: str, *, field: str) -> str:
        normalised = normalise(value)
        inner = self._bidx_inner.copy()
        inner.update(f"{field}:{normalised}".encode())
        outer = self._bidx_outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_SEPARATORS = re.compile(r"[\s\-()]")


def normalise(value: str) -> str:
    """Upper-case, no spaces or dashes, no +86 prefix: the form both writes and searches index."""
    # Most values are already bare letters and digits (an import normalises each several times).
    v = (value if value.isalnum() else _SEPARATORS.sub("", value)).upper()
    if v.startswith("+86"):
        v = v[3:]
    elif v.startswith("0086"):
        v = v[4:]
    return v


def mask_phone(phone: str) -> str:
    p = normalise(phone)
    if len(p) >= 7:
        return f"{p[:3]}{'*' * (len(p) - 7)}{p[-4:]}"
    return "*" * len(p)


def mask_id_number(number: str) -> str:
    n = normalise(number)
    if len(n) <= 7:
        return "*" * len(n)
    return f"{n[:3]}{'*' * (len(n) - 7)}{n[-4:]}"


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧**娜; organisations are not masked by callers."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
