"""The simulator's statement files (written by another hand from the same format definitions) parse back to
the entries they were written from, and a day the provider and this service agree on reconciles clean."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payment.adapters.providers.simulator import StatementEntry, statement_csv
from payment.domain.reconciliation import PaymentFact, RefundFact, SettlementFact, day_bounds, reconcile
from payment.domain.statements import StatementKind, parse_statement

DAY = date(2026, 11, 23)
START, END = day_bounds(DAY)


def entries(provider: str) -> list[StatementEntry]:
    fee = 0 if provider.startswith("bank:") else 1
    out = [
        StatementEntry(f"T{i:03d}", f"P{i:03d}", 1_000 * i + 1, START + timedelta(hours=i), fee_fen=fee * i)
        for i in range(1, 6)
    ]
    out.append(StatementEntry("T999", "P999", 5, END - timedelta(seconds=1), fee_fen=0))  # 23:59:59
    if not provider.startswith("bank:"):
        out.append(
            StatementEntry(
                "T001",
                "P001",
                400,
                START + timedelta(hours=7),
                kind="refund",
                fee_fen=0,
                refund_no="R001",
                order_amount_fen=1_001,
            )
        )
    return out


@pytest.mark.parametrize("provider", ["wechat", "alipay", "bank:icbc"])
def test_the_simulators_statement_parses_back_to_its_entries(provider):
    written = entries(provider)
    parsed = parse_statement(provider, statement_csv(provider, DAY, written))
    assert parsed.ok, parsed.errors
    got = {(x.provider_txn_id, x.order_no, x.kind.value, x.amount_fen, x.occurred_at) for x in parsed.lines}
    assert got == {(e.provider_txn_id, e.order_no, e.kind, e.amount_fen, e.occurred_at) for e in written}
    assert all(x.provider == provider for x in parsed.lines)
    if provider == "bank:icbc":
        assert all(x.fee_fen is None for x in parsed.lines)
    else:
        assert sorted(x.fee_fen for x in parsed.lines) == sorted(e.fee_fen for e in written)
    refund_nos = {x.refund_no for x in parsed.lines if x.kind is StatementKind.REFUND}
    assert refund_nos == (
        {"R001"} if provider == "alipay" else set() if provider.startswith("bank") else {None}
    )


@pytest.mark.parametrize("provider", ["wechat", "alipay", "bank:icbc"])
def test_a_day_both_sides_agree_on_reconciles_without_a_case(provider):
    written = entries(provider)
    lines = parse_statement(provider, statement_csv(provider, DAY, written)).require()
    payments = [
        PaymentFact(e.order_no, e.provider_txn_id, e.amount_fen, "succeeded", provider, e.occurred_at)
        for e in written
        if e.kind == "payment"
    ]
    refunds = [
        RefundFact(e.refund_no or "R001", e.order_no, e.amount_fen, e.occurred_at)
        for e in written
        if e.kind == "refund"
    ]
    result = reconcile(
        provider=provider,
        day=DAY,
        statement=lines,
        payments=payments,
        settlements=[SettlementFact(p.order_no, p.amount_fen) for p in payments],
        refunds=refunds,
    )
    assert result.cases == ()
    assert result.totals.statement.payments_fen == result.totals.recorded.payments_fen


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["wechat", "alipay", "bank:b1"]),
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=10**10),
            st.integers(min_value=0, max_value=86_399),
            st.integers(min_value=0, max_value=10**6),
        ),
        max_size=20,
    ),
)
def test_any_simulated_statement_parses_with_exact_totals(provider, rows):
    fee_on = not provider.startswith("bank:")
    written = [
        StatementEntry(f"T{i}", f"P{i}", amount, START + timedelta(seconds=s), fee_fen=fee if fee_on else 0)
        for i, (amount, s, fee) in enumerate(rows)
    ]
    parsed = parse_statement(provider, statement_csv(provider, DAY, written))
    assert parsed.ok, parsed.errors
    assert sum(x.amount_fen for x in parsed.lines) == sum(e.amount_fen for e in written)
    assert all(x.occurred_at.tzinfo is UTC or x.occurred_at.utcoffset() == timedelta(0) for x in parsed.lines)
    assert all(START <= x.occurred_at < END for x in parsed.lines)
