"""Reconciliation (对账): statement ↔ payments ↔ billing settlements, refunds, totals and the cut-over rule.
The day is 2026-11-23 (Asia/Shanghai), i.e. [2026-11-22T16:00Z, 2026-11-23T16:00Z)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from payment.domain.reconciliation import (
    Against,
    CarryOver,
    CaseKind,
    PaymentFact,
    ReconciliationInputError,
    RefundFact,
    RefundStatus,
    SettlementFact,
    Totals,
    daily_totals,
    day_bounds,
    reconcile,
)
from payment.domain.statements import StatementKind, StatementLine

DAY = date(2026, 11, 23)
START, END = day_bounds(DAY)
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def pay(
    no: int, amount: int = 10_000, *, status="succeeded", at=NOON, txn: str | None = "auto", channel="wechat"
):
    return PaymentFact(
        order_no=f"P{no:03d}",
        provider_txn_id=f"T{no:03d}" if txn == "auto" else txn,
        amount_fen=amount,
        status=status,
        channel=channel,
        succeeded_at=at if status in ("succeeded", "refunded") else None,
    )


def line(
    p: PaymentFact, line_no: int, *, amount=None, txn=None, order=None, at=None, fee=None, provider="wechat"
):
    return StatementLine(
        provider=provider,
        provider_txn_id=txn or p.provider_txn_id,
        order_no=order or p.order_no,
        amount_fen=amount or p.amount_fen,
        kind=StatementKind.PAYMENT,
        occurred_at=at or p.succeeded_at or NOON,
        fee_fen=fee,
        raw_line_no=line_no,
    )


def refund_line(order_no: str, txn: str, amount: int, line_no: int, *, refund_no=None, at=NOON, fee=None):
    return StatementLine("wechat", txn, order_no, amount, StatementKind.REFUND, at, fee, line_no, refund_no)


def settled(*payments: PaymentFact) -> list[SettlementFact]:
    return [SettlementFact(p.order_no, p.amount_fen) for p in payments]


def run(statement, payments, settlements=None, **kw):
    if settlements is None:
        settlements = settled(*(p for p in payments if p.succeeded))
    return reconcile(provider=kw.pop("provider", "wechat"), day=kw.pop("day", DAY), statement=statement,
                     payments=payments, settlements=settlements, **kw)  # fmt: skip


def kinds(result) -> list[tuple[CaseKind, str | None, Against]]:
    return [(c.kind, c.order_no, c.against) for c in result.cases]


# ------------------------------------------------------------------------------------------ acceptance
def test_one_missing_one_extra_one_wrong_amount_yield_exactly_those_three_cases():
    """The issue's acceptance example: P002 is missing from the statement, the statement has an extra line
    (T999, unknown here) and P003's line says 99.99 instead of 100.00. Everything else agrees."""
    payments = [pay(n) for n in range(1, 7)]
    p1, _p2, p3, p4, p5, p6 = payments  # P002 is not on the statement
    extra = StatementLine("wechat", "T999", "P999", 5_000, StatementKind.PAYMENT, NOON, 30, 5)
    statement = [line(p1, 2), line(p3, 3, amount=9_999), line(p4, 4), extra, line(p5, 6), line(p6, 7)]

    result = run(statement, payments)

    assert [(c.kind, c.order_no, c.provider_txn_id, c.expected_fen, c.actual_fen) for c in result.cases] == [
        (CaseKind.MISSING_AT_PROVIDER, "P002", "T002", 10_000, None),
        (CaseKind.AMOUNT_DIFFERS, "P003", "T003", 10_000, 9_999),
        (CaseKind.MISSING_HERE, "P999", "T999", None, 5_000),
    ]
    assert all(c.against is Against.PROVIDER for c in result.cases)
    assert result.cases[1].raw_line_no == 3 and result.cases[2].raw_line_no == 5
    assert result.cases[0].raw_line_no is None
    assert result.cases[1].detail_zh == "金额不一致：本系统 100.00 元，渠道 99.99 元"
    assert "本系统无对应订单" in result.cases[2].detail_zh
    assert "渠道对账单无此笔" in result.cases[0].detail_zh
    assert not result.pending_cutover and not result.balanced


def test_a_day_that_agrees_has_no_case_and_every_line_matched():
    payments = [pay(n, 100 * n) for n in range(1, 5)]
    result = run([line(p, i + 2) for i, p in enumerate(payments)], payments)
    assert result.balanced and result.cases == ()
    assert [(m.raw_line_no, m.order_no) for m in result.matches] == [
        (2, "P001"),
        (3, "P002"),
        (4, "P003"),
        (5, "P004"),
    ]


def test_case_order_does_not_depend_on_the_input_order():
    payments = [pay(n) for n in range(1, 30)]
    statement = [line(p, i + 2, amount=p.amount_fen + (i % 3 == 0)) for i, p in enumerate(payments) if i % 5]
    settlements = [
        SettlementFact(p.order_no, p.amount_fen, 1 + (i % 7 == 0)) for i, p in enumerate(payments) if i % 4
    ]
    expected = run(statement, payments, settlements).cases
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(statement)
        rng.shuffle(payments)
        rng.shuffle(settlements)
        assert run(statement, payments, settlements).cases == expected
    assert len(expected) > 10


# ------------------------------------------------------------------------------------------ matching
def test_fallback_to_the_order_number_when_the_txn_id_is_unknown_here():
    """The callback never came: the order is still pending here and has no txn id. The provider says paid:
    one status case (not a missing_here plus a missing_at_provider)."""
    pending = pay(1, status="pending", txn=None)
    result = run([line(pending, 2, txn="T777")], [pending])
    assert [(c.kind, c.order_no, c.provider_txn_id, c.expected_fen, c.actual_fen) for c in result.cases] == [
        (CaseKind.STATUS_DIFFERS, "P001", "T777", 10_000, 10_000)
    ]
    assert "支付中" in result.cases[0].detail_zh


def test_a_failed_order_the_provider_paid_is_one_status_case_even_if_the_amount_differs_too():
    failed = pay(1, status="failed", txn=None)
    result = run([line(failed, 2, txn="T001", amount=9_000)], [failed])
    assert kinds(result) == [(CaseKind.STATUS_DIFFERS, "P001", Against.PROVIDER)]
    assert "支付失败" in result.cases[0].detail_zh and "金额亦不一致" in result.cases[0].detail_zh


def test_a_succeeded_order_without_txn_id_matches_by_order_number():
    counterless = pay(1, txn=None)
    assert run([line(counterless, 2, txn="T001")], [counterless]).balanced


def test_a_different_txn_id_for_the_same_order_is_one_case():
    p = pay(1)
    result = run([line(p, 2, txn="T-OTHER")], [p])
    assert kinds(result) == [(CaseKind.STATUS_DIFFERS, "P001", Against.PROVIDER)]
    assert result.cases[0].detail_zh == "交易号不一致：本系统 T001，渠道 T-OTHER"


def test_txn_id_matches_win_over_order_number_matches_whatever_the_line_order():
    """Line 2 names P001's order but an unknown txn; line 3 carries P001's txn id: line 3 is P001's, line 2
    is an extra the provider has."""
    p = pay(1)
    statement = [line(p, 2, txn="T-X"), line(p, 3)]
    result = run(statement, [p])
    assert [(c.kind, c.raw_line_no) for c in result.cases] == [(CaseKind.MISSING_HERE, 2)]


def test_a_refunded_payment_still_matches_its_payment_line():
    p = pay(1, status="refunded")
    assert run([line(p, 2)], [p]).balanced


def test_orders_not_paid_here_and_not_on_the_statement_are_no_case():
    payments = [
        pay(1, status="pending", txn=None),
        pay(2, status="closed", txn=None),
        pay(3, status="failed"),
    ]
    assert run([], payments, []).balanced


# ------------------------------------------------------------------------------------------ billing
def test_settled_twice_as_a_count_or_as_two_facts():
    p1, p2 = pay(1), pay(2, 5_000)
    settlements = [
        SettlementFact("P001", 10_000, count=2),
        SettlementFact("P002", 5_000),
        SettlementFact("P002", 5_000),
    ]
    result = run([line(p1, 2), line(p2, 3)], [p1, p2], settlements)
    assert [(c.kind, c.order_no, c.against, c.expected_fen, c.actual_fen) for c in result.cases] == [
        (CaseKind.SETTLED_TWICE, "P001", Against.BILLING, 10_000, 20_000),
        (CaseKind.SETTLED_TWICE, "P002", Against.BILLING, 5_000, 10_000),
    ]
    assert result.cases[0].detail_zh == "计费服务核销了 2 次，共 200.00 元（应为一次 100.00 元）"


def test_not_settled_and_settled_for_another_amount():
    p1, p2, p3 = pay(1), pay(2), pay(3)
    result = run([line(p, i) for i, p in enumerate((p1, p2, p3), 2)], [p1, p2, p3],
                 [SettlementFact("P002", 9_000), SettlementFact("P003", 10_000)])  # fmt: skip
    assert [(c.kind, c.order_no, c.against, c.expected_fen, c.actual_fen) for c in result.cases] == [
        (CaseKind.NOT_SETTLED, "P001", Against.BILLING, 10_000, None),
        (CaseKind.AMOUNT_DIFFERS, "P002", Against.BILLING, 10_000, 9_000),
    ]


def test_billing_settled_a_payment_unknown_here_or_not_succeeded_here():
    failed = pay(2, status="failed", txn=None)
    result = run([], [failed], [SettlementFact("P404", 700), SettlementFact("P002", 10_000)])
    assert [(c.kind, c.order_no, c.against, c.expected_fen, c.actual_fen) for c in result.cases] == [
        (CaseKind.STATUS_DIFFERS, "P002", Against.BILLING, 10_000, 10_000),
        (CaseKind.MISSING_HERE, "P404", Against.BILLING, None, 700),
    ]


def test_a_payment_missing_at_the_provider_and_unsettled_gives_one_case_per_side():
    p = pay(1)
    result = run([], [p], [])
    assert kinds(result) == [
        (CaseKind.MISSING_AT_PROVIDER, "P001", Against.PROVIDER),
        (CaseKind.NOT_SETTLED, "P001", Against.BILLING),
    ]


def test_billing_is_checked_on_the_payments_own_day_only():
    """A payment of yesterday that today's statement lists is not checked against billing again today."""
    yesterday = pay(1, at=START - timedelta(hours=3))
    assert run([line(yesterday, 2)], [yesterday], []).balanced


# ------------------------------------------------------------------------------------------ refunds
def test_wechat_refund_lines_match_refunds_by_order_and_amount():
    p = pay(1, status="refunded")
    refunds = [
        RefundFact("R2", "P001", 3_000, NOON + timedelta(hours=2)),
        RefundFact("R1", "P001", 7_000, NOON + timedelta(hours=1)),
    ]
    statement = [line(p, 2), refund_line("P001", "T001", 3_000, 3), refund_line("P001", "T001", 7_000, 4)]
    result = run(statement, [p], refunds=refunds)
    assert result.balanced
    assert [(m.raw_line_no, m.subject, m.refund_no) for m in result.matches] == [
        (2, StatementKind.PAYMENT, None),
        (3, StatementKind.REFUND, "R2"),
        (4, StatementKind.REFUND, "R1"),
    ]


def test_a_refund_line_found_by_txn_id_when_its_order_number_is_unknown():
    p = pay(1, status="refunded")
    result = run(
        [line(p, 2), refund_line("???", "T001", 10_000, 3)],
        [p],
        refunds=[RefundFact("R1", "P001", 10_000, NOON)],
    )
    assert result.balanced


def test_alipay_refund_lines_match_by_refund_number():
    p = pay(1, channel="alipay")
    alipay_line = StatementLine("alipay", "T001", "P001", 10_000, StatementKind.PAYMENT, NOON, 60, 6)
    r_line = StatementLine("alipay", "T001", "P001", 2_000, StatementKind.REFUND, NOON, None, 7, "R2")
    refunds = [RefundFact("R1", "P001", 2_000, NOON), RefundFact("R2", "P001", 2_000, NOON)]
    result = run([alipay_line, r_line], [p], refunds=refunds, provider="alipay")
    assert [(c.kind, c.refund_no, c.subject) for c in result.cases] == [
        (CaseKind.MISSING_AT_PROVIDER, "R1", StatementKind.REFUND)
    ]


def test_refund_cases():
    p = pay(1, status="refunded")
    refunds = [
        RefundFact("R1", "P001", 1_000, NOON),  # the provider refunded 1 500
        RefundFact("R2", "P002", 500, NOON),  # not on the statement
        RefundFact("R3", "P003", 800, None, status=RefundStatus.PENDING),  # the provider says done
        RefundFact("R4", "P004", 800, None, status=RefundStatus.FAILED),  # not on the statement: no case
    ]
    statement = [
        line(p, 2),
        refund_line("P001", "T001", 1_500, 3),
        refund_line("P003", "T003", 800, 4),
        refund_line("P009", "T009", 300, 5),  # unknown here
    ]
    result = run(statement, [p], refunds=refunds)
    assert [
        (c.kind, c.order_no, c.refund_no, c.subject, c.expected_fen, c.actual_fen) for c in result.cases
    ] == [
        (CaseKind.AMOUNT_DIFFERS, "P001", "R1", StatementKind.REFUND, 1_000, 1_500),
        (CaseKind.MISSING_AT_PROVIDER, "P002", "R2", StatementKind.REFUND, 500, None),
        (CaseKind.STATUS_DIFFERS, "P003", "R3", StatementKind.REFUND, 800, 800),
        (CaseKind.MISSING_HERE, "P009", None, StatementKind.REFUND, None, 300),
    ]
    assert result.cases[0].detail_zh == "退款金额不一致：本系统 10.00 元，渠道 15.00 元"


# ------------------------------------------------------------------------------------------ totals
def test_daily_totals_per_channel():
    p1, p2, p3 = pay(1, 1_000, status="refunded"), pay(2, 2_000), pay(3, 4_000)
    statement = [
        line(p1, 2, fee=6),
        line(p2, 3, fee=12),
        refund_line("P001", "T001", 1_000, 4, fee=-6),
    ]
    wechat = run(statement, [p1, p2, p3], refunds=[RefundFact("R1", "P001", 1_000, NOON)])
    assert wechat.totals.statement == Totals(2, 3_000, 1, 1_000, 12)
    assert wechat.totals.recorded == Totals(3, 7_000, 1, 1_000, 0)
    assert wechat.totals.statement.net_fen == 2_000

    b = pay(4, 500, channel="bank:icbc")
    bank = run([line(b, 2, provider="bank:icbc")], [b], provider="bank:icbc")
    rows = daily_totals([wechat, bank])
    assert [(r.channel, r.day, r.statement.payments_fen) for r in rows] == [
        ("bank:icbc", DAY, 500),
        ("wechat", DAY, 3_000),
    ]
    assert sum((r.statement for r in rows), Totals()) == Totals(3, 3_500, 1, 1_000, 12)
    with pytest.raises(ReconciliationInputError):
        daily_totals([wechat, wechat])
    other_day = run([], [], day=DAY + timedelta(days=1), provider="alipay")
    with pytest.raises(ReconciliationInputError):
        daily_totals([wechat, other_day])


# ------------------------------------------------------------------------------------------ cut-over
def test_a_payment_in_the_last_minutes_missing_from_the_statement_is_carried_not_a_case():
    late = pay(1, at=END - timedelta(seconds=1))  # 23:59:59
    earlier = pay(2, at=END - timedelta(minutes=10, seconds=1))  # 23:49:59: outside the window
    result = run([], [late, earlier])
    assert kinds(result) == [(CaseKind.MISSING_AT_PROVIDER, "P002", Against.PROVIDER)]
    assert result.pending_cutover == (late,)
    # It is still checked against billing on its own day.
    unsettled = run([], [late], [])
    assert kinds(unsettled) == [(CaseKind.NOT_SETTLED, "P001", Against.BILLING)]


def test_the_carried_payment_on_the_next_days_statement_is_no_case():
    late = pay(1, at=END - timedelta(seconds=1))
    today = run([], [late])
    tomorrow_p = pay(2, at=END + timedelta(hours=5))
    tomorrow = run(
        [line(late, 2, at=END + timedelta(seconds=30)), line(tomorrow_p, 3)],
        [tomorrow_p],  # the service may or may not pass yesterday's payment again
        day=DAY + timedelta(days=1),
        carried=today.carry,
    )
    assert tomorrow.balanced
    assert [m.order_no for m in tomorrow.matches] == ["P001", "P002"]


def test_the_carried_payment_missing_the_next_day_too_becomes_a_case_then():
    late = pay(1, at=END - timedelta(seconds=1))
    today = run([], [late])
    tomorrow = run([], [late], day=DAY + timedelta(days=1), carried=today.carry)
    assert kinds(tomorrow) == [(CaseKind.MISSING_AT_PROVIDER, "P001", Against.PROVIDER)]
    assert "跨日结转" in tomorrow.cases[0].detail_zh
    assert tomorrow.pending_cutover == ()  # never carried twice


def test_cutover_zero_turns_the_rule_off_and_the_window_is_configurable():
    late = pay(1, at=END - timedelta(seconds=1))
    assert kinds(run([], [late], cutover=timedelta(0))) == [
        (CaseKind.MISSING_AT_PROVIDER, "P001", Against.PROVIDER)
    ]
    earlier = pay(2, at=END - timedelta(minutes=30))
    assert run([], [earlier], cutover=timedelta(hours=1)).pending_cutover == (earlier,)
    with pytest.raises(ReconciliationInputError):
        run([], [], cutover=timedelta(days=1))


def test_a_payment_dated_tomorrow_on_todays_statement_is_matched_ahead():
    """Our clock says 00:00:02 tomorrow; the provider booked it today: matched today, not expected
    tomorrow."""
    early = pay(1, at=END + timedelta(seconds=2))
    today = run([line(early, 2, at=END - timedelta(seconds=1))], [early], [])
    assert today.balanced and today.matched_ahead == frozenset({"P001"})
    tomorrow = run([], [early], day=DAY + timedelta(days=1), carried=today.carry)
    assert tomorrow.balanced  # settled once, and not expected on tomorrow's statement


def test_refunds_follow_the_same_cut_over_rule():
    p = pay(1, status="refunded")
    late_refund = RefundFact("R1", "P001", 10_000, END - timedelta(seconds=5))
    today = run([line(p, 2)], [p], refunds=[late_refund])
    assert today.balanced and today.pending_cutover_refunds == (late_refund,)
    tomorrow = run([refund_line("P001", "T001", 10_000, 2, at=END + timedelta(minutes=1))], [], [],
                   day=DAY + timedelta(days=1), carried=today.carry)  # fmt: skip
    assert tomorrow.balanced
    missing = run([], [], [], day=DAY + timedelta(days=1), carried=today.carry)
    assert [(c.kind, c.refund_no) for c in missing.cases] == [(CaseKind.MISSING_AT_PROVIDER, "R1")]


def test_a_carry_over_from_another_day_is_refused():
    with pytest.raises(ReconciliationInputError, match="carry-over"):
        run([], [], carried=CarryOver(DAY))


# ------------------------------------------------------------------------------------------ inputs
def test_contradictory_inputs_are_refused():
    p = pay(1)
    with pytest.raises(ReconciliationInputError, match="order number"):
        run([], [p, p])
    with pytest.raises(ReconciliationInputError, match="txn id"):
        run([], [p, pay(2, txn="T001")])
    with pytest.raises(ReconciliationInputError, match="alipay"):
        run([line(p, 2, provider="alipay")], [p])
    with pytest.raises(ReconciliationInputError, match="refund number"):
        run([], [p], refunds=[RefundFact("R1", "P001", 1, NOON)] * 2)


def test_facts_validate_themselves():
    with pytest.raises(ValueError, match="succeeded_at"):
        PaymentFact("P1", "T1", 100, "succeeded", "wechat", None)
    with pytest.raises(ValueError, match="aware"):
        PaymentFact("P1", "T1", 100, "succeeded", "wechat", datetime(2026, 11, 23, 12))
    with pytest.raises(ValueError):
        PaymentFact("P1", "T1", 0, "pending", "wechat", None)
    with pytest.raises(ValueError):
        PaymentFact("P1", "T1", 100, "paid", "wechat", None)
    with pytest.raises(ValueError):
        SettlementFact("P1", 100, count=0)
    with pytest.raises(ValueError):
        RefundFact("R1", "P1", 100, None)
    with pytest.raises(ValueError):
        StatementLine("wechat", "T", "P", -5, StatementKind.REFUND, NOON, None, 2)
