"""Credit and debit notes: the only way an issued bill is corrected (bills are immutable).

- A **credit note** on a bill reduces what it still owes (a ``credit`` posting on its receivable, so the
  late fee accrues on less from that second on). What exceeds the principal still owed (the bill was
  already paid) is carried to the account's prepaid balance explicitly, and the note says so.
- A **debit note** on a bill raises a new receivable of its own, with its own due date, that settles and
  accrues late fees like a bill. A reversal whose prepaid top-up was already drawn by later bills raises
  a debit note without an original bill (the shortfall is the account's).

Notes are numbered per account, ``CN<account_no>-<n>`` / ``DN<account_no>-<n>``, under the account's lock.
A note never takes a bill's total above or below what was billed: credits on a bill never exceed its
total plus its debit notes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from billing.adapters.orm import Bill, Receivable
from billing.domain import receivables as rules
from billing.events import BillCredited, BillIssued, catalog
from billing.service_layer.errors import invalid_field
from billing.service_layer.receivables import (
    BillNotFound,
    Ledger,
    balance_changed,
    load_ledger,
    policy_document,
    settled_event,
    sync_receivable,
    write_new_postings,
)
from utilis_shared.db import UnitOfWork
from utilis_shared.timeutil import business_date_of, utcnow

NOTE_PREFIX = {"credit_note": "CN", "debit_note": "DN"}
DEBIT_NOTE_TERM_DAYS = 15


async def _next_note_no(session, account_no: str, kind: str) -> str:
    count = (
        await session.execute(
            select(func.count()).select_from(Bill).where(Bill.account_no == account_no, Bill.kind == kind)
        )
    ).scalar_one()
    return f"{NOTE_PREFIX[kind]}{account_no}-{count + 1}"


def _note_issued(note: Bill, *, amount_due_fen: int, status: str) -> BillIssued:
    return BillIssued(
        bill_no=note.bill_no,
        account_no=note.account_no,
        kind=note.kind,
        cycle=note.cycle,
        utility=note.utility,
        tariff_plan_code=note.tariff_plan_code,
        original_bill_no=note.original_bill_no,
        period_start=note.period_start,
        period_end=note.period_end,
        issue_date=note.issue_date,
        due_date=note.due_date,
        total_fen=note.total_fen,
        prepaid_applied_fen=0,
        amount_due_fen=amount_due_fen,
        status=status,
        estimated=False,
        volume=None,
        lines=[],
    )


async def _original(session, bill_no: str) -> Bill:
    bill = (await session.execute(select(Bill).where(Bill.bill_no == bill_no))).scalar_one_or_none()
    if bill is None or bill.kind == "credit_note":
        raise BillNotFound(f"No bill {bill_no}.")
    return bill


async def issue_credit_note(
    uow: UnitOfWork, *, bill_no: str, amount_fen: int, reason: str, issued_by: str
) -> Bill:
    original = await _original(uow.session, bill_no)
    ledger = await load_ledger(uow.session, original.account_no, bill_nos=[bill_no])
    credited = (
        await uow.session.execute(
            select(func.coalesce(func.sum(Bill.total_fen), 0)).where(
                Bill.original_bill_no == bill_no, Bill.kind == "credit_note"
            )
        )
    ).scalar_one()
    debited = (
        await uow.session.execute(
            select(func.coalesce(func.sum(Bill.total_fen), 0)).where(
                Bill.original_bill_no == bill_no, Bill.kind == "debit_note"
            )
        )
    ).scalar_one()
    creditable = int(original.total_fen + debited - credited)  # SUM(bigint) is numeric in PostgreSQL
    if amount_fen > creditable:
        raise invalid_field(
            "amount_fen",
            "credit_exceeds_bill",
            f"At most {creditable} fen of bill {bill_no} can still be credited.",
            creditable_fen=creditable,
        )
    now = utcnow()
    at = max(rules.to_second(now), ledger.bills[bill_no].last_posting_at or rules.to_second(now))
    note_no = await _next_note_no(uow.session, original.account_no, "credit_note")
    note = Bill(
        bill_no=note_no,
        kind="credit_note",
        account_no=original.account_no,
        original_bill_no=bill_no,
        utility=original.utility,
        tariff_plan_code=original.tariff_plan_code,
        period_start=original.period_start,
        period_end=original.period_end,
        issue_date=business_date_of(now),
        due_date=business_date_of(now),
        due_at=rules.due_instant(business_date_of(now)),
        total_fen=amount_fen,
        lines=[],
        late_fee_policy=original.late_fee_policy,
        reason=reason,
        created_by=issued_by,
    )
    uow.session.add(note)
    before = ledger.bills[bill_no]
    bill, on_bill, carried = rules.credit_principal(before, note_no=note_no, amount_fen=amount_fen, at=at)
    write_new_postings(uow.session, before, bill)
    ledger.bills[bill_no] = bill
    settled_now = sync_receivable(ledger.rows[bill_no], bill, at)
    if carried:
        ledger.balance.prepaid_fen += carried
        ledger.balance.version += 1
    await uow.session.flush()
    uow.emit(catalog.build(_note_issued(note, amount_due_fen=0, status="issued"), subject=note.account_no))
    uow.emit(
        catalog.build(
            BillCredited(
                bill_no=bill_no,
                account_no=original.account_no,
                note_no=note_no,
                note_kind="credit_note",
                amount_fen=amount_fen,
                credited_to_bill_fen=on_bill,
                carried_to_prepaid_fen=carried,
                reason=reason,
                status="issued" if ledger.rows[bill_no].status == "open" else "paid",
            ),
            subject=original.account_no,
        )
    )
    if settled_now:
        uow.emit(settled_event(ledger, bill_no, at, "credit", note_no))
    uow.emit(balance_changed(ledger, at))
    return note


async def _raise_debit(
    uow: UnitOfWork,
    ledger: Ledger,
    *,
    original: Bill | None,
    amount_fen: int,
    reason: str,
    issued_by: str,
    due_date: date | None,
    at: datetime,
) -> Bill:
    issue_date = business_date_of(at)
    due = due_date or issue_date + timedelta(days=DEBIT_NOTE_TERM_DAYS)
    if due < issue_date:
        raise invalid_field("due_date", "invalid_due_date", "due_date must not be before today.")
    note_no = await _next_note_no(uow.session, ledger.account_no, "debit_note")
    policy = original.late_fee_policy if original is not None else policy_document(uow.settings)
    utility = original.utility if original is not None else await _utility_of(uow.session, ledger.account_no)
    note = Bill(
        bill_no=note_no,
        kind="debit_note",
        account_no=ledger.account_no,
        original_bill_no=original.bill_no if original is not None else None,
        utility=utility,
        tariff_plan_code=original.tariff_plan_code if original is not None else None,
        issue_date=issue_date,
        due_date=due,
        due_at=rules.due_instant(due),
        total_fen=amount_fen,
        lines=[],
        late_fee_policy=policy,
        reason=reason,
        created_by=issued_by,
    )
    receivable = Receivable(
        bill_no=note_no,
        account_no=ledger.account_no,
        utility=utility,
        principal_fen=amount_fen,
        due_at=note.due_at,
        principal_paid_fen=0,
        late_fee_credited_fen=0,
        late_fee_policy=policy,
        status="open",
        version=1,
    )
    uow.session.add_all([note, receivable])
    ledger.rows[note_no] = receivable
    ledger.bills[note_no] = rules.BillReceivable(
        bill_no=note_no, account_no=ledger.account_no, principal_fen=amount_fen, due_at=note.due_at
    )
    await uow.session.flush()
    uow.emit(
        catalog.build(_note_issued(note, amount_due_fen=amount_fen, status="issued"), subject=note.account_no)
    )
    if original is not None:
        uow.emit(
            catalog.build(
                BillCredited(
                    bill_no=original.bill_no,
                    account_no=ledger.account_no,
                    note_no=note_no,
                    note_kind="debit_note",
                    amount_fen=amount_fen,
                    credited_to_bill_fen=0,
                    carried_to_prepaid_fen=0,
                    reason=reason,
                    status="issued",
                ),
                subject=ledger.account_no,
            )
        )
    return note


async def _utility_of(session, account_no: str) -> str:
    from billing.adapters.orm import BillingAccount

    account = await session.get(BillingAccount, account_no)
    return account.utility if account is not None else "heating"


async def issue_debit_note(
    uow: UnitOfWork,
    *,
    bill_no: str,
    amount_fen: int,
    reason: str,
    issued_by: str,
    due_date: date | None = None,
) -> Bill:
    original = await _original(uow.session, bill_no)
    ledger = await load_ledger(uow.session, original.account_no)
    at = rules.to_second(utcnow())
    note = await _raise_debit(
        uow,
        ledger,
        original=original,
        amount_fen=amount_fen,
        reason=reason,
        issued_by=issued_by,
        due_date=due_date,
        at=at,
    )
    uow.emit(balance_changed(ledger, at))
    return note


async def issue_debit_for_reversal(
    uow: UnitOfWork, ledger: Ledger, *, payment_id: str, amount_fen: int, at: datetime
) -> str:
    """The part of a reversed payment's prepaid top-up that later bills already drew: a debit note on
    the account (the drawn bills stay settled; issued bills are immutable)."""
    note = await _raise_debit(
        uow,
        ledger,
        original=None,
        amount_fen=amount_fen,
        reason=f"退款冲正：缴费 {payment_id} 的预存款已被后续账单抵扣",
        issued_by="system:reversal",
        due_date=None,
        at=at,
    )
    return note.bill_no
