"""Late fees (滞纳金): accrual to the second from each bill's own due time, grace, cap, rounding at
settlement, piecewise accrual after partial payments, and waivers. Figures are worked by hand in comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.receivables import (
    BillReceivable,
    LateFeePolicy,
    OutOfOrderPosting,
    PostingKind,
    WaiverExceedsFee,
    WaiverNotAuthorized,
    due_date_of,
    due_instant,
    round_fen,
    settle_payment,
    waive_late_fee,
)
from utilis_shared.timeutil import BUSINESS_TZ

RATE = Decimal("0.0005")  # 0.05 % of the overdue principal per day
POLICY = LateFeePolicy(daily_rate=RATE)
DUE = due_instant(date(2026, 11, 30))  # 2026-12-01 00:00 +08:00 = 2026-11-30 16:00 UTC
ACCOUNT = "1000000017"


def bill(principal: int = 207_600, due: datetime = DUE, no: str = "B202611-0001") -> BillReceivable:
    return BillReceivable(bill_no=no, account_no=ACCOUNT, principal_fen=principal, due_at=due)


# ------------------------------------------------------------------------------------- due instant
def test_due_instant_is_midnight_after_the_business_due_date() -> None:
    assert datetime(2026, 11, 30, 16, 0, tzinfo=UTC) == DUE
    assert datetime(2026, 12, 1, 0, 0, tzinfo=BUSINESS_TZ) == DUE
    assert due_date_of(DUE) == date(2026, 11, 30)


def test_paying_on_the_last_second_of_the_due_date_costs_nothing() -> None:
    last_second = datetime(2026, 11, 30, 23, 59, 59, tzinfo=BUSINESS_TZ)
    assert bill().accrued_late_fee(last_second, POLICY) == 0
    assert bill().late_fee_outstanding_fen(last_second, POLICY) == 0


def test_late_fee_at_exactly_the_due_second_is_zero() -> None:
    b = bill()
    assert b.accrued_late_fee(DUE, POLICY) == Decimal(0)
    assert b.late_fee_outstanding_fen(DUE, POLICY) == 0
    # A payment at that second settles the principal and no fee.
    s = settle_payment(
        payment_id="P1",
        account_no=ACCOUNT,
        amount_fen=207_600,
        paid_at=DUE,
        bills=[b],
        prepaid_fen=0,
        policy=POLICY,
    )
    assert s.allocations[0].late_fee_fen == 0
    assert s.settled_bill_nos == ("B202611-0001",)


def test_one_second_late_accrues_but_rounds_to_zero_fen() -> None:
    # 207600 × 0.0005 / 86400 = 103.8 / 86400 = 0.0012013888… fen
    b = bill()
    accrued = b.accrued_late_fee(DUE + timedelta(seconds=1), POLICY)
    assert accrued.quantize(Decimal("1e-20")) == Decimal("0.00120138888888888889")
    assert b.late_fee_outstanding_fen(DUE + timedelta(seconds=1), POLICY) == 0


def test_an_interval_starting_before_the_due_time_only_accrues_after_it() -> None:
    # [due − 5 days, due + 1 day] with 3 grace days: nothing accrues before due + 3 days.
    # [due − 5 days, due + 4 days]: one day after the grace → 207600 × 0.0005 × 1 = 103.8 fen
    policy = LateFeePolicy(daily_rate=RATE, grace_period=timedelta(days=3))
    b = bill()
    assert b.late_fee_accrual(DUE - timedelta(days=5), DUE + timedelta(days=1), policy) == 0
    assert b.late_fee_accrual(DUE - timedelta(days=5), DUE + timedelta(days=4), policy) == Decimal("103.8")


def test_accrual_does_not_depend_on_the_callers_decimal_context() -> None:
    at = DUE + timedelta(days=10, hours=6, seconds=7)
    expected = bill().accrued_late_fee(at, POLICY)
    with localcontext() as ctx:
        ctx.prec = 3
        assert bill().accrued_late_fee(at, POLICY) == expected
        assert bill().late_fee_outstanding_fen(at, POLICY) == 1064


def test_sub_second_part_of_an_instant_is_ignored() -> None:
    assert bill().accrued_late_fee(DUE + timedelta(microseconds=999_999), POLICY) == 0


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        bill().accrued_late_fee(datetime(2026, 12, 5), POLICY)


# ----------------------------------------------------------------------------------- worked examples
def test_worked_example_ten_days_six_hours() -> None:
    # 207600 × 0.0005 × 10.25 days = 103.8 × 10.25 = 1063.95 fen (unrounded) → 1064 fen at settlement
    at = DUE + timedelta(days=10, hours=6)
    b = bill()
    assert b.accrued_late_fee(at, POLICY) == Decimal("1063.95")
    assert b.late_fee_outstanding_fen(at, POLICY) == 1064
    s = settle_payment(
        payment_id="P1",
        account_no=ACCOUNT,
        amount_fen=207_600 + 1064,
        paid_at=at,
        bills=[b],
        prepaid_fen=0,
        policy=POLICY,
    )
    assert (s.allocations[0].late_fee_fen, s.allocations[0].principal_fen) == (1064, 207_600)
    assert s.prepaid_after_fen == 0


def test_rounding_is_half_up_to_the_fen() -> None:
    # 1000 × 0.0005 × 1 day = 0.5 fen → 1 fen (half up, not banker's 0)
    assert bill(principal=1000).late_fee_outstanding_fen(DUE + timedelta(days=1), POLICY) == 1
    assert round_fen(Decimal("2.5")) == 3
    assert round_fen(Decimal("2.4999")) == 2


def test_partial_payment_reduces_the_principal_that_accrues_from_that_second() -> None:
    # Principal 100000 fen. At due + 4 days: fee = 100000 × 0.0005 × 4 = 200 fen; a 60000 payment takes the
    # 200 fen fee first, then 59800 principal → 40200 principal left.
    # At due + 10 days: accrued = 200 + 40200 × 0.0005 × 6 = 200 + 120.6 = 320.6 → 321; 200 paid → 121 owed.
    b = bill(principal=100_000)
    s = settle_payment(
        payment_id="P1",
        account_no=ACCOUNT,
        amount_fen=60_000,
        paid_at=DUE + timedelta(days=4),
        bills=[b],
        prepaid_fen=0,
        policy=POLICY,
    )
    assert (s.allocations[0].late_fee_fen, s.allocations[0].principal_fen) == (200, 59_800)
    after = s.bills[0]
    assert after.principal_outstanding_fen == 40_200
    at = DUE + timedelta(days=10)
    assert after.accrued_late_fee(at, POLICY) == Decimal("320.6")
    assert after.late_fee_outstanding_fen(at, POLICY) == 121
    # Without the partial payment the fee would have been 100000 × 0.0005 × 10 = 500 fen.
    assert b.late_fee_outstanding_fen(at, POLICY) == 500


def test_fee_stops_accruing_once_the_principal_is_paid() -> None:
    # Principal-first: at due + 2 days the 10000 principal is paid; fee = 10000 × 0.0005 × 2 = 10 fen stays.
    s = settle_payment(
        payment_id="P1",
        account_no=ACCOUNT,
        amount_fen=10_000,
        paid_at=DUE + timedelta(days=2),
        bills=[bill(principal=10_000)],
        prepaid_fen=0,
        policy=POLICY,
        late_fee_first=False,
    )
    after = s.bills[0]
    assert after.principal_outstanding_fen == 0
    assert after.late_fee_outstanding_fen(DUE + timedelta(days=2), POLICY) == 10
    assert after.late_fee_outstanding_fen(DUE + timedelta(days=400), POLICY) == 10


# ---------------------------------------------------------------------------------- grace and cap
def test_grace_period_is_free_and_the_fee_counts_from_its_end() -> None:
    policy = LateFeePolicy(daily_rate=RATE, grace_period=timedelta(days=3))
    b = bill()
    assert b.late_fee_outstanding_fen(DUE + timedelta(days=3), policy) == 0
    # 1 day after the grace: 207600 × 0.0005 × 1 = 103.8 → 104
    assert b.late_fee_outstanding_fen(DUE + timedelta(days=4), policy) == 104


def test_fee_is_capped_at_the_principal() -> None:
    # 0.1 %/day for 2000 days would be 200 % of the principal; capped at 10000 fen.
    policy = LateFeePolicy(daily_rate=Decimal("0.001"))
    b = bill(principal=10_000)
    assert b.late_fee_outstanding_fen(DUE + timedelta(days=2000), policy) == 10_000
    # Before the cap: 10000 × 0.001 × 500 = 5000
    assert b.late_fee_outstanding_fen(DUE + timedelta(days=500), policy) == 5_000


def test_fee_is_capped_at_a_configured_lower_cap() -> None:
    ratio = LateFeePolicy(daily_rate=Decimal("0.001"), cap_ratio=Decimal("0.3"))
    absolute = LateFeePolicy(daily_rate=Decimal("0.001"), cap_fen=1_234)
    b = bill(principal=10_000)
    assert b.late_fee_outstanding_fen(DUE + timedelta(days=2000), ratio) == 3_000
    assert b.late_fee_outstanding_fen(DUE + timedelta(days=2000), absolute) == 1_234


@pytest.mark.parametrize(
    "kwargs",
    [
        {"daily_rate": 0.0005},
        {"daily_rate": Decimal("-0.0001")},
        {"daily_rate": RATE, "cap_ratio": Decimal("1.5")},
        {"daily_rate": RATE, "cap_fen": -1},
        {"daily_rate": RATE, "grace_period": timedelta(days=-1)},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises((TypeError, ValueError)):
        LateFeePolicy(**kwargs)


# ------------------------------------------------------------------------------------------ waivers
def _waive(b: BillReceivable, **overrides):
    kwargs = {
        "waiver_id": "W1",
        "at": DUE + timedelta(days=10, hours=6),
        "requested_by": "clerk-7",
        "approved_by": "sup-2",
        "approver_roles": {"billing_supervisor"},
        "reason": "供热管网故障期间停暖，减免滞纳金",
        "policy": POLICY,
    }
    kwargs.update(overrides)
    return waive_late_fee(b, **kwargs)


def test_supervisor_waives_the_whole_fee_and_an_audit_record_is_returned() -> None:
    after, record = _waive(bill())
    at = DUE + timedelta(days=10, hours=6)
    assert after.late_fee_outstanding_fen(at, POLICY) == 0
    assert record.amount_fen == 1064
    assert record.late_fee_outstanding_before_fen == 1064
    assert record.late_fee_outstanding_after_fen == 0
    assert (record.requested_by, record.approved_by) == ("clerk-7", "sup-2")
    assert record.approver_roles == frozenset({"billing_supervisor"})
    assert record.bill_no == "B202611-0001" and record.account_no == ACCOUNT
    assert after.postings[-1].kind is PostingKind.WAIVER
    # The principal is still unpaid: one more day accrues 103.8 fen → round(1167.75) − 1064 = 1168 − 1064
    assert after.late_fee_outstanding_fen(at + timedelta(days=1), POLICY) == 104


def test_partial_waiver_by_admin() -> None:
    after, record = _waive(bill(), amount_fen=500, approver_roles={"admin"})
    assert record.amount_fen == 500
    assert after.late_fee_outstanding_fen(DUE + timedelta(days=10, hours=6), POLICY) == 564


def test_billing_clerk_cannot_approve_a_waiver() -> None:
    with pytest.raises(WaiverNotAuthorized):
        _waive(bill(), approver_roles={"billing_clerk", "agent"})


def test_approver_cannot_approve_their_own_request() -> None:
    with pytest.raises(WaiverNotAuthorized):
        _waive(bill(), requested_by="sup-2", approved_by="sup-2")


def test_waiver_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        _waive(bill(), reason="  ")


def test_waiver_cannot_exceed_the_fee_outstanding() -> None:
    with pytest.raises(WaiverExceedsFee):
        _waive(bill(), amount_fen=1065)
    with pytest.raises(WaiverExceedsFee):
        _waive(bill(), at=DUE)  # nothing accrued yet


def test_waiver_dated_before_an_existing_posting_is_refused() -> None:
    s = settle_payment(
        payment_id="P1",
        account_no=ACCOUNT,
        amount_fen=1000,
        paid_at=DUE + timedelta(days=20),
        bills=[bill()],
        prepaid_fen=0,
        policy=POLICY,
    )
    with pytest.raises(OutOfOrderPosting):
        _waive(s.bills[0])


# --------------------------------------------------------------------------------------- properties
seconds = st.integers(min_value=-5 * 86_400, max_value=3_000 * 86_400)
principals = st.integers(min_value=1, max_value=10_000_000)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.003"), places=4)


@given(principal=principals, rate=rates, a=seconds, b=seconds, grace_days=st.integers(0, 10))
def test_fee_is_monotonic_in_time_and_never_above_the_cap(
    principal: int, rate: Decimal, a: int, b: int, grace_days: int
) -> None:
    policy = LateFeePolicy(daily_rate=rate, grace_period=timedelta(days=grace_days))
    bl = bill(principal=principal)
    t1, t2 = sorted((DUE + timedelta(seconds=a), DUE + timedelta(seconds=b)))
    f1, f2 = bl.accrued_late_fee(t1, policy), bl.accrued_late_fee(t2, policy)
    assert 0 <= f1 <= f2 <= principal
    assert bl.late_fee_outstanding_fen(t1, policy) <= bl.late_fee_outstanding_fen(t2, policy) <= principal


@given(
    principal=principals,
    rate=rates,
    offsets=st.lists(st.integers(-30 * 86_400, 400 * 86_400), min_size=3, max_size=3),
    payments=st.lists(
        st.tuples(st.integers(0, 400 * 86_400), st.integers(1, 1_000_000)), min_size=0, max_size=4
    ),
)
def test_accrual_is_additive_over_adjacent_intervals(
    principal: int, rate: Decimal, offsets: list[int], payments: list[tuple[int, int]]
) -> None:
    # A bill with a principal history (partial payments at random seconds).
    bl = bill(principal=principal)
    for i, (at, fen) in enumerate(sorted(payments)):
        fen = min(fen, bl.principal_outstanding_fen)
        if fen:
            s = settle_payment(
                payment_id=f"P{i}",
                account_no=ACCOUNT,
                amount_fen=fen,
                paid_at=DUE + timedelta(seconds=at),
                bills=[bl],
                prepaid_fen=0,
                policy=POLICY,
                late_fee_first=False,
            )
            bl = s.bills[0]
    policy = LateFeePolicy(daily_rate=rate)
    t0, t1, t2 = (DUE + timedelta(seconds=o) for o in sorted(offsets))
    # Exact in fen·seconds …
    assert bl.overdue_exposure(t0, t2) == bl.overdue_exposure(t0, t1) + bl.overdue_exposure(t1, t2)
    # … and in unrounded Decimal fen up to the 28-digit context (one division by 86400 per interval).
    whole = bl.late_fee_accrual(t0, t2, policy)
    parts = bl.late_fee_accrual(t0, t1, policy) + bl.late_fee_accrual(t1, t2, policy)
    assert abs(whole - parts) <= Decimal("1e-15")
    # The exposure is bounded by the original principal over the interval and never negative.
    assert 0 <= bl.overdue_exposure(t0, t2) <= principal * int((t2 - t0).total_seconds())


@given(principal=principals, before=st.integers(0, 60 * 86_400))
def test_no_fee_for_a_payment_before_or_at_the_due_time(principal: int, before: int) -> None:
    assert bill(principal=principal).late_fee_outstanding_fen(DUE - timedelta(seconds=before), POLICY) == 0
