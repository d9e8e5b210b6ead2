"""PiiCipher: AES-256-GCM with key ids and field binding, blind indexes, masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from cryptography.exceptions import InvalidTag

from utilis_shared.pii import PiiCipher, PiiError, mask_id_number, mask_name, mask_phone, normalise
from utilis_shared.settings import ServiceSettings

PHONE = "13845671234"
ID_NUMBER = "11010119900307123X"


def _cipher(keys: dict[str, bytes] | None = None, active: str = "k1", bidx: bytes | None = None) -> PiiCipher:
    keys = keys if keys is not None else {"k1": os.urandom(32)}
    return PiiCipher(keys, active, bidx if bidx is not None else os.urandom(32))


def test_round_trip_and_token_format() -> None:
    cipher = _cipher()
    token = cipher.encrypt(PHONE, field="phone")
    assert token.startswith("k1:")
    assert PHONE not in token
    assert cipher.decrypt(token, field="phone") == PHONE


def test_round_trip_non_ascii() -> None:
    cipher = _cipher()
    address = "北京市朝阳区建国路88号3单元502"
    assert cipher.decrypt(cipher.encrypt(address, field="address"), field="address") == address


def test_ciphertext_differs_every_time() -> None:
    cipher = _cipher()
    tokens = {cipher.encrypt(PHONE, field="phone") for _ in range(5)}
    assert len(tokens) == 5
    nonces = {base64.b64decode(t.partition(":")[2])[:12] for t in tokens}
    assert len(nonces) == 5


def test_encrypt_many_is_encrypt_of_each_with_its_own_nonce() -> None:
    cipher = _cipher()
    values = [PHONE, ID_NUMBER, PHONE, "北京市朝阳区", ""]
    tokens = cipher.encrypt_many(values, field="phone")
    assert [cipher.decrypt(t, field="phone") for t in tokens] == values
    assert all(t.startswith("k1:") for t in tokens)
    nonces = {base64.b64decode(t.partition(":")[2])[:12] for t in tokens}
    assert len(nonces) == len(values)  # the same value twice: two nonces, two ciphertexts
    with pytest.raises(InvalidTag):
        cipher.decrypt(tokens[0], field="id_number")
    assert cipher.encrypt_many([], field="phone") == []


def test_field_is_bound_as_associated_data() -> None:
    cipher = _cipher()
    token = cipher.encrypt(PHONE, field="phone")
    with pytest.raises(InvalidTag):
        cipher.decrypt(token, field="id_number")


def test_tampered_ciphertext_is_refused() -> None:
    cipher = _cipher()
    kid, _, blob = cipher.encrypt(PHONE, field="phone").partition(":")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.decrypt(f"{kid}:{base64.b64encode(bytes(raw)).decode()}", field="phone")


def test_key_rotation_old_rows_still_decrypt_new_writes_use_new_key() -> None:
    k1, k2, bidx = os.urandom(32), os.urandom(32), os.urandom(32)
    before = PiiCipher({"k1": k1}, "k1", bidx)
    old_token = before.encrypt(ID_NUMBER, field="id_number")

    after = PiiCipher({"k1": k1, "k2": k2}, "k2", bidx)
    assert after.decrypt(old_token, field="id_number") == ID_NUMBER
    new_token = after.encrypt(ID_NUMBER, field="id_number")
    assert new_token.startswith("k2:")
    assert after.decrypt(new_token, field="id_number") == ID_NUMBER
    # The new write really is under k2: a cipher that only has k1 cannot read it.
    with pytest.raises(PiiError):
        before.decrypt(new_token, field="id_number")


def test_key_id_in_token_selects_the_key() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    cipher = PiiCipher({"k1": k1, "k2": k2}, "k1", os.urandom(32))
    token = cipher.encrypt(PHONE, field="phone")
    relabelled = "k2:" + token.partition(":")[2]
    with pytest.raises(InvalidTag):
        cipher.decrypt(relabelled, field="phone")


def test_unknown_key_id_raises_pii_error() -> None:
    cipher = _cipher()
    token = cipher.encrypt(PHONE, field="phone")
    with pytest.raises(PiiError, match="k9"):
        cipher.decrypt("k9:" + token.partition(":")[2], field="phone")


def test_active_key_must_exist() -> None:
    with pytest.raises(PiiError):
        PiiCipher({"k1": os.urandom(32)}, "k2", os.urandom(32))


def test_from_settings_uses_configured_keys() -> None:
    k1 = base64.b64encode(os.urandom(32)).decode()
    k2 = base64.b64encode(os.urandom(32)).decode()
    settings = ServiceSettings(
        service_name="x", environment="test", pii_keys={"k1": k1, "k2": k2}, pii_active_key_id="k2"
    )
    cipher = PiiCipher.from_settings(settings)
    token = cipher.encrypt(PHONE, field="phone")
    assert token.startswith("k2:")
    direct = PiiCipher({"k2": base64.b64decode(k2)}, "k2", b"unused")
    assert direct.decrypt(token, field="phone") == PHONE


def test_blind_index_normalises_phone_formats() -> None:
    cipher = _cipher()
    indexes = {
        cipher.blind_index(v, field="phone")
        for v in ("138 4567 1234", "+86 13845671234", "13845671234", "0086-138-4567-1234")
    }
    assert len(indexes) == 1
    assert cipher.blind_index("13845671235", field="phone") not in indexes


def test_blind_index_is_case_insensitive_for_id_numbers() -> None:
    cipher = _cipher()
    assert cipher.blind_index("11010119900307123x", field="id_number") == cipher.blind_index(
        ID_NUMBER, field="id_number"
    )


def test_blind_index_differs_per_field_and_per_key() -> None:
    keys = {"k1": os.urandom(32)}
    a = PiiCipher(keys, "k1", os.urandom(32))
    b = PiiCipher(keys, "k1", os.urandom(32))
    assert a.blind_index(PHONE, field="phone") != a.blind_index(PHONE, field="contact_phone")
    assert a.blind_index(PHONE, field="phone") != b.blind_index(PHONE, field="phone")
    digest = a.blind_index(PHONE, field="phone")
    assert PHONE not in digest
    assert len(digest) == 64


@pytest.mark.parametrize("key_length", [16, 32, 64, 65, 100])
def test_blind_index_is_hmac_sha256_of_field_and_normalised_value(key_length: int) -> None:
    bidx = os.urandom(key_length)
    cipher = _cipher(bidx=bidx)
    values = ((PHONE, "phone"), ("+86 138-4567-1234", "phone"), ("11010119900307123x", "id_number"))
    for value, field in values:
        expected = hmac.new(bidx, f"{field}:{normalise(value)}".encode(), hashlib.sha256).hexdigest()
        assert cipher.blind_index(value, field=field) == expected


def test_blind_index_is_deterministic_for_the_same_key() -> None:
    bidx = os.urandom(32)
    a = PiiCipher({"k1": os.urandom(32)}, "k1", bidx)
    b = PiiCipher({"k9": os.urandom(32)}, "k9", bidx)  # encryption keys do not matter
    assert a.blind_index(PHONE, field="phone") == b.blind_index(PHONE, field="phone")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("138 4567-1234", "13845671234"),
        ("+8613845671234", "13845671234"),
        ("008613845671234", "13845671234"),
        ("11010119900307123x", "11010119900307123X"),
        ("(010) 6552-8888", "01065528888"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13845671234", "138****1234"),
        ("+86 138 4567 1234", "138****1234"),
        ("123456", "******"),
    ],
)
def test_mask_phone(raw: str, expected: str) -> None:
    assert mask_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("11010119900307123X", "110***********123X"),
        ("11010119900307123x", "110***********123X"),
        ("110101900307123", "110********7123"),  # old 15-digit card
        ("1234567", "*******"),
    ],
)
def test_mask_id_number(raw: str, expected: str) -> None:
    assert mask_id_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("张三", "张*"), ("欧阳娜娜", "欧**娜"), ("王小明", "王*明"), ("李", "李"), ("", "")],
)
def test_mask_name(raw: str, expected: str) -> None:
    assert mask_name(raw) == expected
