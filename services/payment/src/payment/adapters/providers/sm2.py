"""SM2 signatures with SM3 (国密 SM2-with-SM3, GM/T 0003 / GM/T 0009) on top of ``gmssl``, hardened.

Formats (what banks exchange):

* **Public key**: hex, uncompressed ``04 || x || y`` (130 hex digits) or bare ``x || y`` (128).
* **Private key**: hex ``d`` (64 digits), ``1 <= d <= n - 2``.
* **Signature**: DER ``SEQUENCE { INTEGER r, INTEGER s }`` (GM/T 0009), base64 on the wire.
* **Digest**: ``e = SM3(Z || M)`` with ``Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)`` and the
  default user id ``1234567812345678`` (the only one gmssl supports; banks use it unless agreed otherwise).

What this module adds to gmssl (decisions):

* gmssl's constructor strips the ``04`` prefix with ``str.lstrip("04")``, which also eats leading ``0``/``4``
  digits of ``x`` (about one key in eight breaks): keys are normalised here and set directly.
* gmssl's ``verify`` neither bounds ``r`` and ``s`` nor parses DER strictly: here ``1 <= r, s <= n - 1``,
  the DER must be canonical (re-encoding gives the same bytes), and the public key must lie on the curve.
* gmssl draws the signing nonce ``k`` from ``random.choice`` (not a CSPRNG): :func:`sign` passes a ``k``
  from :mod:`secrets` instead. Only the simulator (a bank's side) and our requests to a bank sign.

No curve arithmetic is written here: signing, verifying and key derivation are gmssl's; only the on-curve
check of a configured public key (``y² = x³ + ax + b mod p``) is evaluated.
"""

from __future__ import annotations

import re
import secrets

from Cryptodome.Util.asn1 import DerSequence
from gmssl import sm2 as _gmssl_sm2

_TABLE = _gmssl_sm2.default_ecc_table
N = int(_TABLE["n"], 16)
_P, _A, _B = int(_TABLE["p"], 16), int(_TABLE["a"], 16), int(_TABLE["b"], 16)
DEFAULT_USER_ID = "1234567812345678"
_HEX = re.compile(r"[0-9a-fA-F]+")


class SM2KeyError(ValueError):
    """A key that is not a valid SM2 key."""


def normalize_public_key(public_hex: str) -> str:
    """``x || y`` as 128 lowercase hex digits, from ``04 || x || y`` or ``x || y``; on the curve."""
    value = public_hex.strip()
    if len(value) == 130 and value[:2] == "04":
        value = value[2:]
    if len(value) != 128 or not _HEX.fullmatch(value):
        raise SM2KeyError("an SM2 public key is 04 || x || y in hex")
    x, y = int(value[:64], 16), int(value[64:], 16)
    if not (x < _P and y < _P) or (y * y - (x * x * x + _A * x + _B)) % _P != 0:
        raise SM2KeyError("the SM2 public key is not on the curve")
    return value.lower()


def _normalize_private_key(private_hex: str) -> str:
    value = private_hex.strip()
    if len(value) != 64 or not _HEX.fullmatch(value) or not 1 <= int(value, 16) <= N - 2:
        raise SM2KeyError("an SM2 private key is 64 hex digits in [1, n-2]")
    return value.lower()


def _crypt(private_hex: str, public_hex: str) -> _gmssl_sm2.CryptSM2:
    crypt = _gmssl_sm2.CryptSM2(private_key=private_hex, public_key="00" * 64)
    crypt.public_key = public_hex  # set after construction: see the lstrip note in the module docstring
    return crypt


def public_key_of(private_hex: str) -> str:
    """``04 || x || y`` of a private key (gmssl's scalar multiplication)."""
    d = _normalize_private_key(private_hex)
    point = _crypt(d, "00" * 64)._kg(int(d, 16), _TABLE["g"])
    return "04" + point


def generate_keypair() -> tuple[str, str]:
    """A fresh ``(private_hex, public_hex)`` key pair (``d`` from :mod:`secrets`)."""
    d = f"{secrets.randbelow(N - 2) + 1:064x}"
    return d, public_key_of(d)


def sign(private_hex: str, message: bytes, *, public_hex: str | None = None) -> bytes:
    """The DER SM2-with-SM3 signature of ``message`` (``Z`` with the default user id)."""
    d = _normalize_private_key(private_hex)
    public = normalize_public_key(public_hex or public_key_of(d))
    crypt = _crypt(d, public)
    while True:
        k = f"{secrets.randbelow(N - 1) + 1:064x}"
        raw = crypt.sign_with_sm3(message, k)
        if raw is not None:  # None: r = 0 or r + k = n, draw another k
            r, s = int(raw[:64], 16), int(raw[64:], 16)
            return DerSequence([r, s]).encode()


def decode_signature(der: bytes) -> tuple[int, int]:
    """``(r, s)`` from a canonical DER signature with ``1 <= r, s <= n - 1``; ``ValueError`` otherwise."""
    seq = DerSequence()
    try:
        seq.decode(der, strict=True, nr_elements=2, only_ints_expected=True)
    except (ValueError, TypeError, IndexError, EOFError):
        raise ValueError("not a DER SM2 signature") from None
    r, s = int(seq[0]), int(seq[1])
    if not (1 <= r < N and 1 <= s < N) or DerSequence([r, s]).encode() != der:
        raise ValueError("not a canonical SM2 signature")
    return r, s


def verify(public_hex: str, message: bytes, der: bytes) -> bool:
    """True iff ``der`` is a valid SM2-with-SM3 signature of ``message`` by ``public_hex``."""
    try:
        r, s = decode_signature(der)
    except ValueError:
        return False
    crypt = _crypt("00" * 32, normalize_public_key(public_hex))
    return bool(crypt.verify_with_sm3(f"{r:064x}{s:064x}", message))
