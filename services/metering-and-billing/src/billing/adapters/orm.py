"""The metering-and-billing service's tables (database ``metering_and_billing``). Only this service reads
or writes them. Money columns (bills, receivables: later) are ``BIGINT`` fen."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from utilis_shared.db import TimestampMixin, make_metadata
from utilis_shared.ids import new_id


class Base(DeclarativeBase):
    metadata = make_metadata()


class TariffPlanVersion(Base):
    """One published version of a tariff plan: in force from ``effective_from`` to ``effective_to``
    (included; ``None``: until a next version closes it). Versions of one code never overlap: the use case
    checks it and the exclusion constraint ``ex_tariff_plans_no_overlap`` (btree_gist) enforces it."""

    __tablename__ = "tariff_plans"
    __table_args__ = (
        UniqueConstraint("code", "version", name="uq_tariff_plans_code_version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from", name="effective_period_ordered"
        ),
        CheckConstraint("utility IN ('heating', 'gas', 'electricity')", name="utility"),
        CheckConstraint("customer_class IN ('residential', 'non_residential')", name="customer_class"),
        Index("ix_tariff_plans_class", "utility", "customer_class", "effective_from"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    utility: Mapped[str] = mapped_column(String(20))
    customer_class: Mapped[str] = mapped_column(String(20))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    plan: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the domain TariffPlan with this one version
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BillingAccount(Base):
    """What billing knows of an account, kept from ``customer.events`` (the customer service owns it)."""

    __tablename__ = "billing_accounts"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
        CheckConstraint("household_size >= 1", name="household_size_positive"),
    )

    account_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    utility: Mapped[str] = mapped_column(String(20))
    customer_class: Mapped[str] = mapped_column(String(20))
    household_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    heated_area_m2: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    district: Mapped[str | None] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# ---- bills and receivables
# Bills are immutable once issued (a trigger refuses UPDATE and DELETE on ``bills``); what changes as money
# arrives lives beside them: ``receivables`` (what each bill or debit note is still owed), ``postings`` (its
# settlement timeline, the domain's ``Posting``), ``account_balances`` (the prepaid balance 预存).


class BillingRun(Base):
    """One billing run: a cycle, a tariff plan and a selection of accounts, processed in chunks of accounts
    in account-number order. ``cursor`` is the last account number done: a crashed run resumes after it.
    Each chunk commits its bills, their events and the cursor together, under a lock on this row."""

    __tablename__ = "billing_runs"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'running', 'completed', 'failed')", name="status"),
        CheckConstraint("period_end > period_start", name="period_ordered"),
        CheckConstraint("due_date >= issue_date", name="due_after_issue"),
        Index("ix_billing_runs_status", "status", "created_at"),
        Index("ix_billing_runs_cycle", "cycle", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    cycle: Mapped[str] = mapped_column(String(12))
    tariff_plan_code: Mapped[str] = mapped_column(String(80))
    utility: Mapped[str] = mapped_column(String(20))
    customer_class: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # excluded
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    selection: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    cursor: Mapped[str | None] = mapped_column(String(20))
    accounts_seen: Mapped[int] = mapped_column(Integer, default=0)
    bills_issued: Mapped[int] = mapped_column(Integer, default=0)
    billed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    failure: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Bill(Base):
    """An issued bill, credit note or debit note: numbered, immutable (trigger ``bills_immutable``).
    ``lines`` are the tariff engine's lines (tier breakdown, quantities, unit prices, fen amounts); a note
    points at the bill it corrects. ``late_fee_policy`` is the rule in force when it was issued: changing
    the configured rate later never reprices an issued bill."""

    __tablename__ = "bills"
    __table_args__ = (
        CheckConstraint("kind IN ('bill', 'credit_note', 'debit_note')", name="kind"),
        CheckConstraint("total_fen >= 0", name="total_non_negative"),
        CheckConstraint(
            "kind <> 'credit_note' OR original_bill_no IS NOT NULL", name="credit_note_has_original"
        ),
        CheckConstraint("kind <> 'bill' OR cycle IS NOT NULL", name="bill_has_cycle"),
        Index(
            "uq_bills_account_cycle",
            "account_no",
            "cycle",
            unique=True,
            postgresql_where=text("kind = 'bill'"),
        ),
        Index("ix_bills_account_issued", "account_no", "issue_date", "bill_no"),
        Index("ix_bills_original", "original_bill_no", postgresql_where=text("original_bill_no IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    bill_no: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    account_no: Mapped[str] = mapped_column(String(20))
    cycle: Mapped[str | None] = mapped_column(String(12))
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    original_bill_no: Mapped[str | None] = mapped_column(String(40))
    utility: Mapped[str] = mapped_column(String(20))
    tariff_plan_code: Mapped[str | None] = mapped_column(String(80))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    total_fen: Mapped[int] = mapped_column(BigInteger)
    volume: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    year_to_date_before: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    year_to_date_after: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    late_fee_policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Receivable(Base):
    """What a bill or debit note is still owed: its principal and its postings' totals (``postings`` has
    the timeline). ``status`` is ``settled`` once principal and the late fee at the last posting are paid."""

    __tablename__ = "receivables"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'settled')", name="status"),
        CheckConstraint("principal_fen >= 0", name="principal_non_negative"),
        CheckConstraint("principal_paid_fen BETWEEN 0 AND principal_fen", name="paid_within_principal"),
        CheckConstraint("late_fee_credited_fen >= 0", name="late_fee_credited_non_negative"),
        # Full indexes, not partial ones on status = 'open': a prepared statement's generic plan binds the
        # status as a parameter and cannot use a partial index (it scanned every receivable instead).
        Index("ix_receivables_account_status", "account_no", "status", "due_at"),
        Index("ix_receivables_status_due", "status", "due_at"),
    )

    bill_no: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_no: Mapped[str] = mapped_column(String(20))
    utility: Mapped[str] = mapped_column(String(20))
    principal_fen: Mapped[int] = mapped_column(BigInteger)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    principal_paid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    late_fee_credited_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # paid or waived
    late_fee_policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), default="open")
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_posting_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PostingRow(Base):
    """One application to a bill (the domain's ``Posting``): a payment, a prepaid draw, a credit note or a
    late-fee waiver, at an instant. ``ref`` is the payment id, ``prepaid:<bill_no>``, the note or waiver
    id; one ref is posted at most once per bill."""

    __tablename__ = "postings"
    __table_args__ = (
        UniqueConstraint("bill_no", "ref", name="uq_postings_bill_ref"),
        CheckConstraint("kind IN ('payment', 'prepaid', 'waiver', 'credit')", name="kind"),
        CheckConstraint("late_fee_fen >= 0 AND principal_fen >= 0", name="amounts_non_negative"),
        Index("ix_postings_ref", "ref"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    bill_no: Mapped[str] = mapped_column(String(40))
    account_no: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    late_fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    principal_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AccountBalance(Base):
    """An account's prepaid balance (预存), never negative; drawn by the next bills."""

    __tablename__ = "account_balances"
    __table_args__ = (CheckConstraint("prepaid_fen >= 0", name="prepaid_non_negative"),)

    account_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    prepaid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SettlementRow(Base):
    """One payment applied to an account (核销), keyed by the provider-facing payment id: a payment is
    applied once whatever event or delivery brings it. A reversal (refund) keeps the row, marked."""

    __tablename__ = "settlements"
    __table_args__ = (
        CheckConstraint("status IN ('settled', 'reversed')", name="status"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        Index("ix_settlements_account", "account_no", "paid_at"),
    )

    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_no: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str | None] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(20))
    allocations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    prepaid_before_fen: Mapped[int] = mapped_column(BigInteger)
    prepaid_added_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="settled")
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reversal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class LateFeeWaiverRow(Base):
    """Audit record of a late-fee waiver: who asked, who approved (with their roles), why, how much."""

    __tablename__ = "late_fee_waivers"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("requested_by <> approved_by", name="four_eyes"),
        Index("ix_late_fee_waivers_account", "account_no", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    bill_no: Mapped[str] = mapped_column(String(40))
    account_no: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    late_fee_before_fen: Mapped[int] = mapped_column(BigInteger)
    late_fee_after_fen: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str] = mapped_column(String(200))
    approver_roles: Mapped[list[str]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReminderRow(Base):
    """A reminder step recorded against an account: sent (with the channel's message id), skipped
    (superseded, never to be sent) or failed. One row per bill and step."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("bill_no", "step_code", name="uq_reminders_bill_step"),
        CheckConstraint("status IN ('sent', 'skipped', 'failed')", name="status"),
        Index("ix_reminders_account", "account_no", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_no: Mapped[str] = mapped_column(String(20))
    bill_no: Mapped[str] = mapped_column(String(40))
    step_code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str | None] = mapped_column(Text)
    fire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


# ---- readings and telemetry
# Meter readings (抄表读数), the review queue, estimates and true-ups, and heating telemetry (供热温度).

READING_SOURCES = ("manual", "remote_batch", "iot_gateway", "self_reported", "estimated", "installation")
READING_STATUSES = ("accepted", "pending_review", "rejected")


class Meter(TimestampMixin, Base):
    """A meter as the customer service installed it (``customer.meter.installed`` / ``.replaced`` and the
    ``meters`` of ``customer.account.opened``), plus what billing needs for rollover: the register's
    integer ``digits`` (configuration per meter kind, widened to hold the initial reading). A replaced meter
    keeps its final reading, the instant of the change (``removed_at``) and its successor."""

    __tablename__ = "meters"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'removed')", name="status"),
        CheckConstraint("multiplier > 0", name="multiplier_positive"),
        CheckConstraint("digits BETWEEN 1 AND 15", name="digits_range"),
        Index("ix_meters_account_no", "account_no"),
        Index("ix_meters_serial_no", "serial_no"),
    )

    meter_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_no: Mapped[str] = mapped_column(String(20))
    serial_no: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    reading_mode: Mapped[str] = mapped_column(String(10))
    digits: Mapped[int] = mapped_column(Integer)
    installed_on: Mapped[date] = mapped_column(Date)
    initial_reading: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    status: Mapped[str] = mapped_column(String(10), default="active")
    removed_on: Mapped[date | None] = mapped_column(Date)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    final_reading: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MeterReadingRow(TimestampMixin, Base):
    """One reading. ``accepted`` readings are *billable*; they are appended to an account in strictly
    increasing ``read_at`` order, each with its ``volume`` from the previous billable reading
    (``previous_reading_id``): register consumption × multiplier, by the domain's rules (rollover, meter
    replacement), an estimate's consumption, or a true-up's correction (may be negative). A billing period's
    volume is the sum of the volumes of the billable readings inside it."""

    __tablename__ = "meter_readings"
    __table_args__ = (
        UniqueConstraint("external_id", name="uq_meter_readings_external_id"),
        CheckConstraint(
            "source IN ('manual', 'remote_batch', 'iot_gateway', 'self_reported', 'estimated', "
            "'installation')",
            name="source",
        ),
        CheckConstraint("status IN ('accepted', 'pending_review', 'rejected')", name="status"),
        CheckConstraint("source <> 'self_reported' OR photo_ref IS NOT NULL", name="self_report_has_photo"),
        CheckConstraint("value >= 0", name="value_not_negative"),
        # Full indexes with the status, not partial ones: prepared statements' generic plans bind the
        # status as a parameter and could not use a partial index.
        Index("ix_meter_readings_billable", "account_no", "status", "read_at"),
        Index("ix_meter_readings_account_read_at", "account_no", "read_at", "id"),
        Index("ix_meter_readings_review", "status", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_no: Mapped[str] = mapped_column(String(20))
    meter_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("meters.meter_id"))
    meter_serial: Mapped[str] = mapped_column(String(40))
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    source: Mapped[str] = mapped_column(String(20))
    entered_by: Mapped[str] = mapped_column(String(200))
    photo_ref: Mapped[str | None] = mapped_column(String(500))
    external_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    kind: Mapped[str | None] = mapped_column(String(20))  # normal | rollover | replacement | true_up | ...
    consumption: Mapped[Decimal | None] = mapped_column(Numeric(16, 3))  # register units
    volume: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))  # billable delta × multiplier
    previous_reading_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # method, daily_rate, days, base
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review_note: Mapped[str | None] = mapped_column(String(500))


class ReadingTrueUp(TimestampMixin, Base):
    """估抄多退少补: recorded when an actual reading is accepted after one or more estimates."""

    __tablename__ = "reading_true_ups"
    __table_args__ = (
        UniqueConstraint("actual_reading_id", name="uq_reading_true_ups_actual_reading_id"),
        CheckConstraint("direction IN ('debit', 'credit', 'none')", name="direction"),
        Index("ix_reading_true_ups_account_no", "account_no"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_no: Mapped[str] = mapped_column(String(20))
    actual_reading_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("meter_readings.id"))
    estimate_reading_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    actual_consumption: Mapped[Decimal] = mapped_column(Numeric(16, 3))
    estimated_consumption: Mapped[Decimal] = mapped_column(Numeric(16, 3))
    correction: Mapped[Decimal] = mapped_column(Numeric(16, 3))
    correction_volume: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    direction: Mapped[str] = mapped_column(String(10))
    description_zh: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)


class AccountPremise(TimestampMixin, Base):
    """Which premise an account is at (from ``customer.account.opened``): heating telemetry is per premise."""

    __tablename__ = "account_premises"

    account_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    premise_id: Mapped[str] = mapped_column(String(80))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TelemetrySite(TimestampMixin, Base):
    """A premise (住户) or substation (换热站) with telemetry: its name, its own minimum return temperature
    (``NULL``: the service default) and, for a premise, the substation that serves it."""

    __tablename__ = "telemetry_sites"
    __table_args__ = (CheckConstraint("site_kind IN ('premise', 'substation')", name="site_kind"),)

    site_kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    min_return_c: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    substation_id: Mapped[str | None] = mapped_column(String(80))


class TelemetrySampleRow(TimestampMixin, Base):
    """One supply/return temperature sample; a re-sent sample (same site, device and time) is kept once."""

    __tablename__ = "telemetry_samples"
    __table_args__ = (
        UniqueConstraint(
            "site_kind", "site_id", "device_id", "measured_at", name="uq_telemetry_samples_site_device_time"
        ),
        CheckConstraint("site_kind IN ('premise', 'substation')", name="site_kind"),
        CheckConstraint("supply_c IS NOT NULL OR return_c IS NOT NULL", name="has_temperature"),
        Index("ix_telemetry_samples_site_time", "site_kind", "site_id", "measured_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    site_kind: Mapped[str] = mapped_column(String(20))
    site_id: Mapped[str] = mapped_column(String(80))
    device_id: Mapped[str] = mapped_column(String(80), default="")
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    supply_c: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    return_c: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
