"""Properties of reconciliation: a statement built from the payments themselves yields no case; dropping,
altering and adding lines yields exactly one case per change, whatever the order of the inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from payment.domain.reconciliation import (
    DEFAULT_CUTOVER,
    CaseKind,
    PaymentFact,
    SettlementFact,
    day_bounds,
    reconcile,
)
from payment.domain.statements import StatementKind, StatementLine

DAY = date(2026, 11, 23)
START, END = day_bounds(DAY)
SECONDS = int((END - START).total_seconds())


@st.composite
def days_payments(draw) -> list[PaymentFact]:
    n = draw(st.integers(min_value=0, max_value=25))
    amounts = draw(st.lists(st.integers(min_value=1, max_value=10**9), min_size=n, max_size=n))
    offsets = draw(st.lists(st.integers(min_value=0, max_value=SECONDS - 1), min_size=n, max_size=n))
    statuses = draw(st.lists(st.sampled_from(["succeeded", "refunded"]), min_size=n, max_size=n))
    return [
        PaymentFact(f"P{i:04d}", f"T{i:04d}", amount, status, "alipay", START + timedelta(seconds=offset))
        for i, (amount, offset, status) in enumerate(zip(amounts, offsets, statuses, strict=True))
    ]


def as_line(p: PaymentFact, line_no: int, amount: int | None = None) -> StatementLine:
    assert p.succeeded_at is not None and p.provider_txn_id is not None
    return StatementLine(
        "alipay", p.provider_txn_id, p.order_no, amount or p.amount_fen, StatementKind.PAYMENT,
        p.succeeded_at, None, line_no,
    )  # fmt: skip


def run(statement, payments, settlements):
    return reconcile(
        provider="alipay", day=DAY, statement=statement, payments=payments, settlements=settlements
    )


@settings(max_examples=60, deadline=None)
@given(days_payments(), st.randoms(use_true_random=False))
def test_a_statement_built_from_the_payments_yields_no_case(payments, rng):
    statement = [as_line(p, i + 2) for i, p in enumerate(payments)]
    rng.shuffle(statement)
    result = run(statement, payments, [SettlementFact(p.order_no, p.amount_fen) for p in payments])
    assert result.cases == ()
    assert result.pending_cutover == ()
    assert result.totals.statement == result.totals.recorded
    assert len(result.matches) == len(payments)


@settings(max_examples=60, deadline=None)
@given(days_payments(), st.data())
def test_each_change_to_the_statement_is_exactly_one_case(payments, data):
    fate = data.draw(
        st.lists(st.sampled_from(["keep", "drop", "alter"]), min_size=len(payments), max_size=len(payments))
    )
    extras = data.draw(st.integers(min_value=0, max_value=3))
    statement: list[StatementLine] = []
    expected: set[tuple[CaseKind, str]] = set()
    pending: set[str] = set()
    for i, (p, f) in enumerate(zip(payments, fate, strict=True)):
        assert p.succeeded_at is not None
        if f == "keep":
            statement.append(as_line(p, i + 2))
        elif f == "alter":
            statement.append(as_line(p, i + 2, amount=p.amount_fen + 1))
            expected.add((CaseKind.AMOUNT_DIFFERS, p.order_no))
        elif p.succeeded_at >= END - DEFAULT_CUTOVER:
            pending.add(p.order_no)
        else:
            expected.add((CaseKind.MISSING_AT_PROVIDER, p.order_no))
    for k in range(extras):
        at = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
        statement.append(
            StatementLine("alipay", f"X{k}", f"Q{k}", 100, StatementKind.PAYMENT, at, None, 900 + k)
        )
        expected.add((CaseKind.MISSING_HERE, f"Q{k}"))
    data.draw(st.randoms(use_true_random=False)).shuffle(statement)

    result = run(statement, payments, [SettlementFact(p.order_no, p.amount_fen) for p in payments])

    assert len(result.cases) == len(expected)
    assert {(c.kind, c.order_no) for c in result.cases} == expected
    assert {p.order_no for p in result.pending_cutover} == pending
    assert [c.order_no for c in result.cases] == sorted(c.order_no for c in result.cases)  # one sort order
