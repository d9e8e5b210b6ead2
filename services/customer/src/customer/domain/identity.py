"""Identity documents and contact numbers: pure validation, no I/O.

- Resident identity card (居民身份证, GB 11643-1999): 6-digit area code, 8-digit birth date, 3-digit
  sequence, check character from ISO 7064 MOD 11-2 (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2).
- Unified social credit code (统一社会信用代码, GB 32100-2015) for organisations: 18 characters over a
  31-symbol alphabet, check character MOD 31 (weights 3^i mod 31).
- Mainland mobile numbers: 11 digits starting 13-19; landlines 0 + area code + number (7-8 digits).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from enum import StrEnum
from operator import mul

from utilis_shared.pii import normalise


class IdType(StrEnum):
    RESIDENT_ID = "resident_id"  # 居民身份证
    USCC = "uscc"  # 统一社会信用代码 (organisations)
    PASSPORT = "passport"
    HK_MACAO_TAIWAN_PERMIT = "hmt_permit"  # 港澳台居民居住证/通行证
    OTHER = "other"


class InvalidIdentity(ValueError):
    """The number fails its format or check digit; ``code`` is the stable API error code."""

    def __init__(self, message: str, code: str = "invalid_id_number") -> None:
        super().__init__(message)
        self.code = code


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^[0-9]{17}[0-9X]$")
_ASCII_ZERO_WEIGHT = ord("0") * sum(_ID_WEIGHTS)  # the weighted sum of 17 zeros' character codes


def resident_id_check_char(first17: str) -> str:
    """The check character of 17 ASCII digits (an import checks one per row: the weighted sum is taken
    over the character codes, less the zeros' share, in one C-level pass)."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("a resident ID number's first part is 17 ASCII digits")
    total = sum(map(mul, first17.encode(), _ID_WEIGHTS)) - _ASCII_ZERO_WEIGHT
    return _ID_CHECK[total % 11]


def validate_resident_id(number: str, *, today: date | None = None) -> str:
    """Return the normalised 18-character number (ASCII: full-width digits, as some spreadsheets hold
    them, become plain ones) or raise :class:`InvalidIdentity`."""
    n = normalise(number if number.isascii() else unicodedata.normalize("NFKC", number))
    if not _ID_RE.match(n):
        raise InvalidIdentity("A resident ID number has 17 digits and a check digit or X.")
    try:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError as exc:
        raise InvalidIdentity("The birth date inside the ID number is not a real date.") from exc
    if born.year < 1880 or born > (today or date.today()):  # noqa: DTZ011 - a calendar date, any zone will do
        raise InvalidIdentity("The birth date inside the ID number is out of range.")
    if resident_id_check_char(n[:17]) != n[17]:
        raise InvalidIdentity("The ID number's check digit does not match.")
    return n


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"^[0-9ABCDEFGHJKLMNPQRTUWXY]{18}$")


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    c = normalise(code)
    if not _USCC_RE.match(c):
        raise InvalidIdentity(
            "A unified social credit code has 18 characters (digits and capitals, no I O S V Z)."
        )
    if uscc_check_char(c[:17]) != c[17]:
        raise InvalidIdentity("The unified social credit code's check character does not match.")
    return c


def validate_id_number(id_type: IdType, number: str) -> str:
    if id_type is IdType.RESIDENT_ID:
        return validate_resident_id(number)
    if id_type is IdType.USCC:
        return validate_uscc(number)
    n = normalise(number)
    if not re.fullmatch(r"[0-9A-Z]{5,30}", n):
        raise InvalidIdentity("The document number has 5 to 30 letters and digits.")
    return n


_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE_RE = re.compile(r"^0\d{2,3}\d{7,8}$")


class InvalidPhone(ValueError):
    code = "invalid_phone"


def validate_phone(phone: str) -> str:
    p = normalise(phone)
    if _MOBILE_RE.match(p) or _LANDLINE_RE.match(p):
        return p
    raise InvalidPhone(
        "A phone number is an 11-digit mobile number (1[3-9]...) or a landline with area code."
    )


def is_mobile(phone: str) -> bool:
    return bool(_MOBILE_RE.match(normalise(phone)))
