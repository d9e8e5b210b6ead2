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
