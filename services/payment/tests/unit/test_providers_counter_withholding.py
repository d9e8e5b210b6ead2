"""Counter receipts and shift totals; the withholding (代扣) request file and the bank's result file: a round
trip, and every validation failure of a result file."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payment.adapters.providers.counter import CounterReceipt, shift_totals
from payment.adapters.providers.withholding import (
    ResultLine,
    WithholdingFileRejected,
    WithholdingItem,
    build_request_file,
    build_result_file,
    parse_request_file,
    parse_result_file,
)

from .conftest import NOW


# -------------------------------------------------------------------------------------------- counter
def _receipt(
    no: str, amount: int, method: str = "cash", shift: str = "2026-11-23-A", cashier: str = "u1", **kw
):
    ref = "POS-0001" if method == "pos" else None
    return CounterReceipt(no, f"P{no}", amount, method, cashier, shift, NOW, pos_reference=ref, **kw)  # type: ignore[arg-type]


def test_shift_totals_split_cash_and_pos_and_keep_voided_apart() -> None:
    receipts = [
        _receipt("R1", 1000),
        _receipt("R2", 2550, "pos"),
        _receipt("R3", 700, voided=True),
        _receipt("R4", 1, shift="2026-11-23-B", cashier="u2"),
    ]
    totals = shift_totals(receipts)
    a = totals["2026-11-23-A"]
    assert (a.count, a.cash_fen, a.pos_fen, a.total_fen, a.voided_count, a.voided_fen) == (
        2,
        1000,
        2550,
        3550,
        1,
        700,
    )
    assert a.cashier_ids == ("u1",)
    assert totals["2026-11-23-B"].total_fen == 1
    assert sum(t.total_fen for t in totals.values()) == 3551


def test_counter_receipts_are_validated_and_counted_once() -> None:
    with pytest.raises(ValueError):
        shift_totals([_receipt("R1", 100), _receipt("R1", 100)])
    with pytest.raises(ValueError):
        _receipt("R9", 0)
    with pytest.raises(ValueError):
        CounterReceipt("R9", "P9", 100, "pos", "u1", "S", NOW)  # a POS receipt without its reference
    with pytest.raises(ValueError):
        CounterReceipt("R9", "P9", 100, "cash", "u1", "S", NOW.replace(tzinfo=None))
    notice = _receipt("R5", 1234).to_notice()
    assert (notice.provider, notice.provider_txn_id, notice.amount_fen, notice.status) == (
        "counter",
        "R5",
        1234,
        "succeeded",
    )
    assert notice.raw["cashier_id"] == "u1" and notice.nonce is None


# ---------------------------------------------------------------------------------------- withholding
ITEMS = [
    WithholdingItem("P1", "A0001", "6222****1234", 12345),
    WithholdingItem("P2", "A0002", "6217****0001", 500),
    WithholdingItem("P3", "A0003", "6228****9876", 1),
]


def _batch():
    return build_request_file("B20261123001", "M000000001", "icbc", ITEMS, now=NOW)


def test_request_file_format_and_round_trip() -> None:
    batch, data = _batch()
    lines = data.decode().splitlines()
    assert lines[0] == "H,B20261123001,M000000001,icbc,20261123101530"
    assert lines[1] == "D,1,P1,A0001,6222****1234,12345"
    assert lines[-1] == "T,3,12846"
    assert parse_request_file(data) == batch
    with pytest.raises(WithholdingFileRejected):
        parse_request_file(data.replace(b"T,3,12846", b"T,3,12845"))


def test_request_items_are_validated() -> None:
    with pytest.raises(ValueError):
        WithholdingItem("P1", "A1", "6222021234567890123", 100)  # a full card number never goes in a file
    with pytest.raises(ValueError):
        WithholdingItem("P1", "A1", "6222****1234", -5)
    with pytest.raises(ValueError):
        build_request_file("B", "M", "icbc", [ITEMS[0], ITEMS[0]], now=NOW)


def _result(lines, **kw) -> bytes:
    return build_result_file(
        kw.get("batch_no", "B20261123001"), "M000000001", "icbc", lines, processed_at=NOW + timedelta(hours=2)
    )


OK_LINES = [
    ResultLine("P1", "SUCCESS", "ICBC0001", 12345),
    ResultLine("P2", "FAILED", "", 500, "余额不足"),
    ResultLine("P3", "SUCCESS", "ICBC0002", 1),
]


def test_result_file_becomes_notices() -> None:
    batch, _ = _batch()
    result = parse_result_file(_result(OK_LINES), batch=batch)
    assert [(n.order_no, n.status, n.provider_txn_id, n.amount_fen) for n in result.notices] == [
        ("P1", "succeeded", "ICBC0001", 12345),
        ("P2", "failed", "B20261123001:P2:failed", 500),
        ("P3", "succeeded", "ICBC0002", 1),
    ]
    assert result.succeeded_fen == 12346
    assert result.notices[0].provider == "bank:icbc" and result.notices[0].paid_at == NOW + timedelta(hours=2)
    assert result.notices[1].raw["failure_reason"] == "余额不足"


def _errors(data: bytes) -> list[str]:
    batch, _ = _batch()
    with pytest.raises(WithholdingFileRejected) as err:
        parse_result_file(data, batch=batch)
    return err.value.errors


def test_result_file_validation_failures() -> None:
    good = _result(OK_LINES)
    # totals do not match the rows
    assert any("trailer says" in e for e in _errors(good.replace(b"T,3,12846,2,12346", b"T,3,12846,2,12347")))
    # a duplicated line
    dup = _result([*OK_LINES, OK_LINES[0]])
    assert any("already on line" in e for e in _errors(dup))
    # the same bank serial on two orders
    serial = _result([OK_LINES[0], OK_LINES[1], ResultLine("P3", "SUCCESS", "ICBC0001", 1)])
    assert any("bank serial ICBC0001" in e for e in _errors(serial))
    # an amount other than requested, an order not in the batch, an order without result
    wrong = _result(
        [ResultLine("P1", "SUCCESS", "S1", 12344), OK_LINES[1], ResultLine("P9", "SUCCESS", "S9", 1)]
    )
    errors = _errors(wrong)
    assert any("differs from the requested" in e for e in errors)
    assert any("P9 is not in the batch" in e for e in errors)
    assert any("no result for P3" in e for e in errors)
    # another batch's file, a missing trailer, a bad status, a FAILED row without reason
    assert any("header" in e for e in _errors(_result(OK_LINES, batch_no="B-OTHER")))
    assert _errors(b"\n".join(good.splitlines()[:-1]) + b"\n")
    assert any(
        "status" in e
        for e in _errors(_result([OK_LINES[0], ResultLine("P2", "PENDING", "", 500, "x"), OK_LINES[2]]))
    )
    assert any(
        "reason" in e
        for e in _errors(_result([OK_LINES[0], ResultLine("P2", "FAILED", "", 500), OK_LINES[2]]))
    )
    assert _errors(good.replace(b",12345,", b",-12345,"))
