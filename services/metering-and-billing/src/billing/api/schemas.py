"""Request and response models of the metering-and-billing API. Plans reuse the domain's component models,
so an API body is exactly what a seed file holds for one version. Money is ``{"amount_fen", "currency"}``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from billing.domain.tariff_plans import (
    Component,
    CustomerClass,
    NonNegativeDec,
    TierPriceAdjustment,
    TouBand,
    Utility,
    VolumeUnit,
)

PlanCode = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80, examples=["beijing-residential-gas-tiered"])
]


class Money(BaseModel):
    amount_fen: int
    currency: Literal["CNY"] = "CNY"


class TariffPlanCreate(BaseModel):
    """One version of a plan. The first version of a code creates the plan; a later one supersedes the
    latest version from ``effective_from`` (that version is closed on the day before)."""

    model_config = ConfigDict(extra="forbid")

    code: PlanCode
    name: str = Field(min_length=1, max_length=200, examples=["北京 居民 管道天然气 阶梯气价"])
    utility: Utility
    customer_class: CustomerClass
    region: str = Field("", max_length=100, examples=["北京市"])
    volume_unit: VolumeUnit | None = Field(None, examples=["m³"])
    effective_from: dt.date = Field(examples=["2027-01-01"])
    effective_to: dt.date | None = Field(None, description="last day in force (included); usually left open")
    note: str = Field("", max_length=500, description="e.g. the price bureau's document number")
    components: list[Component] = Field(min_length=1, max_length=20)
    tier_price_adjustments: list[TierPriceAdjustment] = Field(default_factory=list, max_length=50)
    expected_version: int | None = Field(
        None, ge=1, description="optional check: the version number this publication should get"
    )


class TariffPlanRead(BaseModel):
    code: str
    version: int
    name: str
    utility: str
    customer_class: str
    effective_from: dt.date
    effective_to: dt.date | None
    plan: dict[str, Any] = Field(description="the plan document of this version (one entry in versions)")
    created_by: str
    created_at: dt.datetime


class TariffPlanList(BaseModel):
    items: list[TariffPlanRead]


class QuoteRequest(BaseModel):
    """A period's usage to price (end excluded). With ``account_no``, the account's household size, heated
    area and suspension are used unless given here, and the plan must be for the account's utility and
    class. Volumes are given to 0.001 at most, as strings or integers."""

    model_config = ConfigDict(extra="forbid")

    period_start: dt.date = Field(examples=["2026-06-01"])
    period_end: dt.date = Field(examples=["2026-08-01"], description="excluded")
    volume: NonNegativeDec | None = Field(None, examples=["120"])
    tou_volumes: dict[TouBand, NonNegativeDec] | None = None
    year_to_date_volume: NonNegativeDec = Field(
        Decimal(0), description="the tier year's total before the period"
    )
    household_members: int | None = Field(None, ge=1, le=50)
    heated_area_m2: NonNegativeDec | None = Field(None, examples=["89.50"])
    suspended: bool | None = None
    account_no: str | None = Field(None, pattern=r"^[0-9A-Z]{6,20}$")


class QuoteLine(BaseModel):
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Money
    period_start: dt.date
    period_end: dt.date
    plan_version: int
    tier: int | None = None
    band: str | None = None
    season: str | None = None
    share: Decimal
    days: int | None = None
    of_days: int | None = None


class QuoteRead(BaseModel):
    code: str
    name: str
    utility: str
    customer_class: str
    volume_unit: str | None
    account_no: str | None
    period_start: dt.date
    period_end: dt.date
    lines: list[QuoteLine]
    total: Money
    year_to_date_volume_after: Decimal


# ---- billing runs, bills, notes, waivers, lookups
AccountNo = Annotated[str, Field(pattern=r"^[0-9]{6,20}$", examples=["31000000017"])]


class Selection(BaseModel):
    """Which accounts a run bills: all of the plan's utility and class, one district, or a list."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["all", "district", "accounts"]
    district: str | None = Field(None, max_length=50, examples=["南岗区"])
    account_nos: list[AccountNo] | None = Field(None, max_length=10_000)


class BillingRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cycle: str = Field(pattern=r"^[0-9]{4}[0-9A-Z]{1,8}$", examples=["2026S", "202611"])
    tariff_plan_code: PlanCode
    period_start: dt.date = Field(examples=["2026-10-20"])
    period_end: dt.date = Field(description="excluded", examples=["2027-04-21"])
    issue_date: dt.date = Field(examples=["2026-10-01"])
    due_date: dt.date = Field(examples=["2026-10-19"])
    selection: Selection = Field(default_factory=lambda: Selection(kind="all"))


class BillingRunRead(BaseModel):
    id: str
    cycle: str
    tariff_plan_code: str
    utility: str
    customer_class: str
    period_start: dt.date
    period_end: dt.date
    issue_date: dt.date
    due_date: dt.date
    selection: dict[str, Any]
    status: Literal["pending", "running", "completed", "failed"]
    cursor: str | None
    accounts_seen: int
    bills_issued: int
    billed: Money
    skipped: dict[str, int]
    requested_by: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    created_at: dt.datetime


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_fen: int = Field(gt=0, le=100_000_000_00, examples=[12000])
    reason: str = Field(min_length=2, max_length=500, examples=["面积核定有误，按 86.2 m² 重算，退还差额"])
    due_date: dt.date | None = Field(None, description="debit notes only; default: 15 days after issue")


class WaiverCreate(BaseModel):
    """The approver is the caller (``billing_supervisor``); ``requested_by`` is who asked for it."""

    model_config = ConfigDict(extra="forbid")

    requested_by: str = Field(min_length=1, max_length=200, examples=["billing01"])
    reason: str = Field(min_length=2, max_length=500, examples=["低保户，经审批减免滞纳金"])
    amount_fen: int | None = Field(None, gt=0, description="default: all of the late fee outstanding now")


class WaiverRead(BaseModel):
    id: str
    bill_no: str
    account_no: str
    at: dt.datetime
    amount: Money
    late_fee_before: Money
    late_fee_after: Money
    requested_by: str
    approved_by: str
    reason: str


class OpenBillDue(BaseModel):
    bill_no: str
    kind: str
    due_date: dt.date
    overdue: bool
    principal_due: Money
    late_fee: Money
    amount_due: Money


class BalanceRead(BaseModel):
    """What the account owes now: the late fee is accrued to ``as_of`` (to the second)."""

    account_no: str
    as_of: dt.datetime
    amount_due: Money
    principal_due: Money
    late_fee: Money
    prepaid_balance: Money
    open_bills: list[OpenBillDue]


class BillHeader(BaseModel):
    bill_no: str
    kind: Literal["bill", "credit_note", "debit_note"]
    cycle: str | None
    original_bill_no: str | None
    period_start: dt.date | None
    period_end: dt.date | None
    issue_date: dt.date
    due_date: dt.date
    total: Money
    volume: str | None
    estimated: bool
    status: Literal["paid", "unpaid", "credit"]
    settled_at: dt.datetime | None


class BillList(BaseModel):
    items: list[BillHeader]
    next_cursor: str | None


class BillLineRead(BaseModel):
    kind: str
    description: str
    quantity: str
    unit: str
    unit_price: str
    amount: Money
    tier: int | None = None


class PostingRead(BaseModel):
    ref: str
    kind: str
    at: dt.datetime
    principal: Money
    late_fee: Money


class BillDetail(BillHeader):
    account_no: str
    utility: str
    tariff_plan_code: str | None
    reason: str | None
    lines: list[BillLineRead]
    principal_paid: Money
    late_fee_credited: Money
    postings: list[PostingRead]


class UsagePeriod(BaseModel):
    cycle: str | None
    period_start: dt.date | None
    period_end: dt.date | None
    volume: str | None
    total: Money


class UsageHistory(BaseModel):
    account_no: str
    periods: list[UsagePeriod]
