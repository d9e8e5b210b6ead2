"""The events the metering-and-billing service emits (topic ``billing.events``) and their payload schemas.

Service ``metering-and-billing``, event types ``billing.*`` (the agreed exception, docs/adding-a-service.md).
Tariff events are keyed by the plan code; account-scoped events (bills, balances: later) by account number.
The JSON Schemas are written to ``services/metering-and-billing/events/`` by
``metering-and-billing events-schemas``; a unit test fails when they drift.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from utilis_shared.events import EventCatalog

catalog = EventCatalog("metering-and-billing", type_prefix="billing")


@catalog.register("billing.tariff.published")
class TariffPublished(BaseModel):
    """A tariff plan version was published. ``plan`` is the plan document of this version (the domain's
    ``TariffPlan`` with exactly this one version). When it supersedes a version, that version's new
    ``effective_to`` (the day before this one's ``effective_from``) is in ``closed_version``."""

    code: str
    version: int
    name: str
    utility: str
    customer_class: str
    effective_from: date
    effective_to: date | None
    closed_version: int | None
    closed_version_effective_to: date | None
    published_by: str
    plan: dict[str, Any]


# ---- bills and receivables: keyed by account number (one account's events stay in order)
class BillLineData(BaseModel):
    kind: str
    description: str  # Chinese, as printed on the bill: "第一阶梯 50 m³ × 2.60 元"
    quantity: str  # decimal string
    unit: str
    unit_price: str  # yuan, decimal string
    amount_fen: int
    tier: int | None = None


@catalog.register("billing.bill.issued")
class BillIssued(BaseModel):
    """A bill, credit note or debit note was issued (the "bill detail pushed" message). ``amount_due_fen``
    is what is owed on it right after issue (after any prepaid draw); ``status`` is ``paid`` when the
    prepaid balance covered it."""

    bill_no: str
    account_no: str
    kind: str  # bill | credit_note | debit_note
    cycle: str | None
    utility: str
    tariff_plan_code: str | None
    original_bill_no: str | None
    period_start: date | None
    period_end: date | None  # excluded
    issue_date: date
    due_date: date
    total_fen: int
    prepaid_applied_fen: int
    amount_due_fen: int
    status: str  # issued | paid
    estimated: bool
    volume: str | None
    lines: list[BillLineData]


@catalog.register("billing.bill.settled")
class BillSettled(BaseModel):
    """A bill is paid in full (principal and late fee), by a payment, the prepaid balance or a credit."""

    bill_no: str
    account_no: str
    status: str  # paid
    settled_at: datetime
    late_fee_paid_fen: int
    by: str  # payment | prepaid | credit | waiver
    ref: str


@catalog.register("billing.bill.credited")
class BillCredited(BaseModel):
    """A credit or debit note corrects an issued bill; ``status`` is the original bill's after it."""

    bill_no: str
    account_no: str
    note_no: str
    note_kind: str  # credit_note | debit_note
    amount_fen: int
    credited_to_bill_fen: int
    carried_to_prepaid_fen: int
    reason: str
    status: str  # issued (still owed) | paid


@catalog.register("billing.balance.changed")
class BalanceChanged(BaseModel):
    """What an account owes after a change: ``owed_fen`` is the principal still owed on its open bills;
    ``late_fee_fen`` the late fee accrued at ``as_of`` (it keeps accruing); ``prepaid_fen`` the prepaid
    balance."""

    account_no: str
    owed_fen: int
    late_fee_fen: int
    prepaid_fen: int
    open_bills: int
    as_of: datetime


class AllocationData(BaseModel):
    bill_no: str
    late_fee_fen: int
    principal_fen: int


@catalog.register("billing.settlement.recorded")
class SettlementRecorded(BaseModel):
    """A payment was applied to the account (核销): to its bills oldest first, the rest to prepaid."""

    payment_id: str
    account_no: str
    amount_fen: int
    paid_at: datetime
    applied_at: datetime
    allocations: list[AllocationData]
    prepaid_added_fen: int
    settled_bill_nos: list[str]


@catalog.register("billing.settlement.reversed")
class SettlementReversed(BaseModel):
    """A payment's settlement was undone (refund): its bills reopen; what it added to prepaid is taken
    back, and what was already drawn becomes a debit note."""

    payment_id: str
    account_no: str
    reversed_at: datetime
    reopened_bill_nos: list[str]
    prepaid_taken_back_fen: int
    debit_note_no: str | None
    reapplied_fen: int


@catalog.register("billing.late_fee.waived")
class LateFeeWaived(BaseModel):
    waiver_id: str
    bill_no: str
    account_no: str
    amount_fen: int
    requested_by: str
    approved_by: str
    reason: str
    at: datetime


@catalog.register("billing.reminder.dispatched")
class ReminderSent(BaseModel):
    account_no: str
    bill_no: str
    step_code: str
    kind: str  # before_due | overdue | collection
    channel: str
    sent_at: datetime


@catalog.register("billing.collection.requested")
class CollectionRequested(BaseModel):
    """An overdue bill reached a collection step: the work-order service opens a collection order."""

    account_no: str
    bill_no: str
    step_code: str
    amount_due_fen: int
    due_date: date
    overdue_days: int
