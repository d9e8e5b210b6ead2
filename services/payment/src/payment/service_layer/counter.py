"""The service counter's receipts and shift report (交班报表).

Every counter payment the cashier confirms (``orders.pay_at_counter``) is recorded as a receipt in the
same transaction (``record_receipt``): the order, the amount, the method (``cash`` or ``pos`` with the
terminal's reference; null when the cashier did not say, as for payments taken before methods were
recorded), the cashier, the shift and the business day (Asia/Shanghai) of the moment it was taken.

Reports (counts and fen by method, per cashier and shift):

* ``shift_report(shift_id, cashier=None)``: one shift; a cashier (``billing_clerk``) sees their own
  receipts in it (``cashier`` = their audit identity), a supervisor every cashier's.
* ``day_report(day)``: every cashier and shift of a business day (a supervisor's hand-over check), with
  each shift's hand-over when there is one.

**Hand-over (交班)**: ``hand_over`` records, once per cashier and shift, what the cashier's receipts of the
shift say was taken (by method) against the cash the cashier counted in the drawer, and the difference
(counted minus the receipts' cash; negative: short), with ``payment.counter_shift.closed``. From then
on the shift takes no more receipts from that cashier (409 ``shift_handed_over``: open a new shift). A
receipt and a hand-over of the same cashier and shift are serialised (an advisory lock), so a receipt is
either in the handed-over totals or refused, never lost between them.

Amounts are what was taken at the counter; refunds of those payments are not netted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from payment.adapters.orm import PaymentOrder
from payment.adapters.orm_withholding import CounterHandover, CounterReceiptRow
from payment.events import CounterShiftClosed, catalog
from utilis_shared.db import UnitOfWork, advisory_lock
from utilis_shared.errors import Conflict, NotFound
from utilis_shared.timeutil import business_date_of

METHODS = ("cash", "pos", "unspecified")


class ShiftNotFound(NotFound):
    code = "shift_not_found"


class ShiftHandedOver(Conflict):
    code = "shift_handed_over"


async def _lock_shift(uow: UnitOfWork, shift_id: str, cashier: str) -> CounterHandover | None:
    """Serialise a cashier's receipts and hand-over of a shift; the hand-over if there is one."""
    await advisory_lock(uow.session, f"payment.counter:{shift_id}:{cashier}")
    return await uow.session.scalar(
        select(CounterHandover).where(
            CounterHandover.shift_id == shift_id, CounterHandover.cashier == cashier
        )
    )


async def record_receipt(
    uow: UnitOfWork,
    *,
    order: PaymentOrder,
    method: str | None,
    pos_reference: str | None,
    now: datetime,
) -> CounterReceiptRow:
    """The receipt of a counter order that just succeeded (``order.cashier`` names cashier and shift)."""
    cashier = order.cashier or {}
    handed = await _lock_shift(uow, cashier["shift_id"], cashier["cashier"])
    if handed is not None:
        raise ShiftHandedOver(
            f"Shift {cashier['shift_id']} was handed over at {handed.handed_over_at.isoformat()}; "
            "take the payment in a new shift.",
        )
    received_at = order.paid_at or now
    row = CounterReceiptRow(
        order_no=order.order_no,
        account_no=order.account_no,
        amount_fen=order.amount_fen,
        method=method,
        pos_reference=pos_reference if method == "pos" else None,
        cashier=cashier["cashier"],
        shift_id=cashier["shift_id"],
        received_at=received_at,
        business_day=business_date_of(received_at),
    )
    uow.session.add(row)
    await uow.session.flush()
    return row


@dataclass
class MethodTotals:
    count: int = 0
    amount_fen: int = 0


@dataclass
class Totals:
    """Counts and fen by method (``cash``, ``pos``, ``unspecified``) and overall."""

    by_method: dict[str, MethodTotals] = field(default_factory=lambda: {m: MethodTotals() for m in METHODS})
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def count(self) -> int:
        return sum(t.count for t in self.by_method.values())

    @property
    def amount_fen(self) -> int:
        return sum(t.amount_fen for t in self.by_method.values())

    def add(self, method: str | None, count: int, fen: int, first: datetime, last: datetime) -> None:
        t = self.by_method[method or "unspecified"]
        t.count += count
        t.amount_fen += int(fen)  # PostgreSQL's sum of a bigint is a numeric
        self.first_at = first if self.first_at is None else min(self.first_at, first)
        self.last_at = last if self.last_at is None else max(self.last_at, last)


@dataclass
class Group:
    cashier: str
    shift_id: str
    business_days: set[date] = field(default_factory=set)
    totals: Totals = field(default_factory=Totals)


@dataclass
class Report:
    groups: list[Group]  # one per (cashier, shift), ordered by shift then cashier
    totals: Totals


def summarise(rows: Iterable[tuple[str, str, date, str | None, int, int, datetime, datetime]]) -> Report:
    """Rows ``(cashier, shift_id, business_day, method, count, fen, first_at, last_at)`` -> the report."""
    groups: dict[tuple[str, str], Group] = {}
    overall = Totals()
    for cashier, shift_id, day, method, count, fen, first, last in rows:
        group = groups.setdefault((shift_id, cashier), Group(cashier, shift_id))
        group.business_days.add(day)
        group.totals.add(method, count, fen, first, last)
        overall.add(method, count, fen, first, last)
    return Report([groups[k] for k in sorted(groups)], overall)


def _grouped():
    r = CounterReceiptRow
    return select(
        r.cashier,
        r.shift_id,
        r.business_day,
        r.method,
        func.count(),
        func.sum(r.amount_fen),
        func.min(r.received_at),
        func.max(r.received_at),
    ).group_by(r.cashier, r.shift_id, r.business_day, r.method)


async def shift_report(session: AsyncSession, shift_id: str, *, cashier: str | None) -> Report:
    stmt = _grouped().where(CounterReceiptRow.shift_id == shift_id)
    if cashier is not None:
        stmt = stmt.where(CounterReceiptRow.cashier == cashier)
    report = summarise((await session.execute(stmt)).all())
    if not report.groups:
        raise ShiftNotFound(
            f"No counter receipts in shift {shift_id}" + (" taken by you." if cashier else ".")
        )
    return report


async def day_report(session: AsyncSession, day: date) -> Report:
    stmt = _grouped().where(CounterReceiptRow.business_day == day)
    return summarise((await session.execute(stmt)).all())


async def handovers(
    session: AsyncSession, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], CounterHandover]:
    """The hand-overs of these ``(shift_id, cashier)`` pairs, by pair."""
    pairs = list(keys)
    if not pairs:
        return {}
    rows = await session.scalars(
        select(CounterHandover).where(tuple_(CounterHandover.shift_id, CounterHandover.cashier).in_(pairs))
    )
    return {(h.shift_id, h.cashier): h for h in rows}


async def hand_over(
    uow: UnitOfWork, *, shift_id: str, cashier: str, counted_cash_fen: int, note: str, now: datetime
) -> CounterHandover:
    """The cashier hands over the shift (module docstring); 409 ``shift_handed_over`` the second time."""
    handed = await _lock_shift(uow, shift_id, cashier)
    if handed is not None:
        raise ShiftHandedOver(
            f"Shift {shift_id} was already handed over at {handed.handed_over_at.isoformat()}."
        )
    stmt = _grouped().where(CounterReceiptRow.shift_id == shift_id, CounterReceiptRow.cashier == cashier)
    totals = summarise((await uow.session.execute(stmt)).all()).totals
    cash = totals.by_method["cash"].amount_fen
    row = CounterHandover(
        shift_id=shift_id,
        cashier=cashier,
        handed_over_at=now,
        business_day=business_date_of(now),
        receipts_count=totals.count,
        cash_fen=cash,
        pos_fen=totals.by_method["pos"].amount_fen,
        unspecified_fen=totals.by_method["unspecified"].amount_fen,
        counted_cash_fen=counted_cash_fen,
        difference_fen=counted_cash_fen - cash,
        note=note,
    )
    uow.session.add(row)
    await uow.session.flush()
    uow.emit(
        catalog.build(
            CounterShiftClosed(
                handover_id=str(row.id),
                shift_id=shift_id,
                cashier=cashier,
                business_day=row.business_day,
                handed_over_at=now,
                receipts_count=row.receipts_count,
                cash_fen=row.cash_fen,
                pos_fen=row.pos_fen,
                unspecified_fen=row.unspecified_fen,
                counted_cash_fen=counted_cash_fen,
                difference_fen=row.difference_fen,
            ),
            subject=shift_id,
        )
    )
    return row
