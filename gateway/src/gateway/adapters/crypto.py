"""Key material and secrets: ES256 key pairs (JWK export through PyJWT), argon2id hashes, refresh tokens.

Nothing here signs or checks a JWT by hand: PyJWT does (``service_layer/tokens.py``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from utilis_shared.timeutil import utcnow

SIGNING_KEY_FIELD = "signing_key"  # the PII cipher's associated data for encrypted private keys


def new_kid() -> str:
    """Sortable by creation date, unique by its random part: ``20261201-3f9a1c2e``."""
    return f"{utcnow():%Y%m%d}-{secrets.token_hex(4)}"


def generate_es256_key() -> tuple[str, dict[str, Any]]:
    """A new P-256 key: its PKCS#8 PEM (to encrypt) and its public JWK (to publish)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, public_jwk(key.public_key())


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    return json.loads(ECAlgorithm.to_jwk(public_key))


def load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return key


class SecretHasher:
    """argon2id (argon2-cffi's defaults: RFC 9106 low-memory profile) for passwords and client secrets.

    ``verify`` of an unknown user or client still runs one verification against a dummy hash, so the
    response time does not tell which usernames exist."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, stored_hash: str | None, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._dummy, secret) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(24)
