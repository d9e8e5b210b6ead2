"""The tables of bank withholding (代扣) and of the counter's receipts (database ``payment``, the same
``Base`` as :mod:`payment.adapters.orm`). Money columns are ``BIGINT`` fen; instants UTC; business days
Asia/Shanghai.

* ``withholding_mandates``: an account's signed authorisation (代扣协议) with a bank. The bank account
  number is personal data: stored encrypted (``utilis_shared.pii.PiiCipher``, field ``bank_account``),
  with a blind index (equality without decrypting) and the masked form every response, file and log shows.
  One active mandate per account.
* ``withholding_batches``: one batch per bank and business day (the request file we send, its sha256; the
  bank's result file once applied, its sha256: the same file again is a no-op).
* ``withholding_items``: one line of a batch: the payment order created for it and what the bank said.
* ``counter_receipts``: what the cashier took for a counter order (cash or POS, the terminal's
  reference), in which shift, on which business day: the shift report's rows.
* ``counter_handovers``: a cashier's hand-over of a shift (交班): what the receipts say was taken, the cash
  counted, the difference; one per cashier and shift, after which the shift takes no more receipts.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

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
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from payment.adapters.orm import Base
from utilis_shared.db import TimestampMixin
from utilis_shared.ids import new_id


class WithholdingMandate(TimestampMixin, Base):
    __tablename__ = "withholding_mandates"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'revoked')", name="status"),
        CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name="revoked_at"),
        Index(
            "uq_withholding_mandates_active_account",
            "account_no",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_withholding_mandates_bank_active", "bank_code", "account_no"),
        Index("ix_withholding_mandates_bank_account_bidx", "bank_account_bidx"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_no: Mapped[str] = mapped_column(String(20))
    bank_code: Mapped[str] = mapped_column(String(20))
    bank_account_enc: Mapped[str] = mapped_column(Text)  # PiiCipher token, field "bank_account"
    bank_account_bidx: Mapped[str] = mapped_column(String(64))
    bank_account_masked: Mapped[str] = mapped_column(String(40))
    agreement_no: Mapped[str | None] = mapped_column(String(40))  # the bank's 协议号, when it gives one
    signed_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)


class WithholdingBatch(TimestampMixin, Base):
    __tablename__ = "withholding_batches"
    __table_args__ = (
        CheckConstraint("status IN ('requested', 'completed')", name="status"),
        CheckConstraint("item_count > 0 AND total_fen > 0", name="not_empty"),
        CheckConstraint("(status = 'completed') = (result_sha256 IS NOT NULL)", name="result"),
        UniqueConstraint("batch_no", name="uq_withholding_batches_batch_no"),
        UniqueConstraint("bank_code", "business_day", name="uq_withholding_batches_bank_day"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    batch_no: Mapped[str] = mapped_column(String(32))
    bank_code: Mapped[str] = mapped_column(String(20))
    business_day: Mapped[date] = mapped_column(Date)
    merchant_no: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="requested")
    item_count: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    request_sha256: Mapped[str] = mapped_column(String(64))
    request_file: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the file's header time
    # when the scheduler wrote the request file into the exchange directory (never again after that)
    request_handed_over_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    result_file: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the bank's time
    result_applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_applied_by: Mapped[str | None] = mapped_column(String(200))
    succeeded_count: Mapped[int] = mapped_column(Integer, default=0)
    succeeded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)


class WithholdingItem(TimestampMixin, Base):
    __tablename__ = "withholding_items"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status <> 'failed' OR failure_code IS NOT NULL", name="failure_has_code"),
        UniqueConstraint("order_no", name="uq_withholding_items_order_no"),
        UniqueConstraint("batch_id", "seq", name="uq_withholding_items_batch_seq"),
        Index("ix_withholding_items_account", "account_no"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    batch_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("withholding_batches.id"))
    seq: Mapped[int] = mapped_column(Integer)
    order_no: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str] = mapped_column(String(20))
    mandate_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("withholding_mandates.id"))
    bank_account_masked: Mapped[str] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    bank_serial_no: Mapped[str | None] = mapped_column(String(64))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(20))  # what applying the bank's line did
    result_line: Mapped[int | None] = mapped_column(Integer)


class CounterReceiptRow(TimestampMixin, Base):
    __tablename__ = "counter_receipts"
    __table_args__ = (
        CheckConstraint("method IS NULL OR method IN ('cash', 'pos')", name="method"),
        CheckConstraint("method IS DISTINCT FROM 'pos' OR pos_reference IS NOT NULL", name="pos_reference"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        UniqueConstraint("order_no", name="uq_counter_receipts_order_no"),
        Index("ix_counter_receipts_shift", "shift_id", "cashier"),
        Index("ix_counter_receipts_day", "business_day", "cashier"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    order_no: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    # cash | pos; NULL when the cashier did not say (receipts taken before the method was recorded)
    method: Mapped[str | None] = mapped_column(String(10))
    pos_reference: Mapped[str | None] = mapped_column(String(64))
    cashier: Mapped[str] = mapped_column(String(200))
    shift_id: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    business_day: Mapped[date] = mapped_column(Date)


class CounterHandover(TimestampMixin, Base):
    __tablename__ = "counter_handovers"
    __table_args__ = (
        UniqueConstraint("shift_id", "cashier", name="uq_counter_handovers_shift_cashier"),
        CheckConstraint("counted_cash_fen >= 0", name="counted_cash_non_negative"),
        CheckConstraint("difference_fen = counted_cash_fen - cash_fen", name="difference"),
        Index("ix_counter_handovers_day", "business_day"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    shift_id: Mapped[str] = mapped_column(String(40))
    cashier: Mapped[str] = mapped_column(String(200))
    handed_over_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    business_day: Mapped[date] = mapped_column(Date)
    # what the shift's receipts say was taken (fen), and how many
    receipts_count: Mapped[int] = mapped_column(Integer)
    cash_fen: Mapped[int] = mapped_column(BigInteger)
    pos_fen: Mapped[int] = mapped_column(BigInteger)
    unspecified_fen: Mapped[int] = mapped_column(BigInteger)
    # the cash in the drawer, counted by the cashier; counted - receipts' cash (negative: short)
    counted_cash_fen: Mapped[int] = mapped_column(BigInteger)
    difference_fen: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))
