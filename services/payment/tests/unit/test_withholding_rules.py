"""Withholding rules (masking, batch numbers, which accounts a batch takes), the simulated bank's result
file read back by the result parser, and the counter report's arithmetic. No I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from payment.adapters.providers import withholding as files
from payment.domain import withholding as rules
from payment.service_layer.counter import summarise

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("6222021234567890123", "622202*********0123"),
        ("6222 0212 3456 7890", "622202******7890"),
        ("6222-0212-3456", "622202**3456"),
    ],
)
def test_bank_accounts_show_at_most_six_and_four_digits(number: str, masked: str) -> None:
    assert rules.mask_bank_account(number) == masked
    item = files.WithholdingItem("P1", "31000000017", masked, 100)  # the request file takes the masked form
    assert item.bank_account_masked == masked


@pytest.mark.parametrize("number", ["", "12345678901", "6222x21234567890", "1" * 31])
def test_bank_accounts_that_are_not_12_to_30_digits_are_refused(number: str) -> None:
    with pytest.raises(rules.InvalidBankAccount):
        rules.normalise_bank_account(number)


def test_a_batch_number_is_stable_per_bank_and_day() -> None:
    assert rules.batch_no("icbc", date(2026, 11, 24)) == "W20261124ICBC"
    assert rules.batch_no("icbc", date(2026, 11, 24)) != rules.batch_no("icbc", date(2026, 11, 25))
    with pytest.raises(ValueError):
        rules.batch_no("ICBC!", date(2026, 11, 24))


def _candidate(no: str, owed: int, fee: int = 0, *, pending: bool = False, paid: bool = False):
    return rules.Candidate(no, f"m-{no}", "622202******7890", owed, fee, pending, paid)


def test_a_batch_takes_positive_dues_with_nothing_pending_or_paid_since_the_report() -> None:
    lines = rules.select_lines(
        [
            _candidate("3", 1_000, 12),
            _candidate("1", 500),
            _candidate("2", 0),  # owes nothing
            _candidate("4", 900, pending=True),  # a previous batch's line is still at the bank
            _candidate("5", 900, paid=True),  # paid after billing's report: the report is stale
            _candidate("6", -300),  # in credit
        ]
    )
    assert [(x.account_no, x.amount_fen) for x in lines] == [("1", 500), ("3", 1_012)]


def test_unknown_failure_codes_are_shown_as_the_bank_sent_them() -> None:
    assert rules.failure_text(rules.INSUFFICIENT_FUNDS) == "银行账户余额不足，代扣未成功"
    assert "E42" in rules.failure_text("E42")


def test_the_simulated_banks_result_file_reads_back_as_notices(sim) -> None:
    items = [
        files.WithholdingItem(f"P2026112400000000{i:02d}", f"3100000001{i}", "622202******7890", 1_000 + i)
        for i in range(4)
    ]
    batch, request = files.build_request_file("W20261124ICBC", sim.merchant_no, "icbc", items, now=NOW)
    result = sim.withholding_result(
        request,
        failures={items[1].account_no: rules.INSUFFICIENT_FUNDS, items[3].order_no: rules.ACCOUNT_CLOSED},
        processed_at=NOW,
    )
    parsed = files.parse_result_file(result, batch=batch, provider="withholding:icbc")
    statuses = [(n.order_no, n.status, n.raw["failure_reason"]) for n in parsed.notices]
    assert statuses == [
        (items[0].order_no, "succeeded", ""),
        (items[1].order_no, "failed", "INSUFFICIENT_FUNDS"),
        (items[2].order_no, "succeeded", ""),
        (items[3].order_no, "failed", "ACCOUNT_CLOSED"),
    ]
    assert parsed.succeeded_fen == items[0].amount_fen + items[2].amount_fen
    assert {n.provider for n in parsed.notices} == {"withholding:icbc"}
    serials = [n.provider_txn_id for n in parsed.notices if n.status == "succeeded"]
    assert len(set(serials)) == 2 and all(s.startswith("ICBC20261124") for s in serials)
    assert sim.orders[("withholding:icbc", items[0].order_no)].status == "succeeded"


def test_the_counter_report_adds_up_by_method_cashier_and_shift() -> None:
    day = date(2026, 11, 24)
    rows = [
        ("wang", "A", day, "cash", 2, 12_050, NOW, NOW.replace(hour=3)),
        ("wang", "A", day, "pos", 1, 30_000, NOW.replace(hour=2), NOW.replace(hour=2)),
        ("wang", "A", day, None, 1, 700, NOW, NOW),
        ("li", "A", day, "pos", 1, 5_500, NOW.replace(hour=4), NOW.replace(hour=4)),
        ("li", "B", day, "cash", 3, 900, NOW, NOW),
    ]
    report = summarise(rows)
    assert [(g.shift_id, g.cashier) for g in report.groups] == [("A", "li"), ("A", "wang"), ("B", "li")]
    wang = report.groups[1].totals
    assert (wang.count, wang.amount_fen) == (4, 42_750)
    assert (wang.by_method["cash"].amount_fen, wang.by_method["pos"].amount_fen) == (12_050, 30_000)
    assert wang.by_method["unspecified"].count == 1
    assert (wang.first_at, wang.last_at) == (NOW, NOW.replace(hour=3))
    assert (report.totals.count, report.totals.amount_fen) == (8, 49_150)
    assert summarise([]).totals.count == 0
