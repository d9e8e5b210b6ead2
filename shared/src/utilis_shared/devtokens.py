"""Development and test token minting, until (and beside) the gateway's real issuer.

``DevIssuer`` keeps an ES256 key pair in a folder (``.local/keys`` by default) and writes the public part
as a JWKS file that services read through ``UTILIS_JWKS_URL=file://...``. Settings refuse a file:// JWKS
outside development and test, so these tokens cannot open a production service.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

DEFAULT_ISSUER = "https://auth.utilis.local"
DEFAULT_AUDIENCE = "utilis"


class DevIssuer:
    def __init__(
        self,
        folder: Path,
        *,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        kid: str = "dev-1",
    ) -> None:
        self.folder = folder
        self.issuer = issuer
        self.audience = audience
        self.kid = kid
        self.private_path = folder / f"{kid}.pem"
        self.jwks_path = folder / "jwks.json"
        self._key = self._load_or_create()

    def _load_or_create(self) -> ec.EllipticCurvePrivateKey:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.private_path.exists():
            key = serialization.load_pem_private_key(self.private_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            self.private_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            self.private_path.chmod(0o600)
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        self.jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2))
        return key

    @property
    def jwks_url(self) -> str:
        return f"file://{self.jwks_path.resolve()}"

    def mint(
        self,
        subject: str,
        *,
        kind: str,
        ttl_seconds: int = 900,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "kind": kind,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        return jwt.encode(payload, self._key, algorithm="ES256", headers={"kid": self.kid, **(headers or {})})

    def staff(self, username: str, *roles: str, **claims: Any) -> str:
        return self.mint(username, kind="staff", roles=list(roles), channel="staff_console", **claims)

    def resident(self, user_id: str, account_nos: list[str], **claims: Any) -> str:
        return self.mint(user_id, kind="resident", account_nos=account_nos, channel="mobile_app", **claims)

    def partner(self, client_id: str, *scopes: str, **claims: Any) -> str:
        return self.mint(client_id, kind="partner", scope=" ".join(scopes), channel="bank", **claims)
