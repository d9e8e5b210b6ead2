"""Settlement (核销), prepaid balance (预存), issue-time draw and reversal. Figures worked in comments."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.receivables import (
    BillReceivable,
    DuplicatePosting,
    LateFeePolicy,
    OutOfOrderPosting,
    ReceivablesError,
    UnknownReversal,
    account_balance,
    draw_prepaid_on_issue,
    due_instant,
    reverse_settlement,
    round_fen,
    settle_payment,
)

POLICY = LateFeePolicy(daily_rate=Decimal("0.0005"))
ACCOUNT = "1000000017"
OCT_DUE = due_instant(date(2026, 10, 31))  # 2026-10-31T16:00Z
NOV_DUE = due_instant(date(2026, 11, 30))  # 2026-11-30T16:00Z


def bill(no: str, principal: int, due: datetime) -> BillReceivable:
    return BillReceivable(bill_no=no, account_no=ACCOUNT, principal_fen=principal, due_at=due)


def settle(amount: int, at: datetime, bills, prepaid: int = 0, **kw):
    return settle_payment(
        payment_id=kw.pop("payment_id", "P1"),
        account_no=ACCOUNT,
        amount_fen=amount,
        paid_at=at,
        bills=bills,
        prepaid_fen=prepaid,
        policy=kw.pop("policy", POLICY),
        **kw,
    )


# ------------------------------------------------------------------------------------ worked examples
def test_oldest_first_late_fee_before_principal_excess_to_prepaid() -> None:
    # Paid at 2026-12-10T16:00Z:
    #   October bill 50000 fen, 40 days late: fee 50000 × 0.0005 × 40 = 1000 fen
    #   November bill 207600 fen, 10 days late: fee 207600 × 0.0005 × 10 = 1038 fen
    # Payment 300000 fen: Oct 1000 + 50000, Nov 1038 + 207600 → 259638 allocated, 40362 to prepaid.
    paid_at = NOV_DUE + timedelta(days=10)
    s = settle(300_000, paid_at, [bill("B-NOV", 207_600, NOV_DUE), bill("B-OCT", 50_000, OCT_DUE)])
    assert [(a.bill_no, a.late_fee_fen, a.principal_fen) for a in s.allocations] == [
        ("B-OCT", 1000, 50_000),
        ("B-NOV", 1038, 207_600),
    ]
    assert s.settled_bill_nos == ("B-OCT", "B-NOV")
    assert s.prepaid_before_fen == 0 and s.prepaid_after_fen == 40_362 and s.prepaid_added_fen == 40_362
    assert all(b.is_settled(paid_at, POLICY) for b in s.bills)


def test_short_payment_covers_the_oldest_bill_fee_first_and_stops() -> None:
    # Same bills and time; 30000 fen: Oct fee 1000 then Oct principal 29000; Nov untouched.
    paid_at = NOV_DUE + timedelta(days=10)
    s = settle(30_000, paid_at, [bill("B-OCT", 50_000, OCT_DUE), bill("B-NOV", 207_600, NOV_DUE)])
    assert [(a.bill_no, a.late_fee_fen, a.principal_fen) for a in s.allocations] == [("B-OCT", 1000, 29_000)]
    assert s.settled_bill_nos == () and s.prepaid_after_fen == 0
    assert s.bills[0].principal_outstanding_fen == 21_000
    assert s.bills[1].postings == ()


def test_principal_first_when_configured() -> None:
    # 30000 fen principal-first: Oct principal 30000 (of 50000), fee 1000 left unpaid.
    paid_at = NOV_DUE + timedelta(days=10)
    s = settle(30_000, paid_at, [bill("B-OCT", 50_000, OCT_DUE)], late_fee_first=False)
    assert (s.allocations[0].late_fee_fen, s.allocations[0].principal_fen) == (0, 30_000)
    # 51000 fen principal-first settles both: principal 50000 then fee 1000.
    s = settle(51_000, paid_at, [bill("B-OCT", 50_000, OCT_DUE)], late_fee_first=False)
    assert (s.allocations[0].late_fee_fen, s.allocations[0].principal_fen) == (1000, 50_000)
    assert s.settled_bill_nos == ("B-OCT",)


def test_same_due_time_is_ordered_by_bill_number() -> None:
    s = settle(1_500, OCT_DUE, [bill("B-2", 1_000, OCT_DUE), bill("B-1", 1_000, OCT_DUE)])
    assert [(a.bill_no, a.principal_fen) for a in s.allocations] == [("B-1", 1000), ("B-2", 500)]


def test_bills_paid_before_their_own_due_time_owe_no_fee() -> None:
    # Paid 2026-11-15: the October bill is 15 days late (50000 × 0.0005 × 15 = 375 fen), the November
    # bill is not due yet and owes no fee.
    paid_at = OCT_DUE + timedelta(days=15)
    s = settle(300_000, paid_at, [bill("B-OCT", 50_000, OCT_DUE), bill("B-NOV", 207_600, NOV_DUE)])
    assert [(a.bill_no, a.late_fee_fen) for a in s.allocations] == [("B-OCT", 375), ("B-NOV", 0)]
    assert s.prepaid_after_fen == 300_000 - 375 - 50_000 - 207_600


def test_settled_bills_are_skipped_and_prepaid_accumulates() -> None:
    first = settle(10_000, OCT_DUE, [bill("B-OCT", 10_000, OCT_DUE)])
    second = settle(
        5_000, OCT_DUE + timedelta(days=3), first.bills, prepaid=first.prepaid_after_fen, payment_id="P2"
    )
    assert second.allocations == () and second.prepaid_after_fen == 5_000


def test_settlement_is_deterministic_whatever_the_input_order() -> None:
    bills = [bill(f"B-{i}", 10_000 + i, OCT_DUE + timedelta(days=i % 3)) for i in range(8)]
    paid_at = OCT_DUE + timedelta(days=20)
    expected = settle(55_555, paid_at, bills)
    shuffled = bills[:]
    random.Random(4).shuffle(shuffled)
    assert settle(55_555, paid_at, shuffled) == expected


# ---------------------------------------------------------------------------------------- refusals
def test_amounts_must_be_positive_integer_fen() -> None:
    for amount in (0, -1, 100.0, Decimal(100), True):
        with pytest.raises((TypeError, ValueError)):
            settle(amount, OCT_DUE, [bill("B", 100, OCT_DUE)])


def test_bill_of_another_account_is_refused() -> None:
    other = BillReceivable(bill_no="X", account_no="999", principal_fen=1, due_at=OCT_DUE)
    with pytest.raises(ReceivablesError):
        settle(100, OCT_DUE, [other])


def test_same_payment_twice_on_a_bill_is_refused() -> None:
    s = settle(100, OCT_DUE, [bill("B", 1_000, OCT_DUE)])
    with pytest.raises(DuplicatePosting):
        settle(100, OCT_DUE, s.bills)


def test_payment_dated_before_the_last_posting_is_refused() -> None:
    s = settle(100, OCT_DUE + timedelta(days=5), [bill("B", 1_000, OCT_DUE)])
    with pytest.raises(OutOfOrderPosting):
        settle(100, OCT_DUE + timedelta(days=4), s.bills, payment_id="P2")


# ------------------------------------------------------------------------------------- prepaid draw
def test_issue_time_draw_partial_and_full() -> None:
    issued = NOV_DUE - timedelta(days=20)
    new = bill("B-NOV", 207_600, NOV_DUE)
    partial = draw_prepaid_on_issue(bill=new, prepaid_fen=50_000, issued_at=issued, policy=POLICY)
    assert partial.drawn_fen == 50_000 and partial.prepaid_after_fen == 0
    assert partial.bill.principal_outstanding_fen == 157_600
    full = draw_prepaid_on_issue(bill=new, prepaid_fen=300_000, issued_at=issued, policy=POLICY)
    assert full.allocation is not None and full.allocation.principal_fen == 207_600
    assert full.prepaid_after_fen == 92_400 and full.bill.is_settled(NOV_DUE + timedelta(days=99), POLICY)
    none = draw_prepaid_on_issue(bill=new, prepaid_fen=0, issued_at=issued, policy=POLICY)
    assert none.allocation is None and none.bill == new


# ----------------------------------------------------------------------------------------- reversal
def test_reversal_reopens_bills_and_takes_back_the_prepaid_excess() -> None:
    paid_at = NOV_DUE + timedelta(days=10)
    bills = [bill("B-OCT", 50_000, OCT_DUE), bill("B-NOV", 207_600, NOV_DUE)]
    s = settle(300_000, paid_at, bills, prepaid=1_000)
    r = reverse_settlement(
        s,
        bills=s.bills,
        prepaid_fen=s.prepaid_after_fen,
        reversed_at=paid_at + timedelta(days=1),
        policy=POLICY,
    )
    assert r.bills == tuple(bills)
    assert r.reopened_bill_nos == ("B-OCT", "B-NOV")
    assert r.prepaid_after_fen == 1_000 and r.debit_fen == 0
    # The fee accrues again from the bill's own due time: Oct bill at +41 days: 50000 × 0.0005 × 41 = 1025.
    assert r.bills[0].late_fee_outstanding_fen(paid_at + timedelta(days=1), POLICY) == 1025


def test_reversal_after_the_prepaid_excess_was_drawn_creates_a_debit() -> None:
    # 300000 paid on a 50000 bill → 250000 prepaid; a 207600 bill drew it → 42400 left.
    # Reversing must take back 250000: prepaid goes to 0 and the 207600 already drawn becomes a debit.
    s = settle(300_000, OCT_DUE - timedelta(days=2), [bill("B-OCT", 50_000, OCT_DUE)])
    assert s.prepaid_after_fen == 250_000
    draw = draw_prepaid_on_issue(
        bill=bill("B-NOV", 207_600, NOV_DUE),
        prepaid_fen=s.prepaid_after_fen,
        issued_at=OCT_DUE,
        policy=POLICY,
    )
    assert draw.prepaid_after_fen == 42_400
    r = reverse_settlement(
        s, bills=s.bills, prepaid_fen=draw.prepaid_after_fen, reversed_at=OCT_DUE, policy=POLICY
    )
    assert r.prepaid_after_fen == 0 and r.debit_fen == 207_600
    assert r.reopened_bill_nos == ("B-OCT",)


def test_reversing_an_earlier_payment_keeps_a_later_one() -> None:
    # Bill 100000 fen due NOV_DUE.
    # A at +4 days, 60000: fee 100000 × 0.0005 × 4 = 200, principal 59800 → 40200 left.
    # B at +10 days, 50000: fee round(200 + 40200 × 0.0005 × 6) − 200 = round(320.6) − 200 = 121,
    #   principal 40200, excess 50000 − 121 − 40200 = 9679 to prepaid. The bill is settled.
    # Reverse A at +10 days: without A the principal was 100000 for all 10 days → accrued 500 fen;
    #   B's 121 fee and 40200 principal stay → owes principal 59800 + fee 500 − 121 = 379.
    a = settle(60_000, NOV_DUE + timedelta(days=4), [bill("B", 100_000, NOV_DUE)], payment_id="A")
    b = settle(50_000, NOV_DUE + timedelta(days=10), a.bills, prepaid=a.prepaid_after_fen, payment_id="B")
    assert (b.allocations[0].late_fee_fen, b.allocations[0].principal_fen) == (121, 40_200)
    assert b.prepaid_after_fen == 9_679 and b.settled_bill_nos == ("B",)
    at = NOV_DUE + timedelta(days=10)
    r = reverse_settlement(a, bills=b.bills, prepaid_fen=b.prepaid_after_fen, reversed_at=at, policy=POLICY)
    restored = r.bills[0]
    assert [p.ref for p in restored.postings] == ["B"]
    assert restored.principal_outstanding_fen == 59_800
    assert restored.late_fee_outstanding_fen(at, POLICY) == 379
    assert r.reopened_bill_nos == ("B",) and r.prepaid_after_fen == 9_679 and r.debit_fen == 0


def test_reversing_twice_or_with_the_wrong_bills_is_refused() -> None:
    s = settle(1_000, OCT_DUE, [bill("B", 1_000, OCT_DUE)])
    r = reverse_settlement(s, bills=s.bills, prepaid_fen=0, reversed_at=OCT_DUE, policy=POLICY)
    with pytest.raises(UnknownReversal):
        reverse_settlement(s, bills=r.bills, prepaid_fen=0, reversed_at=OCT_DUE, policy=POLICY)
    with pytest.raises(UnknownReversal):
        reverse_settlement(s, bills=[], prepaid_fen=0, reversed_at=OCT_DUE, policy=POLICY)


def test_account_balance_includes_fee_accrued_up_to_now() -> None:
    # Oct bill 50000 at +40 days (fee 1000), Nov bill 207600 at +10 days (fee 1038).
    now = NOV_DUE + timedelta(days=10)
    bal = account_balance(
        [bill("B-OCT", 50_000, OCT_DUE), bill("B-NOV", 207_600, NOV_DUE)],
        prepaid_fen=7,
        at=now,
        policy=POLICY,
    )
    assert (bal.principal_due_fen, bal.late_fee_due_fen, bal.total_due_fen, bal.prepaid_fen) == (
        257_600,
        2_038,
        259_638,
        7,
    )


# --------------------------------------------------------------------------------------- properties
bill_specs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=2_000_000),  # principal fen
        st.integers(min_value=-200, max_value=200),  # due offset, days from NOV_DUE
        st.integers(min_value=0, max_value=86_399),  # and seconds
    ),
    min_size=0,
    max_size=6,
)


def make_bills(specs) -> list[BillReceivable]:
    return [
        bill(f"B-{i:02d}", principal, NOV_DUE + timedelta(days=days, seconds=secs))
        for i, (principal, days, secs) in enumerate(specs)
    ]


payment_args = {
    "specs": bill_specs,
    "amount": st.integers(min_value=1, max_value=5_000_000),
    "paid_offset": st.integers(min_value=-100 * 86_400, max_value=400 * 86_400),
    "prepaid": st.integers(min_value=0, max_value=1_000_000),
    "late_fee_first": st.booleans(),
    "rate": st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.003"), places=4),
}


@settings(max_examples=200)
@given(**payment_args)
def test_settlement_invariants(specs, amount, paid_offset, prepaid, late_fee_first, rate) -> None:
    policy = LateFeePolicy(daily_rate=rate)
    bills = make_bills(specs)
    paid_at = NOV_DUE + timedelta(seconds=paid_offset)
    s = settle(amount, paid_at, bills, prepaid=prepaid, late_fee_first=late_fee_first, policy=policy)
    before = {b.bill_no: b for b in bills}
    after = {b.bill_no: b for b in s.bills}
    # Allocations never exceed the payment; allocations + prepaid increase == payment.
    assert all(a.late_fee_fen >= 0 and a.principal_fen >= 0 and a.total_fen > 0 for a in s.allocations)
    assert s.allocated_fen <= amount
    assert s.allocated_fen + s.prepaid_added_fen == amount
    assert s.prepaid_after_fen >= prepaid
    # No bill over-settled: each allocation is at most what the bill owed at the payment time.
    for a in s.allocations:
        b = before[a.bill_no]
        assert a.principal_fen <= b.principal_outstanding_fen
        assert a.late_fee_fen <= b.late_fee_outstanding_fen(paid_at, policy)
        assert after[a.bill_no].principal_outstanding_fen >= 0
        assert after[a.bill_no].late_fee_credited_fen <= round_fen(
            after[a.bill_no].accrued_late_fee(paid_at, policy)
        )
    # Money only goes to prepaid when every bill is settled.
    if s.prepaid_added_fen:
        assert all(b.is_settled(paid_at, policy) for b in s.bills)
    # Oldest first: a bill only gets money if every older bill is settled afterwards.
    ordered = sorted(s.bills, key=lambda b: (b.due_at, b.bill_no))
    paid_nos = {a.bill_no for a in s.allocations}
    for i, b in enumerate(ordered):
        if b.bill_no in paid_nos:
            assert all(o.is_settled(paid_at, policy) for o in ordered[:i])
    # Settled list is exactly the bills this payment closed.
    assert set(s.settled_bill_nos) == {
        n
        for n in paid_nos
        if after[n].is_settled(paid_at, policy) and not before[n].is_settled(paid_at, policy)
    }


@settings(max_examples=200)
@given(**payment_args, later=st.integers(min_value=0, max_value=100 * 86_400))
def test_reversal_restores_the_previous_state(
    specs, amount, paid_offset, prepaid, late_fee_first, rate, later
) -> None:
    policy = LateFeePolicy(daily_rate=rate)
    bills = make_bills(specs)
    paid_at = NOV_DUE + timedelta(seconds=paid_offset)
    s = settle(amount, paid_at, bills, prepaid=prepaid, late_fee_first=late_fee_first, policy=policy)
    r = reverse_settlement(
        s,
        bills=s.bills,
        prepaid_fen=s.prepaid_after_fen,
        reversed_at=paid_at + timedelta(seconds=later),
        policy=policy,
    )
    assert r.bills == tuple(sorted(bills, key=lambda b: (b.due_at, b.bill_no)))
    assert r.prepaid_after_fen == prepaid and r.debit_fen == 0


@given(
    prepaid=st.integers(min_value=0, max_value=1_000_000),
    drawn=st.integers(min_value=0, max_value=1_000_000),
    amount=st.integers(min_value=1, max_value=1_000_000),
)
def test_reversal_never_leaves_a_negative_prepaid(prepaid: int, drawn: int, amount: int) -> None:
    s = settle(amount, OCT_DUE, [], prepaid=prepaid)
    remaining = max(0, s.prepaid_after_fen - drawn)
    r = reverse_settlement(s, bills=[], prepaid_fen=remaining, reversed_at=OCT_DUE, policy=POLICY)
    assert r.prepaid_after_fen >= 0
    # What is taken back from prepaid plus the debit is exactly the excess the payment had added.
    assert (remaining - r.prepaid_after_fen) + r.debit_fen == amount
