"""IdempotencyClaim.for_request: key validation, scope and the canonical request hash."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from utilis_shared.commands import IdempotencyClaim, claim_for
from utilis_shared.errors import Problem

KEY = "0b8a3c1e-5f7d-4e2a-9c6b-1d2e3f4a5b6c"
PATH = "/v1/accounts/1001234567/transfers"


def _claim(body: object, *, subject: str = "u-42", method: str = "POST", path: str = PATH, key: str = KEY):
    return IdempotencyClaim.for_request(subject=subject, method=method, path=path, key=key, body=body)


def test_same_body_in_different_key_order_gives_same_hash() -> None:
    a = _claim({"amount_fen": 5000, "to": "1009876543", "meta": {"b": 1, "a": [1, 2]}})
    b = _claim({"meta": {"a": [1, 2], "b": 1}, "to": "1009876543", "amount_fen": 5000})
    assert a.request_hash == b.request_hash
    assert a == b


def test_different_body_gives_different_hash() -> None:
    base = _claim({"amount_fen": 5000, "to": "1009876543"})
    assert _claim({"amount_fen": 5001, "to": "1009876543"}).request_hash != base.request_hash
    assert _claim({"amount_fen": "5000", "to": "1009876543"}).request_hash != base.request_hash
    assert _claim({"amount_fen": 5000}).request_hash != base.request_hash
    assert _claim({"meta": {"a": [2, 1]}}).request_hash != _claim({"meta": {"a": [1, 2]}}).request_hash


def test_hash_is_hex_sha256() -> None:
    digest = _claim({"x": 1}).request_hash
    assert len(digest) == 64
    int(digest, 16)


def test_method_and_path_are_part_of_scope_and_hash() -> None:
    body = {"amount_fen": 5000}
    post = _claim(body)
    put = _claim(body, method="PUT")
    other_path = _claim(body, path="/v1/accounts/1009876543/transfers")
    assert post.scope == f"u-42:POST {PATH}"
    assert put.scope == f"u-42:PUT {PATH}"
    assert post.request_hash != put.request_hash
    assert post.request_hash != other_path.request_hash
    assert other_path.scope != post.scope


def test_subject_is_part_of_scope() -> None:
    mine = _claim({"x": 1}, subject="u-42")
    theirs = _claim({"x": 1}, subject="u-43")
    assert mine.scope.startswith("u-42:")
    assert theirs.scope.startswith("u-43:")
    assert mine.scope != theirs.scope
    assert mine.key == theirs.key == KEY


def test_scope_is_bounded() -> None:
    claim = _claim({}, path="/v1/" + "a" * 500)
    assert len(claim.scope) == 200


@pytest.mark.parametrize("key", ["not-a-uuid", "", "12345", "0b8a3c1e-5f7d-4e2a-9c6b", "' OR 1=1 --"])
def test_non_uuid_key_is_refused(key: str) -> None:
    with pytest.raises(Problem) as info:
        _claim({"x": 1}, key=key)
    assert info.value.status == 400
    assert info.value.code == "invalid_idempotency_key"


def test_any_uuid_version_is_accepted() -> None:
    for key in (str(uuid.uuid4()), str(uuid.uuid1()), KEY.upper()):
        assert _claim({"x": 1}, key=key).key == key


def test_non_json_values_are_hashed_stably() -> None:
    a = _claim({"amount": Decimal("12.30"), "on": date(2026, 11, 22)})
    b = _claim({"on": date(2026, 11, 22), "amount": Decimal("12.30")})
    c = _claim({"on": date(2026, 11, 23), "amount": Decimal("12.30")})
    assert a.request_hash == b.request_hash
    assert a.request_hash != c.request_hash


def test_unicode_body() -> None:
    assert _claim({"holder": "张三"}).request_hash != _claim({"holder": "李四"}).request_hash


class _FakeRequest:
    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.url = type("U", (), {"path": path})()


def test_claim_for_without_key_is_none() -> None:
    assert claim_for(_FakeRequest("POST", PATH), "u-42", None, {"x": 1}) is None  # type: ignore[arg-type]


def test_claim_for_uses_request_method_and_path() -> None:
    claim = claim_for(_FakeRequest("POST", PATH), "u-42", KEY, {"x": 1})  # type: ignore[arg-type]
    assert claim == _claim({"x": 1})
