"""How a holder's name is compared when a resident binds an account by number + name (no I/O)."""

from __future__ import annotations

import pytest

from gateway.service_layer.residents import holder_name_index, normalise_account_no, normalise_holder_name
from utilis_shared.pii import PiiCipher

CIPHER = PiiCipher({"k1": b"k" * 32}, "k1", b"b" * 32)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("欧阳 娜娜", "欧阳娜娜"),
        (" 张三\u3000", "张三"),  # ideographic space
        ("买买提•艾力", "买买提·艾力"),
        ("买买提・艾力", "买买提·艾力"),
        ("ＡＢＣ热力有限公司", "abc热力有限公司"),  # full-width letters
    ],
)
def test_equivalent_spellings_of_a_name_match(given: str, stored: str) -> None:
    assert normalise_holder_name(given) == normalise_holder_name(stored)
    assert holder_name_index(CIPHER, given) == holder_name_index(CIPHER, stored)


def test_different_names_and_fields_do_not_match() -> None:
    assert holder_name_index(CIPHER, "张三") != holder_name_index(CIPHER, "张叁")
    # Its own field: the same text indexed as a phone gives another digest.
    assert holder_name_index(CIPHER, "张三") != CIPHER.blind_index("张三", field="phone")
    assert holder_name_index(CIPHER, "  ") is None


def test_account_numbers_are_compared_without_spaces_in_upper_case() -> None:
    assert normalise_account_no(" 1000 0000 017 ") == "10000000017"
    assert normalise_account_no("hb-001234") == "HB-001234"
