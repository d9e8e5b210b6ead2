"""Receivables use cases: what each account owes, stored. Settlement of payments (核销), the prepaid
balance (预存), reversals (refunds), late-fee waivers and credit/debit notes. The rules are the domain's
(``billing.domain.receivables``); this module loads the rows, applies the rule and writes the result with
its events in the caller's unit of work.

Concurrency: every money operation on an account first locks the account's ``account_balances`` row
(``lock_account``), so two payments, a payment and a billing run, or a payment and a waiver for the same
account apply one after the other; operations on different accounts never wait for each other.

Idempotency: a payment is applied once per ``payment_id`` (the ``settlements`` primary key), whatever event
or delivery brings it; the consumer's inbox also dedupes by event id. A reversal is applied once (the
settlement's ``status``).

Consumed events (``payment.events``; the payment service owns the schema, these are the fields read):

- ``payment.payment.succeeded``: ``payment_id``, ``account_no``, ``amount_fen``, ``paid_at``, optional
  ``channel`` and ``purpose`` (``prepaid``: top up only; anything else, the payment service's ``bill`` or
  ``dues``: settle the bills oldest first, then top up prepaid with the rest).
- ``payment.payment.refunded``: ``payment_id``, ``account_no``, ``refunded_fen`` (the total refunded so
  far for that payment), ``refunded_at``. The payment's settlement is reversed; what was not refunded is
  applied again at the refund time.

After the commit the account's cached statement is invalidated (an ``after_commit`` hook, which also runs
on a duplicate delivery), before the Kafka offset is committed: once a settlement is committed no lookup
can show the bill unpaid.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert

from billing import metrics
from billing.adapters.orm import (
    AccountBalance,
    LateFeeWaiverRow,
    PostingRow,
    Receivable,
    SettlementRow,
)
from billing.domain import receivables as rules
from billing.domain.receivables import BillReceivable, LateFeePolicy, Posting, PostingKind
from billing.events import (
    AllocationData,
    BalanceChanged,
    BillSettled,
    LateFeeWaived,
    SettlementRecorded,
    SettlementReversed,
    catalog,
)
from billing.service_layer.errors import conflict, invalid_field
from billing.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import NotFound
from utilis_shared.events import Event
from utilis_shared.ids import new_id
from utilis_shared.inbox import HandlerRegistry
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)

registry = HandlerRegistry()


class BillNotFound(NotFound):
    code = "bill_not_found"


# ------------------------------------------------------------------------------------------- policy
def policy_document(settings: Settings) -> dict[str, Any]:
    """The configured late-fee rule as stored on each bill at issue."""
    return {
        "daily_rate": str(settings.late_fee_daily_rate),
        "grace_days": settings.late_fee_grace_days,
        "cap_ratio": str(settings.late_fee_cap_ratio),
        "cap_fen": settings.late_fee_cap_fen,
    }


_POLICIES: dict[tuple[Any, ...], LateFeePolicy] = {}


def policy_of(document: dict[str, Any]) -> LateFeePolicy:
    """The domain policy of a stored document (memoised: a handful of distinct rules exist)."""
    key = (document["daily_rate"], document["grace_days"], document["cap_ratio"], document.get("cap_fen"))
    policy = _POLICIES.get(key)
    if policy is None:
        policy = LateFeePolicy(
            daily_rate=Decimal(document["daily_rate"]),
            grace_period=timedelta(days=document["grace_days"]),
            cap_ratio=Decimal(document["cap_ratio"]),
            cap_fen=document.get("cap_fen"),
        )
        _POLICIES[key] = policy
    return policy


# ---------------------------------------------------------------------------------------- loading
@dataclass
class Ledger:
    """An account's receivables as loaded for one operation: the rows and their domain values."""

    account_no: str
    balance: AccountBalance
    rows: dict[str, Receivable]
    bills: dict[str, BillReceivable]

    def policy(self, bill_no: str) -> LateFeePolicy:
        return policy_of(self.rows[bill_no].late_fee_policy)

    def open_bills(self) -> list[BillReceivable]:
        return [b for no, b in self.bills.items() if self.rows[no].status == "open"]


def to_domain(row: Receivable, postings: Iterable[PostingRow]) -> BillReceivable:
    return BillReceivable(
        bill_no=row.bill_no,
        account_no=row.account_no,
        principal_fen=row.principal_fen,
        due_at=row.due_at,
        postings=tuple(
            Posting(
                ref=p.ref,
                kind=PostingKind(p.kind),
                at=p.at,
                late_fee_fen=p.late_fee_fen,
                principal_fen=p.principal_fen,
            )
            for p in sorted(postings, key=lambda p: (p.at, p.created_at or p.at))
        ),
    )


# Built once: every payment the consumer applies runs them (building and cache-keying a statement costs
# more CPU than its round trip).
_ENSURE_BALANCE = (
    insert(AccountBalance.__table__)
    .values(account_no=bindparam("b_account_no"), prepaid_fen=0, version=1)
    .on_conflict_do_nothing(index_elements=["account_no"])
)
_LOCK_BALANCE = (
    select(AccountBalance).where(AccountBalance.account_no == bindparam("b_account_no")).with_for_update()
)

_OPEN_RECEIVABLES = (
    select(Receivable)
    .where(Receivable.account_no == bindparam("b_account_no"), Receivable.status == "open")
    .order_by(Receivable.due_at)
)
_OPEN_RECEIVABLES_AND = (  # ... and the given bills, open or not
    select(Receivable)
    .where(
        Receivable.account_no == bindparam("b_account_no"),
        (Receivable.status == "open") | Receivable.bill_no.in_(bindparam("b_bill_nos", expanding=True)),
    )
    .order_by(Receivable.due_at)
)
_POSTINGS_OF = select(PostingRow).where(PostingRow.bill_no.in_(bindparam("b_bill_nos", expanding=True)))


async def lock_account(session, account_no: str) -> AccountBalance:
    """The account's balance row, locked for this transaction (created at zero the first time)."""
    params = {"b_account_no": account_no}
    await session.execute(_ENSURE_BALANCE, params)
    return (await session.execute(_LOCK_BALANCE, params)).scalar_one()


async def load_ledger(
    session, account_no: str, *, bill_nos: Sequence[str] | None = None, lock: bool = True
) -> Ledger:
    """The account's open receivables (and ``bill_nos``, open or not), with their postings."""
    balance = await lock_account(session, account_no) if lock else await _balance(session, account_no)
    if bill_nos:
        found = await session.execute(
            _OPEN_RECEIVABLES_AND, {"b_account_no": account_no, "b_bill_nos": list(bill_nos)}
        )
    else:
        found = await session.execute(_OPEN_RECEIVABLES, {"b_account_no": account_no})
    rows = {r.bill_no: r for r in found.scalars()}
    postings: dict[str, list[PostingRow]] = {no: [] for no in rows}
    if rows:
        for p in (await session.execute(_POSTINGS_OF, {"b_bill_nos": list(rows)})).scalars():
            postings[p.bill_no].append(p)
    return Ledger(
        account_no=account_no,
        balance=balance,
        rows=rows,
        bills={no: to_domain(row, postings[no]) for no, row in rows.items()},
    )


async def _balance(session, account_no: str) -> AccountBalance:
    row = await session.get(AccountBalance, account_no)
    return row or AccountBalance(account_no=account_no, prepaid_fen=0, version=1)


# ---------------------------------------------------------------------------------------- writing
def sync_receivable(row: Receivable, bill: BillReceivable, at: datetime) -> bool:
    """Write the domain bill's totals back to its row; returns True when this made it settled."""
    was_open = row.status == "open"
    row.principal_paid_fen = bill.principal_paid_fen
    row.late_fee_credited_fen = bill.late_fee_credited_fen
    row.last_posting_at = bill.last_posting_at
    settled = bill.is_settled(at, policy_of(row.late_fee_policy))
    row.status = "settled" if settled else "open"
    row.settled_at = at if settled else None
    row.version += 1
    return was_open and settled


def write_new_postings(session, before: BillReceivable, after: BillReceivable) -> None:
    known = {p.ref for p in before.postings}
    for p in after.postings:
        if p.ref not in known:
            session.add(
                PostingRow(
                    bill_no=after.bill_no,
                    account_no=after.account_no,
                    ref=p.ref,
                    kind=p.kind.value,
                    at=p.at,
                    late_fee_fen=p.late_fee_fen,
                    principal_fen=p.principal_fen,
                )
            )


def balance_changed(ledger: Ledger, at: datetime) -> Event:
    open_bills = ledger.open_bills()
    return catalog.build(
        BalanceChanged(
            account_no=ledger.account_no,
            owed_fen=sum(b.principal_outstanding_fen for b in open_bills),
            late_fee_fen=sum(b.late_fee_outstanding_fen(at, ledger.policy(b.bill_no)) for b in open_bills),
            prepaid_fen=ledger.balance.prepaid_fen,
            open_bills=len(open_bills),
            as_of=at,
        ),
        subject=ledger.account_no,
    )


def settled_event(ledger: Ledger, bill_no: str, at: datetime, by: str, ref: str) -> Event:
    return catalog.build(
        BillSettled(
            bill_no=bill_no,
            account_no=ledger.account_no,
            status="paid",
            settled_at=at,
            late_fee_paid_fen=ledger.rows[bill_no].late_fee_credited_fen,
            by=by,
            ref=ref,
        ),
        subject=ledger.account_no,
    )


# ------------------------------------------------------------------------------------- settlement
@dataclass(frozen=True)
class PaymentApplied:
    settlement: SettlementRow
    replayed: bool


def _apply(
    uow: UnitOfWork,
    ledger: Ledger,
    *,
    ref: str,
    amount_fen: int,
    at: datetime,
    purpose: str,
) -> rules.Settlement:
    """Apply ``amount_fen`` to the ledger's open bills (or to prepaid only) at ``at``; writes postings,
    receivables and the balance, emits ``bill.settled`` for each bill it settles."""
    bills = ledger.open_bills() if purpose == "bills" else []
    # One policy per account in practice; a bill issued under another rule settles under its own.
    policies = {ledger.rows[b.bill_no].late_fee_policy["daily_rate"] for b in bills}
    if len(policies) > 1:
        return _apply_per_policy(uow, ledger, ref=ref, amount_fen=amount_fen, at=at, bills=bills)
    policy = ledger.policy(bills[0].bill_no) if bills else policy_of(policy_document(uow.settings))
    result = rules.settle_payment(
        payment_id=ref,
        account_no=ledger.account_no,
        amount_fen=amount_fen,
        paid_at=at,
        bills=bills,
        prepaid_fen=ledger.balance.prepaid_fen,
        policy=policy,
        late_fee_first=uow.settings.late_fee_first,
    )
    _write_settlement(uow, ledger, result, at=at, ref=ref)
    return result


def _apply_per_policy(
    uow: UnitOfWork, ledger: Ledger, *, ref: str, amount_fen: int, at: datetime, bills: list[BillReceivable]
) -> rules.Settlement:
    """Oldest first across bills issued under different late-fee rules: one bill at a time, each under
    its own rule (the same order and amounts as one settlement under one rule)."""
    remaining, allocations, settled, updated = amount_fen, [], [], []
    for bill in sorted(bills, key=lambda b: (b.due_at, b.bill_no)):
        if remaining == 0:
            updated.append(bill)
            continue
        part = rules.settle_payment(
            payment_id=ref,
            account_no=ledger.account_no,
            amount_fen=remaining,
            paid_at=at,
            bills=[bill],
            prepaid_fen=0,
            policy=ledger.policy(bill.bill_no),
            late_fee_first=uow.settings.late_fee_first,
        )
        allocations.extend(part.allocations)
        settled.extend(part.settled_bill_nos)
        updated.extend(part.bills)
        remaining -= part.allocated_fen
    result = rules.Settlement(
        payment_id=ref,
        account_no=ledger.account_no,
        paid_at=rules.to_second(at),
        amount_fen=amount_fen,
        allocations=tuple(allocations),
        prepaid_before_fen=ledger.balance.prepaid_fen,
        prepaid_after_fen=ledger.balance.prepaid_fen + remaining,
        settled_bill_nos=tuple(settled),
        bills=tuple(updated),
    )
    _write_settlement(uow, ledger, result, at=at, ref=ref)
    return result


def _write_settlement(uow: UnitOfWork, ledger: Ledger, result: rules.Settlement, *, at: datetime, ref: str):
    for bill in result.bills:
        before = ledger.bills[bill.bill_no]
        if bill is before:
            continue
        write_new_postings(uow.session, before, bill)
        ledger.bills[bill.bill_no] = bill
        if sync_receivable(ledger.rows[bill.bill_no], bill, result.paid_at):
            uow.emit(settled_event(ledger, bill.bill_no, result.paid_at, "payment", ref))
    if result.prepaid_after_fen != ledger.balance.prepaid_fen:
        ledger.balance.prepaid_fen = result.prepaid_after_fen
        ledger.balance.version += 1


def _posting_time(ledger: Ledger, paid_at: datetime) -> datetime:
    """Postings on a bill are in time order: a late callback is applied at the last posting's time when
    that is later (the fee already settled was computed on the history as it stood)."""
    latest = max((b.last_posting_at for b in ledger.open_bills() if b.last_posting_at), default=None)
    paid_at = rules.to_second(paid_at)
    return max(paid_at, latest) if latest else paid_at


_SETTLEMENT_COLUMNS = (
    "payment_id",
    "account_no",
    "amount_fen",
    "paid_at",
    "applied_at",
    "channel",
    "purpose",
    "allocations",
    "prepaid_before_fen",
    "prepaid_added_fen",
    "status",
)  # reversed_at / reversal start empty; created_at / updated_at from the database
_INSERT_SETTLEMENT = SettlementRow.__table__.insert()  # its columns: the parameters' keys


async def apply_payment(
    uow: UnitOfWork,
    *,
    payment_id: str,
    account_no: str,
    amount_fen: int,
    paid_at: datetime,
    channel: str | None = None,
    purpose: str = "bills",
) -> PaymentApplied:
    """Apply a payment once: oldest bills first (late fee first), the rest to the prepaid balance."""
    if purpose not in ("bills", "prepaid"):
        raise ValueError(f"unknown payment purpose {purpose!r}")
    ledger = await load_ledger(uow.session, account_no)
    existing = await uow.session.get(SettlementRow, payment_id)
    if existing is not None:
        if (existing.account_no, existing.amount_fen) != (account_no, amount_fen):
            # Same id, different facts: a provider bug or a forgery; never apply it twice or differently.
            raise ValueError(f"payment {payment_id} was applied with other facts; refusing")
        return PaymentApplied(existing, replayed=True)
    at = _posting_time(ledger, paid_at)
    now = utcnow()
    result = _apply(uow, ledger, ref=payment_id, amount_fen=amount_fen, at=at, purpose=purpose)
    row = SettlementRow(
        payment_id=payment_id,
        account_no=account_no,
        amount_fen=amount_fen,
        paid_at=rules.to_second(paid_at),
        applied_at=at,
        channel=channel,
        purpose=purpose,
        allocations=[
            {"bill_no": a.bill_no, "late_fee_fen": a.late_fee_fen, "principal_fen": a.principal_fen}
            for a in result.allocations
        ],
        prepaid_before_fen=result.prepaid_before_fen,
        prepaid_added_fen=result.prepaid_added_fen,
        status="settled",
    )
    # One Core statement built once (the ORM's unit of work for this row cost about 1 ms of CPU a payment);
    # the row object is only presented (the event, the result).
    await uow.session.execute(_INSERT_SETTLEMENT, {c: getattr(row, c) for c in _SETTLEMENT_COLUMNS})
    metrics.payment_applied(uow.session, channel=channel, amount_fen=amount_fen)
    uow.emit(
        catalog.build(
            SettlementRecorded(
                payment_id=payment_id,
                account_no=account_no,
                amount_fen=amount_fen,
                paid_at=row.paid_at,
                applied_at=at,
                allocations=[AllocationData(**a) for a in row.allocations],
                prepaid_added_fen=result.prepaid_added_fen,
                settled_bill_nos=list(result.settled_bill_nos),
            ),
            subject=account_no,
        )
    )
    uow.emit(balance_changed(ledger, now if now > at else at))
    await uow.session.flush()
    return PaymentApplied(row, replayed=False)


async def reverse_payment(
    uow: UnitOfWork, *, payment_id: str, account_no: str, refunded_fen: int, refunded_at: datetime
) -> SettlementRow | None:
    """Undo a payment's settlement (a refund). Its bills reopen as if it had never reached them; what it
    put into prepaid is taken back (what later bills already drew becomes a debit note); the part not
    refunded is applied again at the refund time. Applied once: a reversed settlement is left alone."""
    settlement = await uow.session.get(SettlementRow, payment_id, with_for_update=True)
    if settlement is None:
        raise ValueError(f"refund of payment {payment_id}, which billing never applied")
    if settlement.status == "reversed":
        if (settlement.reversal or {}).get("refunded_fen") == refunded_fen:
            return None  # the same refund again
        # A further partial refund of a payment already reversed once: not automated yet. Refused loudly
        # (the consumer retries, then dead-letters it with this reason for a person), never ignored.
        raise ValueError(
            f"payment {payment_id} was already reversed for a refund of "
            f"{(settlement.reversal or {}).get('refunded_fen')} fen; a further refund to {refunded_fen} fen "
            "needs a person"
        )
    if refunded_fen <= 0 or refunded_fen > settlement.amount_fen:
        raise ValueError(f"refund of {refunded_fen} fen on a payment of {settlement.amount_fen} fen")
    bill_nos = [a["bill_no"] for a in settlement.allocations]
    ledger = await load_ledger(uow.session, account_no, bill_nos=bill_nos)
    at = _posting_time(ledger, refunded_at)
    domain_settlement = rules.Settlement(
        payment_id=payment_id,
        account_no=account_no,
        paid_at=settlement.applied_at,
        amount_fen=settlement.amount_fen,
        allocations=tuple(rules.Allocation(**a) for a in settlement.allocations),
        prepaid_before_fen=settlement.prepaid_before_fen,
        prepaid_after_fen=settlement.prepaid_before_fen + settlement.prepaid_added_fen,
        settled_bill_nos=(),
        bills=(),
    )
    involved = [ledger.bills[no] for no in bill_nos]
    # Only the bills the payment touched (and their late fees) are recomputed; other open bills stay.
    first_policy = ledger.policy(bill_nos[0]) if bill_nos else policy_of(policy_document(uow.settings))
    reversal = rules.reverse_settlement(
        domain_settlement,
        bills=involved,
        prepaid_fen=ledger.balance.prepaid_fen,
        reversed_at=at,
        policy=first_policy,
    )
    await uow.session.execute(
        delete(PostingRow).where(PostingRow.ref == payment_id, PostingRow.bill_no.in_(bill_nos or [""]))
    )
    for bill in reversal.bills:
        ledger.bills[bill.bill_no] = bill
        sync_receivable(ledger.rows[bill.bill_no], bill, at)
    ledger.balance.prepaid_fen = reversal.prepaid_after_fen
    ledger.balance.version += 1
    debit_note_no = None
    if reversal.debit_fen:
        from billing.service_layer.notes import issue_debit_for_reversal

        debit_note_no = await issue_debit_for_reversal(
            uow, ledger, payment_id=payment_id, amount_fen=reversal.debit_fen, at=at
        )
    remainder = settlement.amount_fen - refunded_fen
    if remainder:
        _apply(uow, ledger, ref=f"{payment_id}:kept", amount_fen=remainder, at=at, purpose=settlement.purpose)
    settlement.status = "reversed"
    settlement.reversed_at = at
    settlement.reversal = {
        "refunded_fen": refunded_fen,
        "reopened_bill_nos": list(reversal.reopened_bill_nos),
        "prepaid_taken_back_fen": reversal.prepaid_before_fen - reversal.prepaid_after_fen,
        "debit_note_no": debit_note_no,
        "reapplied_fen": remainder,
    }
    uow.emit(
        catalog.build(
            SettlementReversed(
                payment_id=payment_id,
                account_no=account_no,
                reversed_at=at,
                reopened_bill_nos=list(reversal.reopened_bill_nos),
                prepaid_taken_back_fen=settlement.reversal["prepaid_taken_back_fen"],
                debit_note_no=debit_note_no,
                reapplied_fen=remainder,
            ),
            subject=account_no,
        )
    )
    uow.emit(balance_changed(ledger, max(utcnow(), at)))
    await uow.session.flush()
    return settlement


# ------------------------------------------------------------------------------------------ waivers
async def waive_late_fee(
    uow: UnitOfWork,
    *,
    bill_no: str,
    requested_by: str,
    approved_by: str,
    approver_roles: Sequence[str],
    reason: str,
    amount_fen: int | None = None,
) -> LateFeeWaiverRow:
    """Waive (part of) a bill's late fee outstanding now; needs an approver role and four eyes."""
    receivable = await uow.session.get(Receivable, bill_no)
    if receivable is None:
        raise BillNotFound(f"No bill {bill_no}.")
    ledger = await load_ledger(uow.session, receivable.account_no, bill_nos=[bill_no])
    at = _posting_time(ledger, utcnow())
    waiver_id = str(new_id())
    before = ledger.bills[bill_no]
    try:
        bill, record = rules.waive_late_fee(
            before,
            waiver_id=f"waiver:{waiver_id}",
            at=at,
            requested_by=requested_by,
            approved_by=approved_by,
            approver_roles=approver_roles,
            reason=reason,
            policy=ledger.policy(bill_no),
            amount_fen=amount_fen,
        )
    except rules.WaiverNotAuthorized as exc:
        raise conflict("waiver_not_authorized", str(exc)) from exc
    except rules.WaiverExceedsFee as exc:
        raise invalid_field("amount_fen", "waiver_exceeds_late_fee", str(exc)) from exc
    write_new_postings(uow.session, before, bill)
    ledger.bills[bill_no] = bill
    if sync_receivable(ledger.rows[bill_no], bill, at):
        uow.emit(settled_event(ledger, bill_no, at, "waiver", f"waiver:{waiver_id}"))
    row = LateFeeWaiverRow(
        bill_no=bill_no,
        account_no=receivable.account_no,
        at=at,
        amount_fen=record.amount_fen,
        late_fee_before_fen=record.late_fee_outstanding_before_fen,
        late_fee_after_fen=record.late_fee_outstanding_after_fen,
        requested_by=requested_by,
        approved_by=approved_by,
        approver_roles=sorted(record.approver_roles),
        reason=reason,
    )
    uow.session.add(row)
    await uow.session.flush()
    uow.emit(
        catalog.build(
            LateFeeWaived(
                waiver_id=str(row.id),
                bill_no=bill_no,
                account_no=receivable.account_no,
                amount_fen=row.amount_fen,
                requested_by=requested_by,
                approved_by=approved_by,
                reason=reason,
                at=at,
            ),
            subject=receivable.account_no,
        )
    )
    uow.emit(balance_changed(ledger, at))
    return row


# -------------------------------------------------------------------------------- payment events
def _payment_facts(event: Event) -> tuple[str, str]:
    data = event.data
    payment_id, account_no = data.get("payment_id"), data.get("account_no")
    if not payment_id or not account_no:
        raise ValueError(f"{event.type} without payment_id or account_no")
    return str(payment_id), str(account_no)


def _instant(value: Any) -> datetime:
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    return rules.to_second(instant)


def _amount(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer amount of fen")
    return value


@registry.on("payment.payment.succeeded")
async def payment_succeeded(uow: UnitOfWork, event: Event) -> None:
    payment_id, account_no = _payment_facts(event)
    data = event.data
    await apply_payment(
        uow,
        payment_id=payment_id,
        account_no=account_no,
        amount_fen=_amount(data.get("amount_fen"), "amount_fen"),
        paid_at=_instant(data.get("paid_at") or event.time),
        channel=data.get("channel"),
        # The payer's purpose: a declared top-up goes to prepaid only; a bill or dues payment (the payment
        # service's "bill" / "dues") settles the account's bills oldest first.
        purpose="prepaid" if data.get("purpose") == "prepaid" else "bills",
    )


@registry.on("payment.payment.refunded")
async def payment_refunded(uow: UnitOfWork, event: Event) -> None:
    payment_id, account_no = _payment_facts(event)
    data = event.data
    await reverse_payment(
        uow,
        payment_id=payment_id,
        account_no=account_no,
        refunded_fen=_amount(data.get("refunded_fen") or data.get("amount_fen"), "refunded_fen"),
        refunded_at=_instant(data.get("refunded_at") or event.time),
    )
