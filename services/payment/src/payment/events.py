"""The events the payment service emits (topic ``payment.events``), keyed by account number. Billing
settles bills from ``payment.payment.succeeded`` and reverses from ``payment.payment.refunded``; the customer
360° view projects both. ``payment_id`` is the order number (what billing dedupes settlements by)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from utilis_shared.events import EventCatalog

catalog = EventCatalog("payment")


class _Order(BaseModel):
    payment_id: str  # the order number
    account_no: str
    amount_fen: int
    channel: str
    purpose: str  # bill | dues | prepaid
    bill_no: str | None


@catalog.register("payment.payment.created")
class PaymentCreated(_Order):
    status: str  # pending
    expires_at: datetime


@catalog.register("payment.payment.succeeded")
class PaymentSucceeded(_Order):
    status: str  # succeeded
    paid_at: datetime
    provider: str
    provider_txn_id: str


@catalog.register("payment.payment.failed")
class PaymentFailed(_Order):
    status: str  # failed
    reason: str | None = None  # the provider's reason as it states it (a bank's code, WeChat's text)


@catalog.register("payment.payment.closed")
class PaymentClosed(_Order):
    status: str  # closed
    reason: str  # cancelled | expired


@catalog.register("payment.payment.refunded")
class PaymentRefunded(_Order):
    status: str  # succeeded (part refunded) | refunded
    refund_no: str
    refund_fen: int
    refunded_fen: int  # the total refunded so far: what billing reverses
    refunded_at: datetime


class _Refund(BaseModel):
    refund_no: str
    payment_id: str  # the order refunded
    account_no: str
    amount_fen: int
    refund_case_id: str | None  # a refund case's money (billing never settled it), else the order's


@catalog.register("payment.refund.requested")
class RefundRequested(_Refund):
    """Staff asked for a refund (of an order, or a refund case's money): it awaits a supervisor's decision.
    The reason and who asked stay in the payment service (free text, staff identities)."""

    status: str  # requested


@catalog.register("payment.refund.approved")
class RefundApproved(_Refund):
    """A supervisor (not the requester) approved it: ``submitted`` (sent to the provider; its notice
    completes it with ``payment.payment.refunded``) or, at the counter, ``succeeded`` at once."""

    status: str  # submitted | succeeded


@catalog.register("payment.refund.rejected")
class RefundRejected(_Refund):
    """A supervisor rejected it: no money moves; its amount is free again (a refund case reopens)."""

    status: str  # rejected


@catalog.register("payment.refund.failed")
class RefundFailed(BaseModel):
    """The provider refused an approved refund (``code`` is the provider's): no money left; a refund of an
    order frees its amount for another request, a refund case's reopens the case."""

    refund_no: str
    payment_id: str
    account_no: str
    amount_fen: int
    provider: str
    code: str
    refund_case_id: str | None


@catalog.register("payment.refund_case.opened")
class RefundCaseOpened(BaseModel):
    case_id: str
    payment_id: str
    account_no: str
    provider: str
    provider_txn_id: str
    amount_fen: int
    reason: str


class _RefundCase(BaseModel):
    case_id: str
    payment_id: str  # the order the money was for
    account_no: str
    provider: str
    provider_txn_id: str
    amount_fen: int
    status: str  # the case's status after the change


@catalog.register("payment.refund_case.refund_requested")
class RefundCaseRefundRequested(_RefundCase):
    """Staff chose to refund the case's money: ``refund_no`` awaits a supervisor's approval."""

    refund_no: str


@catalog.register("payment.refund_case.reopened")
class RefundCaseReopened(_RefundCase):
    """The case's refund was rejected (or refused by the provider): the case is open again."""

    refund_no: str
    reason: str  # refund_rejected | refund_failed


@catalog.register("payment.refund_case.resolved")
class RefundCaseResolved(_RefundCase):
    """The money went back to the payer (``refunded``: ``refund_no``), became a prepaid top-up
    (``applied``: ``applied_payment_id``, whose ``payment.payment.succeeded`` billing settles), or a
    supervisor dismissed the case (``dismissed``: neither)."""

    resolution: str  # refund | top_up | dismiss
    refund_no: str | None
    applied_payment_id: str | None
    resolved_at: datetime


# ---- bank withholding (代扣)
class _Mandate(BaseModel):
    mandate_id: str
    account_no: str
    bank_code: str
    bank_account_masked: str  # never the whole number
    signed_on: date
    status: str  # active | revoked


@catalog.register("payment.withholding_mandate.signed")
class WithholdingMandateSigned(_Mandate):
    """An account authorised a bank to debit its bank account for its dues."""


@catalog.register("payment.withholding_mandate.revoked")
class WithholdingMandateRevoked(_Mandate):
    reason: str
    revoked_at: datetime


class _Batch(BaseModel):
    batch_no: str
    bank_code: str
    business_day: date
    item_count: int
    total_fen: int
    request_sha256: str
    status: str  # requested | completed


@catalog.register("payment.withholding_batch.requested")
class WithholdingBatchRequested(_Batch):
    """A batch's request file was produced (its orders are pending: ``payment.payment.created`` each).
    Keyed by the batch number."""


@catalog.register("payment.withholding_batch.completed")
class WithholdingBatchCompleted(_Batch):
    """The bank's result file was applied: successes through ``payment.payment.succeeded`` (what billing
    settles), failures through ``payment.payment.failed`` and ``payment.withholding_item.failed``."""

    result_sha256: str
    processed_at: datetime
    succeeded_count: int
    succeeded_fen: int
    failed_count: int
    failed_fen: int


@catalog.register("payment.withholding_item.failed")
class WithholdingItemFailed(BaseModel):
    """The bank could not debit an account (keyed by the account number: e.g. to tell the resident)."""

    payment_id: str
    account_no: str
    batch_no: str
    bank_code: str
    amount_fen: int
    failure_code: str  # the bank's reason code (INSUFFICIENT_FUNDS, ACCOUNT_CLOSED, ...)
    failure_text: str  # what a resident reads (Simplified Chinese)


# ---- the counter
@catalog.register("payment.counter_shift.closed")
class CounterShiftClosed(BaseModel):
    """A cashier closed a shift by handing it over (交班): what the receipts say was taken, the cash counted
    and the difference (negative: short); the shift takes no more of the cashier's receipts. Keyed by the
    shift. A difference is for the supervisor (and, later, a
    work order)."""

    handover_id: str
    shift_id: str
    cashier: str
    business_day: date
    handed_over_at: datetime
    receipts_count: int
    cash_fen: int
    pos_fen: int
    unspecified_fen: int
    counted_cash_fen: int
    difference_fen: int


# ---- reconciliation (对账)
@catalog.register("payment.reconciliation.completed")
class ReconciliationCompleted(BaseModel):
    """A provider's day was reconciled: a statement imported (``trigger`` ``import``) or the day reconciled
    again because the previous day's carry changed (``rerun``). ``replaces``: the run it superseded.
    Keyed by ``<provider>:<day>``, so one day's runs stay in order."""

    run_id: str
    provider: str
    day: date
    trigger: str  # import | rerun
    replaces: str | None
    carried_from: str | None
    lines_count: int
    matched_count: int
    cases_count: int
    balanced: bool
    cases_by_kind: dict[str, int]  # missing_here, missing_at_provider, amount_differs, ...
    statement_payments_fen: int
    recorded_payments_fen: int
    statement_refunds_fen: int
    recorded_refunds_fen: int
