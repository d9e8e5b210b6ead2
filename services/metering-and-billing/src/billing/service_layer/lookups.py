"""Residents' bill lookups (the hot path of the collection peak): amount due now, bills, bill detail,
usage history, prepaid balance.

Everything a lookup shows comes from the account's **statement**, a JSON document built here from the
database and cached in Redis by ``adapters/cache.py`` (invalidation rules and the consistency promise
there). The late fee is not cached: it is computed at read time from the open receivables' principal
history and each bill's own late-fee rule, so "amount due now" is exact to the second.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import from_json
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.domain import receivables as rules
from billing.service_layer.receivables import policy_of

RECENT_BILLS = 24
USAGE_PERIODS = 12

_ACCOUNT_SQL = text(
    "SELECT a.account_no, a.utility, a.status, COALESCE(b.prepaid_fen, 0) AS prepaid_fen "
    "FROM billing_accounts a LEFT JOIN account_balances b ON b.account_no = a.account_no "
    "WHERE a.account_no = :no"
)
_OPEN_SQL = text(
    "SELECT r.bill_no, r.principal_fen, r.due_at, r.late_fee_policy, b.due_date, b.kind, "
    "COALESCE((SELECT json_agg(json_build_array(p.at, p.principal_fen, p.late_fee_fen, p.kind, p.ref) "
    "ORDER BY p.at, p.created_at) FROM postings p WHERE p.bill_no = r.bill_no), '[]') AS postings "
    "FROM receivables r JOIN bills b ON b.bill_no = r.bill_no "
    "WHERE r.account_no = :no AND r.status = 'open' ORDER BY r.due_at, r.bill_no"
)
_BILLS_SQL = text(
    "SELECT b.bill_no, b.kind, b.cycle, b.original_bill_no, b.period_start, b.period_end, b.issue_date, "
    "b.due_date, b.total_fen, b.volume, b.estimated, r.status, r.settled_at "
    "FROM bills b LEFT JOIN receivables r ON r.bill_no = b.bill_no "
    "WHERE b.account_no = :no ORDER BY b.issue_date DESC, b.bill_no DESC LIMIT :limit"
)


def _day(value) -> str | None:
    return value.isoformat() if value is not None else None


def bill_header(row) -> dict[str, Any]:
    status = "credit" if row.kind == "credit_note" else ("paid" if row.status == "settled" else "unpaid")
    return {
        "bill_no": row.bill_no,
        "kind": row.kind,
        "cycle": row.cycle,
        "original_bill_no": row.original_bill_no,
        "period_start": _day(row.period_start),
        "period_end": _day(row.period_end),
        "issue_date": row.issue_date.isoformat(),
        "due_date": row.due_date.isoformat(),
        "total_fen": row.total_fen,
        "volume": str(row.volume) if row.volume is not None else None,
        "estimated": row.estimated,
        "status": status,
        "settled_at": row.settled_at.isoformat() if row.settled_at is not None else None,
    }


async def load_statement(session: AsyncSession, account_no: str) -> dict[str, Any] | None:
    """The account's statement, or None for an account billing does not know."""
    account = (await session.execute(_ACCOUNT_SQL, {"no": account_no})).first()
    if account is None:
        return None
    open_rows = (await session.execute(_OPEN_SQL, {"no": account_no})).all()
    bills = (await session.execute(_BILLS_SQL, {"no": account_no, "limit": RECENT_BILLS})).all()
    return {
        "known": True,
        "account_no": account.account_no,
        "utility": account.utility,
        "status": account.status,
        "prepaid_fen": account.prepaid_fen,
        "open": [
            {
                "bill_no": r.bill_no,
                "kind": r.kind,
                "principal_fen": r.principal_fen,
                "due_at": r.due_at.isoformat(),
                "due_date": r.due_date.isoformat(),
                "policy": r.late_fee_policy,
                "postings": r.postings if isinstance(r.postings, list) else from_json(r.postings),
            }
            for r in open_rows
        ],
        "bills": [bill_header(b) for b in bills],
        "usage": [
            {
                "cycle": b.cycle,
                "period_start": _day(b.period_start),
                "period_end": _day(b.period_end),
                "volume": str(b.volume) if b.volume is not None else None,
                "total_fen": b.total_fen,
            }
            for b in bills
            if b.kind == "bill"
        ][:USAGE_PERIODS],
    }


def statement_loader(session_factory: async_sessionmaker[AsyncSession]):
    async def load(account_no: str) -> dict[str, Any] | None:
        async with session_factory() as session:
            return await load_statement(session, account_no)

    return load


def _receivable(account_no: str, item: dict[str, Any]) -> rules.BillReceivable:
    return rules.BillReceivable(
        bill_no=item["bill_no"],
        account_no=account_no,
        principal_fen=item["principal_fen"],
        due_at=datetime.fromisoformat(item["due_at"]),
        postings=tuple(
            rules.Posting(
                ref=ref,
                kind=rules.PostingKind(kind),
                at=datetime.fromisoformat(at),
                principal_fen=principal,
                late_fee_fen=fee,
            )
            for at, principal, fee, kind, ref in item["postings"]
        ),
    )


def amount_due(statement: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What the account owes at ``now``: per open bill, principal outstanding and late fee accrued to the
    second (rounded as a settlement at ``now`` would), and the totals; the prepaid balance beside them."""
    now = rules.to_second(now)
    items = []
    principal_total = fee_total = 0
    for item in statement["open"]:
        bill = _receivable(statement["account_no"], item)
        policy = policy_of(item["policy"])
        fee = bill.late_fee_outstanding_fen(now, policy)
        principal = bill.principal_outstanding_fen
        principal_total += principal
        fee_total += fee
        items.append(
            {
                "bill_no": item["bill_no"],
                "kind": item["kind"],
                "due_date": item["due_date"],
                "overdue": now > bill.due_at,
                "principal_due_fen": principal,
                "late_fee_fen": fee,
                "amount_due_fen": principal + fee,
            }
        )
    return {
        "account_no": statement["account_no"],
        "as_of": now,
        "principal_due_fen": principal_total,
        "late_fee_fen": fee_total,
        "amount_due_fen": principal_total + fee_total,
        "prepaid_fen": statement["prepaid_fen"],
        "open_bills": items,
    }


async def bill_detail(session: AsyncSession, account_no: str, bill_no: str) -> dict[str, Any] | None:
    """One bill or note of the account, with its lines and its receivable's state (None: not its bill)."""
    row = (
        await session.execute(
            text(
                "SELECT b.*, r.status, r.settled_at, r.principal_paid_fen, "
                "r.late_fee_credited_fen FROM bills b LEFT JOIN receivables r ON r.bill_no = b.bill_no "
                "WHERE b.bill_no = :bill_no AND b.account_no = :no"
            ),
            {"bill_no": bill_no, "no": account_no},
        )
    ).first()
    if row is None:
        return None
    postings = (
        await session.execute(
            text(
                "SELECT ref, kind, at, principal_fen, late_fee_fen FROM postings WHERE bill_no = :bill_no "
                "ORDER BY at, created_at"
            ),
            {"bill_no": bill_no},
        )
    ).all()
    header = bill_header(row)
    return {
        **header,
        "account_no": row.account_no,
        "utility": row.utility,
        "tariff_plan_code": row.tariff_plan_code,
        "reason": row.reason,
        "lines": row.lines,
        "late_fee_policy": row.late_fee_policy,
        "principal_paid_fen": row.principal_paid_fen or 0,
        "late_fee_credited_fen": row.late_fee_credited_fen or 0,
        "postings": [
            {
                "ref": p.ref,
                "kind": p.kind,
                "at": p.at.isoformat(),
                "principal_fen": p.principal_fen,
                "late_fee_fen": p.late_fee_fen,
            }
            for p in postings
        ],
    }
