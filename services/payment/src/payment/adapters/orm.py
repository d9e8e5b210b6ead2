"""The payment service's tables (database ``payment``). Only this service reads or writes them. Money
columns are ``BIGINT`` fen."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from utilis_shared.db import TimestampMixin, make_metadata
from utilis_shared.ids import new_id


class Base(DeclarativeBase):
    metadata = make_metadata()


class PaymentOrder(TimestampMixin, Base):
    """A payment order: an account, a purpose, an amount, a channel, and the state machine of
    ``payment.domain.orders``. ``order_no`` is what the provider sees (out_trade_no) and what billing
    settles by (its ``payment_id``)."""

    __tablename__ = "payment_orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('created', 'pending', 'succeeded', 'failed', 'closed', 'refunded')", name="status"
        ),
        CheckConstraint("purpose IN ('bill', 'dues', 'prepaid')", name="purpose"),
        CheckConstraint("purpose <> 'bill' OR bill_no IS NOT NULL", name="bill_has_bill_no"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("refunded_fen BETWEEN 0 AND amount_fen", name="refunds_within_amount"),
        UniqueConstraint("order_no", name="uq_payment_orders_order_no"),
        UniqueConstraint("provider", "provider_txn_id", name="uq_payment_orders_provider_txn"),
        Index("ix_payment_orders_account", "account_no", "created_at"),
        Index("ix_payment_orders_status_expires", "status", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    order_no: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(10))
    bill_no: Mapped[str | None] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(40))  # wechat | alipay | bank:<code> | counter | withholding
    provider: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    provider_txn_id: Mapped[str | None] = mapped_column(String(64))
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    client_channel: Mapped[str | None] = mapped_column(String(40))  # the gateway channel of the caller
    created_by: Mapped[str] = mapped_column(String(200))
    cashier: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # counter: cashier and shift
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # A prepaid order made from a refund case's money (``payment.domain.refund_cases``).
    refund_case_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class ProviderCallback(Base):
    """Every callback that passed the signature check, with what it did (audit, and the dedupe of
    concurrent duplicates: the order row lock decides, this records)."""

    __tablename__ = "provider_callbacks"
    __table_args__ = (
        Index("ix_provider_callbacks_txn", "provider", "provider_txn_id"),
        Index("ix_provider_callbacks_order", "order_no", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(40))
    provider_txn_id: Mapped[str] = mapped_column(String(64))
    order_no: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(20))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefundCase(TimestampMixin, Base):
    """Money a provider confirmed that no open order can take (paid after the order closed, or an
    amount that differs): a person resolves it (``payment.domain.refund_cases``): refund it to the payer
    (``refunding`` while the refund is approved and the provider refunds: ``refund_no``), or apply it as a
    prepaid top-up to the account (``applied``: the succeeded order ``applied_order_no`` billing settles)."""

    __tablename__ = "refund_cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'refunding', 'refunded', 'applied', 'dismissed')", name="status"),
        UniqueConstraint("provider", "provider_txn_id", name="uq_refund_cases_provider_txn"),
        Index("ix_refund_cases_status", "status", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    order_no: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(40))
    provider_txn_id: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(40))  # order_closed | order_failed | amount_mismatch
    status: Mapped[str] = mapped_column(String(20), default="open")
    resolution: Mapped[str | None] = mapped_column(Text)  # the resolver's note
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the provider's time
    refund_no: Mapped[str | None] = mapped_column(String(32))
    applied_order_no: Mapped[str | None] = mapped_column(String(32))
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class AccountDues(Base):
    """What billing last reported an account owes (``billing.balance.changed``), to bound bill and dues
    orders. Moves forward in event time only."""

    __tablename__ = "account_dues"

    account_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    owed_fen: Mapped[int] = mapped_column(BigInteger)
    late_fee_fen: Mapped[int] = mapped_column(BigInteger)
    prepaid_fen: Mapped[int] = mapped_column(BigInteger)
    open_bills: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BillDue(Base):
    """Billing's bills as its events describe them (``billing.bill.*``), to check a bill order's bill."""

    __tablename__ = "bill_dues"
    __table_args__ = (Index("ix_bill_dues_account", "account_no"),)

    bill_no: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_no: Mapped[str] = mapped_column(String(20))
    total_fen: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # issued | paid
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# ---- refunds and invoices
class Refund(TimestampMixin, Base):
    """A refund of (part of) a succeeded payment. Staff request it; a ``billing_supervisor`` who is not the
    requester approves it; then the provider refunds (its refund notice completes it) or, at the counter,
    the cashier pays it back at once. ``refund_no`` is the provider's ``out_refund_no``."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(
            "status IN ('requested', 'submitted', 'succeeded', 'rejected', 'failed')", name="status"
        ),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("approved_by IS NULL OR approved_by <> requested_by", name="four_eyes"),
        UniqueConstraint("refund_no", name="uq_refunds_refund_no"),
        Index("ix_refunds_order", "order_no", "created_at"),
        Index(
            "ix_refunds_to_send",
            "last_attempt_at",
            postgresql_where=text("status = 'submitted' AND sent_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    refund_no: Mapped[str] = mapped_column(String(32))
    order_no: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    decision_note: Mapped[str | None] = mapped_column(Text)
    provider_refund_id: Mapped[str | None] = mapped_column(String(64))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set for the refund of a refund case's money: billing never settled it, so its success reverses
    # nothing (no ``payment.payment.refunded``) and it does not count against the order's amount.
    refund_case_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The refund request sent to the provider (``service_layer/refund_requests.py``): when the provider
    # accepted it, how often it was tried, the last transient error, the provider's refusal code (failed).
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(200))
    failure_code: Mapped[str | None] = mapped_column(String(64))


class InvoiceRequest(TimestampMixin, Base):
    """A payer's request for an e-invoice (电子发票) for a succeeded payment: recorded here for the
    invoicing system (the tax-control platform adapter is not built)."""

    __tablename__ = "invoice_requests"
    __table_args__ = (
        CheckConstraint("status IN ('requested', 'issued', 'failed')", name="status"),
        CheckConstraint("title_kind IN ('personal', 'company')", name="title_kind"),
        CheckConstraint("title_kind = 'personal' OR tax_no IS NOT NULL", name="company_has_tax_no"),
        UniqueConstraint("order_no", name="uq_invoice_requests_order_no"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    order_no: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    title_kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    tax_no: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="requested")
    requested_by: Mapped[str] = mapped_column(String(200))


# ---- reconciliation


class BillingSettlement(TimestampMixin, Base):
    """What billing reported settling (``billing.settlement.recorded``): one row per recorded event, so a
    payment billing settled twice has two rows; ``reversed_at`` once ``billing.settlement.reversed`` came."""

    __tablename__ = "billing_settlements"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
        Index("ix_billing_settlements_payment", "payment_id"),
        Index("ix_billing_settlements_paid_at", "paid_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(32))  # our order number
    account_no: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reapplied_fen: Mapped[int | None] = mapped_column(BigInteger)


class StatementImport(TimestampMixin, Base):
    """A provider's daily statement file as received (kept: the evidence behind a run). The same bytes for
    the same provider and day are one import."""

    __tablename__ = "statement_imports"
    __table_args__ = (UniqueConstraint("provider", "day", "sha256", name="uq_statement_imports_file"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    line_count: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    imported_by: Mapped[str] = mapped_column(String(200))


class ReconciliationRun(TimestampMixin, Base):
    """One reconciliation of a provider's day from one import: counts, the day's totals (the statement's
    beside what was recorded here) and what it hands to the next day (``carry``). A later file for the same
    provider and day supersedes it, and so does a re-run of the same file when the previous day's carry
    changed (one ``current`` run per provider and day)."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        CheckConstraint("status IN ('current', 'superseded')", name="status"),
        # Several runs per import: the first, and re-runs after an earlier day's carry changed.
        Index("ix_reconciliation_runs_import", "import_id"),
        Index(
            "uq_reconciliation_runs_current",
            "provider",
            "day",
            unique=True,
            postgresql_where=text("status = 'current'"),
        ),
        Index("ix_reconciliation_runs_day", "day", "provider"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    import_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("statement_imports.id"))
    provider: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="current")
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    carried_from: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    cutover_seconds: Mapped[int] = mapped_column(Integer)
    lines_count: Mapped[int] = mapped_column(Integer)
    matched_count: Mapped[int] = mapped_column(Integer)
    cases_count: Mapped[int] = mapped_column(Integer)
    statement_payments_count: Mapped[int] = mapped_column(Integer)
    statement_payments_fen: Mapped[int] = mapped_column(BigInteger)
    statement_refunds_count: Mapped[int] = mapped_column(Integer)
    statement_refunds_fen: Mapped[int] = mapped_column(BigInteger)
    statement_fees_fen: Mapped[int] = mapped_column(BigInteger)
    recorded_payments_count: Mapped[int] = mapped_column(Integer)
    recorded_payments_fen: Mapped[int] = mapped_column(BigInteger)
    recorded_refunds_count: Mapped[int] = mapped_column(Integer)
    recorded_refunds_fen: Mapped[int] = mapped_column(BigInteger)
    carry: Mapped[dict[str, Any]] = mapped_column(JSONB)
    run_by: Mapped[str] = mapped_column(String(200))


class ReconciliationCase(TimestampMixin, Base):
    """One mismatch of a run (``payment.domain.reconciliation.Case``) and its resolution."""

    __tablename__ = "reconciliation_cases"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('missing_here', 'missing_at_provider', 'amount_differs', 'settled_twice', "
            "'not_settled', 'status_differs')",
            name="kind",
        ),
        CheckConstraint("against IN ('provider', 'billing')", name="against"),
        CheckConstraint("subject IN ('payment', 'refund')", name="subject"),
        CheckConstraint("status IN ('open', 'resolved', 'dismissed')", name="status"),
        CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name="resolved_at"),
        Index("ix_reconciliation_cases_run", "run_id"),
        Index("ix_reconciliation_cases_status", "status", "id"),
        Index("ix_reconciliation_cases_order", "order_no"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("reconciliation_runs.id"))
    provider: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(30))
    against: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(10))
    order_no: Mapped[str | None] = mapped_column(String(64))
    provider_txn_id: Mapped[str | None] = mapped_column(String(64))
    refund_no: Mapped[str | None] = mapped_column(String(64))
    expected_fen: Mapped[int | None] = mapped_column(BigInteger)
    actual_fen: Mapped[int | None] = mapped_column(BigInteger)
    raw_line_no: Mapped[int | None] = mapped_column(Integer)
    detail_zh: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
