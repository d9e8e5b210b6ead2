"""ID-card (GB 11643) and USCC (GB 32100) check characters, phone formats."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer.domain.identity import (
    IdType,
    InvalidIdentity,
    InvalidPhone,
    resident_id_check_char,
    validate_id_number,
    validate_phone,
    validate_resident_id,
    validate_uscc,
)


def test_published_examples() -> None:
    # The example number printed in GB 11643-1999 and the USCC example used across the literature.
    assert validate_resident_id("11010519491231002x") == "11010519491231002X"
    assert validate_uscc("91350100M000100Y43") == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("110105194912310021", "check digit"),
        ("11010519491331002X", "not a real date"),  # month 13
        ("1101051949123100", "17 digits"),
        ("11010520991231002X", "out of range"),
    ],
)
def test_bad_resident_ids(number: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity, match=reason):
        validate_resident_id(number, today=date(2026, 11, 22))


@given(st.from_regex(r"\A2301(0[1-9]|1[0-2])(19[4-9][0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}\Z"))
def test_any_single_digit_typo_is_caught(body: str) -> None:
    number = body + resident_id_check_char(body)
    assert validate_resident_id(number) == number
    for i in range(17):
        typo = number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1 :]
        try:
            validate_resident_id(typo)
        except InvalidIdentity:
            continue
        pytest.fail(f"typo at position {i} was accepted: {typo}")


def test_uscc_check_character_catches_a_changed_character() -> None:
    with pytest.raises(InvalidIdentity, match="check character"):
        validate_uscc("91350100M000100Y44")
    with pytest.raises(InvalidIdentity, match="18 characters"):
        validate_uscc("91350100M000100I43")  # I is not in the USCC alphabet


def test_other_documents_only_need_a_plausible_shape() -> None:
    assert validate_id_number(IdType.PASSPORT, "e 1234 5678") == "E12345678"
    with pytest.raises(InvalidIdentity):
        validate_id_number(IdType.PASSPORT, "??")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("138 4567 1234", "13845671234"),
        ("+86-138-4567-1234", "13845671234"),
        ("0451-86412345", "045186412345"),
    ],
)
def test_phone_normalisation(raw: str, normalised: str) -> None:
    assert validate_phone(raw) == normalised


@pytest.mark.parametrize("raw", ["12345678901", "1384567123", "2384567123x", "110"])
def test_bad_phones(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        validate_phone(raw)


@given(st.from_regex(r"\A[0-9]{17}\Z"))
def test_check_character_is_the_mod_11_2_of_the_standard(body: str) -> None:
    weights = [2 ** (17 - i) % 11 for i in range(17)]  # GB 11643-1999: W_i = 2^(i-1) mod 11, i = 18..2
    remainder = sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11
    assert resident_id_check_char(body) == "10X98765432"[remainder]


def test_full_width_digits_become_ascii() -> None:
    # Spreadsheets typed with a Chinese input method may hold full-width digits: same person, same index.
    assert validate_resident_id("１１０１０５１９４９１２３１００２Ｘ") == "11010519491231002X"


@pytest.mark.parametrize(
    "first17", ["1101051949123100", "1101051949123100x2", "１１０１０５１９４９１２３１００２"]
)
def test_check_character_needs_17_ascii_digits(first17: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        resident_id_check_char(first17)
