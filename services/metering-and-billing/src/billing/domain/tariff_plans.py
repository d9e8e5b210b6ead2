"""Tariff plans as data: versioned price plans per utility and customer class.

A plan (``TariffPlan``) is what a price bureau publishes for one utility and one customer class, e.g.
"哈尔滨 居民 按面积计收采暖费". It carries a list of versions (``TariffVersion``), each with the date from
which it applies (a version applies from its ``effective_from`` until the next version's) and the charge
components that make up a bill under it:

- ``tiered_volume``   阶梯: prices by the annual cumulative volume, with the tier year's start date and an
                      optional per-household widening of the tiers;
- ``volume``          one price per unit (e.g. the metered part of two-part heating, per GJ);
- ``seasonal_volume`` one price per unit that depends on the month (e.g. 淡季/旺季 gas, 夏季/非夏季 power);
- ``time_of_use``     prices per time-of-use band (尖峰/峰/平/谷), volumes reported per band;
- ``area_season``     a price per m² for a whole heating season, prorated by days, with the share of it a
                      suspended (报停) premise pays; used alone (heating by area) or as the basic part of
                      two-part heating together with a ``volume`` component;
- ``fixed_monthly``   a fixed fee per calendar month, prorated by days.

A plan also carries the coefficients a regulator sets on tier prices for a period
(``TierPriceAdjustment``); they apply to the ``tiered_volume`` components of whichever version is in force.

Plans are loaded from JSON (the seed files under ``seeds/tariffs/``) or an API body with
``TariffPlan.model_validate_json``. Prices and quantities are written as strings (``"2.60"``) or integers:
a float is refused, so no binary fraction ever enters a price. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _refuse_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("prices and quantities are written as strings or integers, never as floats")
    return value


#: A Decimal that refuses floats (JSON numbers with a fraction, Python floats).
Dec = Annotated[Decimal, BeforeValidator(_refuse_float), Field(allow_inf_nan=False)]
NonNegativeDec = Annotated[Decimal, BeforeValidator(_refuse_float), Field(ge=0, allow_inf_nan=False)]
Share = Annotated[Decimal, BeforeValidator(_refuse_float), Field(ge=0, le=1, allow_inf_nan=False)]


def _check_month_day(value: str) -> str:
    try:
        dt.date.fromisoformat(f"2001-{value}")  # a common year: 02-29 is refused
    except ValueError as exc:
        raise ValueError(f"expected a month and day as MM-DD (not 02-29), got {value!r}") from exc
    return value


#: A day of the year as ``MM-DD`` (e.g. the tier year's start ``01-01``, a heating season's ``10-20``).
MonthDay = Annotated[str, Field(pattern=r"^\d{2}-\d{2}$"), AfterValidator(_check_month_day)]


def month_day_in(year: int, month_day: str) -> dt.date:
    """The date of ``month_day`` (``MM-DD``) in ``year``."""
    month, day = month_day.split("-")
    return dt.date(year, int(month), int(day))


class Utility(StrEnum):
    HEATING = "heating"
    GAS = "gas"
    ELECTRICITY = "electricity"


class CustomerClass(StrEnum):
    RESIDENTIAL = "residential"
    NON_RESIDENTIAL = "non_residential"


class VolumeUnit(StrEnum):
    CUBIC_METRE = "m³"
    KWH = "kWh"
    GJ = "GJ"


class TouBand(StrEnum):
    SHARP = "sharp"
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"


TOU_BAND_NAMES: dict[TouBand, str] = {
    TouBand.SHARP: "尖峰",
    TouBand.PEAK: "峰段",
    TouBand.FLAT: "平段",
    TouBand.VALLEY: "谷段",
}


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tier(FrozenModel):
    """One tier: ``up_to`` is the upper bound of the annual cumulative volume (``None`` for the last)."""

    up_to: NonNegativeDec | None = None
    price: NonNegativeDec


class HouseholdWidening(FrozenModel):
    """Households with more than ``base_members`` members get wider tiers: each bounded tier's width grows
    by ``per_extra_member[i]`` for every member above ``base_members`` (e.g. base 4: a household of 5 or more
    gets the widening, 6 members count twice)."""

    base_members: int = Field(4, ge=1)
    per_extra_member: tuple[NonNegativeDec, ...]


class TieredVolumeCharge(FrozenModel):
    """阶梯: the year's running total decides the tier; the total restarts at ``tier_year_starts_on``."""

    kind: Literal["tiered_volume"] = "tiered_volume"
    label: str = ""  # appended to "第二阶梯", e.g. "加价" for a surcharge on top of time-of-use prices
    tiers: tuple[Tier, ...] = Field(min_length=1)
    tier_year_starts_on: MonthDay = "01-01"
    household_widening: HouseholdWidening | None = None

    @model_validator(mode="after")
    def _tiers_are_ordered(self) -> TieredVolumeCharge:
        *bounded, last = self.tiers
        if last.up_to is not None:
            raise ValueError("the last tier has no upper bound (up_to: null)")
        previous = Decimal(0)
        for tier in bounded:
            if tier.up_to is None or tier.up_to <= previous:
                raise ValueError("tier upper bounds must be given and strictly increasing")
            previous = tier.up_to
        if self.household_widening and len(self.household_widening.per_extra_member) != len(bounded):
            raise ValueError("household_widening.per_extra_member needs one width per bounded tier")
        return self

    def upper_bounds(self, household_members: int | None) -> list[Decimal]:
        """The bounded tiers' upper bounds for a household of that size (widths widened when configured)."""
        widening = self.household_widening
        extra = 0
        if widening is not None and household_members is not None:
            extra = max(0, household_members - widening.base_members)
        bounds: list[Decimal] = []
        lower = Decimal(0)
        previous_bound = Decimal(0)
        for index, tier in enumerate(self.tiers[:-1]):
            assert tier.up_to is not None  # checked by the validator
            width = tier.up_to - previous_bound
            previous_bound = tier.up_to
            if extra and widening is not None:
                width += widening.per_extra_member[index] * extra
            lower += width
            bounds.append(lower)
        return bounds


class VolumeCharge(FrozenModel):
    """One price per unit of volume (e.g. 计量热费 per GJ in two-part heating)."""

    kind: Literal["volume"] = "volume"
    label: str = "用量费"
    price: NonNegativeDec


class SeasonPrice(FrozenModel):
    name: str  # shown to the customer, e.g. "旺季"
    months: tuple[int, ...] = Field(min_length=1)
    price: NonNegativeDec


class SeasonalVolumeCharge(FrozenModel):
    """A price per unit by month of the year; the seasons cover the twelve months exactly once."""

    kind: Literal["seasonal_volume"] = "seasonal_volume"
    label: str = "用量费"
    seasons: tuple[SeasonPrice, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _months_covered_once(self) -> SeasonalVolumeCharge:
        months = sorted(m for season in self.seasons for m in season.months)
        if months != list(range(1, 13)):
            raise ValueError("the seasons must cover the months 1-12, each exactly once")
        return self

    def season_for(self, month: int) -> SeasonPrice:
        return next(season for season in self.seasons if month in season.months)


class TimeOfUseCharge(FrozenModel):
    """Prices per time-of-use band; the usage reports a volume per band."""

    kind: Literal["time_of_use"] = "time_of_use"
    label: str = "电度电费"
    prices: dict[TouBand, NonNegativeDec] = Field(min_length=1)


class AreaSeasonCharge(FrozenModel):
    """A price per m² of heated area for a whole heating season (``season_starts_on`` to ``season_ends_on``,
    both days included), prorated by the days of the season a bill covers. A suspended premise pays
    ``suspension_share`` of it (1 = no reduction)."""

    kind: Literal["area_season"] = "area_season"
    label: str = "采暖费"
    price_per_m2: NonNegativeDec
    season_starts_on: MonthDay
    season_ends_on: MonthDay
    suspension_share: Share = Decimal(1)

    def seasons_overlapping(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        """The seasons (first day, day after the last) that overlap ``[start, end)``."""
        seasons = []
        wraps = self.season_ends_on < self.season_starts_on  # e.g. 10-20 .. 04-20 of the next year
        for year in range(start.year - 1, end.year + 1):
            first = month_day_in(year, self.season_starts_on)
            last = month_day_in(year + 1 if wraps else year, self.season_ends_on)
            after = last + dt.timedelta(days=1)
            if first < end and start < after:
                seasons.append((first, after))
        return seasons


class FixedMonthlyFee(FrozenModel):
    """A fixed fee per calendar month, prorated by days for part of a month. A suspended premise pays
    ``suspension_share`` of it."""

    kind: Literal["fixed_monthly"] = "fixed_monthly"
    label: str = "固定月费"
    fee: NonNegativeDec
    suspension_share: Share = Decimal(1)


Component = Annotated[
    TieredVolumeCharge
    | VolumeCharge
    | SeasonalVolumeCharge
    | TimeOfUseCharge
    | AreaSeasonCharge
    | FixedMonthlyFee,
    Field(discriminator="kind"),
]

_VOLUME_KINDS = frozenset({"tiered_volume", "volume", "seasonal_volume", "time_of_use"})


class TariffVersion(FrozenModel):
    version: int = Field(ge=1)
    effective_from: dt.date
    note: str = ""  # e.g. the price bureau's document number
    components: tuple[Component, ...] = Field(min_length=1)


class TierPriceAdjustment(FrozenModel):
    """A coefficient a regulator sets on tier prices from ``valid_from`` until ``valid_until`` (excluded;
    ``None``: until further notice), on the listed tiers (1-based; ``None``: all). Coefficients that
    overlap multiply."""

    valid_from: dt.date
    valid_until: dt.date | None = None
    coefficient: Annotated[Decimal, BeforeValidator(_refuse_float), Field(gt=0, allow_inf_nan=False)]
    tiers: tuple[int, ...] | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _period_is_ordered(self) -> TierPriceAdjustment:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.tiers is not None and any(t < 1 for t in self.tiers):
            raise ValueError("tiers are numbered from 1")
        return self

    def applies(self, day: dt.date, tier: int) -> bool:
        in_period = self.valid_from <= day and (self.valid_until is None or day < self.valid_until)
        return in_period and (self.tiers is None or tier in self.tiers)


class TariffPlan(FrozenModel):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    utility: Utility
    customer_class: CustomerClass
    region: str = ""
    volume_unit: VolumeUnit | None = None
    versions: tuple[TariffVersion, ...] = Field(min_length=1)
    tier_price_adjustments: tuple[TierPriceAdjustment, ...] = ()

    @model_validator(mode="after")
    def _versions_are_ordered(self) -> TariffPlan:
        dates = [v.effective_from for v in self.versions]
        if any(b <= a for a, b in pairwise(dates)):
            raise ValueError("versions must be listed by strictly increasing effective_from")
        numbers = [v.version for v in self.versions]
        if len(set(numbers)) != len(numbers):
            raise ValueError("version numbers must be unique")
        uses_volume = any(c.kind in _VOLUME_KINDS for v in self.versions for c in v.components)
        if uses_volume and self.volume_unit is None:
            raise ValueError("a plan with volume charges needs its volume_unit")
        return self

    def version_on(self, day: dt.date) -> TariffVersion:
        """The version in force on ``day``."""
        in_force = [v for v in self.versions if v.effective_from <= day]
        if not in_force:
            raise ValueError(f"plan {self.code} has no version in force on {day.isoformat()}")
        return in_force[-1]
