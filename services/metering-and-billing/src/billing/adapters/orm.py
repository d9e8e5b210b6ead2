"""The metering-and-billing service's tables (database ``metering_and_billing``). Only this service reads
or writes them. Money columns (bills, receivables: later) are ``BIGINT`` fen."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from utilis_shared.db import make_metadata
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
