"""The customer service's tables (database ``customer``). Only this service reads or writes them.

Personal data columns come in threes: ``*_enc`` (AES-GCM ciphertext with key id), ``*_bidx`` (keyed HMAC
blind index for exact search) and ``*_masked`` (what responses show by default, kept so that listing
customers needs no decryption).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from utilis_shared.db import TimestampMixin, make_metadata
from utilis_shared.ids import new_id


class Base(DeclarativeBase):
    metadata = make_metadata()


account_no_seq = Sequence("account_no_seq", metadata=Base.metadata, start=1)
customer_no_seq = Sequence("customer_no_seq", metadata=Base.metadata, start=1)


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_no: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # person | organisation
    name: Mapped[str] = mapped_column(String(200))
    id_type: Mapped[str | None] = mapped_column(String(20))
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    id_number_bidx: Mapped[str | None] = mapped_column(String(64))
    id_number_masked: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | merged
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("customers.id"))
    source: Mapped[str] = mapped_column(String(20), default="api")  # api | import | demo
    version: Mapped[int] = mapped_column(Integer, default=1)

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="customer",
        lazy="raise",
        order_by="(Contact.created_at, Contact.id)",  # the view document's order too (a total order)
        cascade="all, delete-orphan",
    )
    accounts: Mapped[list[Account]] = relationship(
        back_populates="customer", lazy="raise", order_by="Account.account_no"
    )
    tags: Mapped[list[CustomerTagRow]] = relationship(
        lazy="raise", order_by="CustomerTagRow.tag", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
    __table_args__ = (
        CheckConstraint("kind IN ('person', 'organisation')", name="kind"),
        CheckConstraint("status IN ('active', 'merged')", name="status"),
        # One active customer per identity document: imports and registrations reuse, never duplicate.
        Index(
            "uq_customers_id_number_bidx_active",
            "id_number_bidx",
            unique=True,
            postgresql_where=text("status = 'active' AND id_number_bidx IS NOT NULL"),
        ),
        Index(
            "ix_customers_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}
        ),
    )


class Contact(TimestampMixin, Base):
    __tablename__ = "customer_contacts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # mobile | landline
    label: Mapped[str | None] = mapped_column(String(40))  # 本人 / 子女 / 紧急联系人
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_bidx: Mapped[str] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str] = mapped_column(String(20))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship(back_populates="contacts", lazy="raise")
    __table_args__ = (UniqueConstraint("customer_id", "phone_bidx"),)


class Premise(TimestampMixin, Base):
    __tablename__ = "premises"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    district: Mapped[str] = mapped_column(String(50))  # 区
    community: Mapped[str] = mapped_column(String(100))  # 小区
    building: Mapped[str] = mapped_column(String(20))  # 楼/栋
    unit: Mapped[str] = mapped_column(String(20))  # 单元
    room: Mapped[str] = mapped_column(String(20))  # 室
    address: Mapped[str] = mapped_column(String(300))  # the readable one-line form
    address_key: Mapped[str] = mapped_column(String(300), unique=True)
    heated_area_m2: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    property_cert_no: Mapped[str | None] = mapped_column(String(60), index=True)
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
    __table_args__ = (
        CheckConstraint(
            "heated_area_m2 IS NULL OR (heated_area_m2 > 0 AND heated_area_m2 < 100000)", name="area_range"
        ),
        Index(
            "ix_premises_address_trgm",
            "address",
            postgresql_using="gin",
            postgresql_ops={"address": "gin_trgm_ops"},
        ),
    )


class Account(TimestampMixin, Base):
    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_no: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    premise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("premises.id"), index=True)
    utility: Mapped[str] = mapped_column(String(20))
    customer_class: Mapped[str] = mapped_column(String(20), default="residential")  # tariff class
    household_size: Mapped[int] = mapped_column(Integer, default=3)  # wider tiers for larger households
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(200))
    opened_on: Mapped[date] = mapped_column(Date)  # business dates are Asia/Shanghai
    suspended_since: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)

    customer: Mapped[Customer] = relationship(back_populates="accounts", lazy="raise")
    premise: Mapped[Premise] = relationship(lazy="raise")
    meters: Mapped[list[Meter]] = relationship(
        back_populates="account", lazy="raise", order_by="Meter.installed_on"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
    __table_args__ = (
        CheckConstraint("utility IN ('heating', 'gas', 'electricity')", name="utility"),
        CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
        CheckConstraint("customer_class IN ('residential', 'non_residential')", name="customer_class"),
        CheckConstraint("household_size BETWEEN 1 AND 20", name="household_size"),
        # One live account per utility at a premise.
        Index(
            "uq_accounts_premise_utility_live",
            "premise_id",
            "utility",
            unique=True,
            postgresql_where=text("status <> 'closed'"),
        ),
    )


class Meter(TimestampMixin, Base):
    __tablename__ = "meters"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    serial_no: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # heat | gas | electricity
    multiplier: Mapped[Decimal] = mapped_column(Numeric(10, 3), default=Decimal("1"))
    reading_mode: Mapped[str] = mapped_column(String(10))  # remote | manual
    installed_on: Mapped[date] = mapped_column(Date)
    initial_reading: Mapped[Decimal] = mapped_column(Numeric(14, 3), default=Decimal("0"))
    removed_on: Mapped[date | None] = mapped_column(Date)
    final_reading: Mapped[Decimal | None] = mapped_column(Numeric(14, 3))
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("meters.id"))
    status: Mapped[str] = mapped_column(String(20), default="installed")  # installed | removed

    account: Mapped[Account] = relationship(back_populates="meters", lazy="raise")
    __table_args__ = (
        CheckConstraint("reading_mode IN ('remote', 'manual')", name="reading_mode"),
        CheckConstraint("multiplier > 0", name="multiplier"),
        Index(
            "uq_meters_serial_installed",
            "serial_no",
            unique=True,
            postgresql_where=text("status = 'installed'"),
        ),
    )


class CustomerTagRow(Base):
    __tablename__ = "customer_tags"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(200))


class AuditEntry(Base):
    """Who did what, when, to which record, with before/after (personal data masked), and staff reads."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    actor: Mapped[str] = mapped_column(String(200))
    actor_kind: Mapped[str] = mapped_column(String(20))
    on_behalf_of: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(80))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id", "occurred_at"),)


class DuplicateFlag(TimestampMixin, Base):
    __tablename__ = "duplicate_flags"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    duplicate_of_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    reason: Mapped[str] = mapped_column(String(60))  # same_phone_and_property_cert
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | merged | dismissed
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("customer_id", "duplicate_of_id", "reason"),)


class AccountProjection(Base):
    """What other services report about an account, kept locally from their events (the 360° view).

    One row per (account, view, item): ``bill`` rows keyed by bill number, one ``balance`` row, recent
    ``payment`` rows, open ``work_order`` rows, the last ``inspection``. An update older than the stored
    row (by event time) is ignored, so a late or replayed event cannot roll the view back.
    """

    __tablename__ = "account_projections"

    account_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    view: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(80), primary_key=True, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
