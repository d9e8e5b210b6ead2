"""The tariff engine: a plan (``tariff_plans.TariffPlan``) and a period's usage give the bill lines.

``compute_bill(plan, usage)`` returns a ``TariffBill``: its lines (kind, a description in Chinese for the
customer such as "第一阶梯 120 m³ × 2.60 元", quantity, unit price, amount in fen, and the tier, band,
season, proration and period of the line) and the total in fen. Pure: no I/O, no clock.

Money rule (one rule, applied once per line):
    Every line's amount is computed exactly in Decimal, in yuan, as
        quantity × unit price × share × days / of_days
    (share: the suspended premise's share, else 1; days / of_days: the proration, else 1), with a working
    precision of 50 significant digits, the division last. That exact amount is rounded ONCE, half up
    (ROUND_HALF_UP), to the fen and stored as an integer number of fen. Nothing is rounded before that:
    not the unit price after a regulator's coefficient, not a prorated price. The bill total is the sum
    of the rounded lines, so it always equals what the customer can add up on the bill, and any
    validation (non-negative, caps, settlement) runs on those rounded amounts. Lines whose exact amount
    is zero are not printed. No float is used anywhere.

Splitting a period (the segments):
    A period ``[period_start, period_end)`` is cut at every date inside it where something that prices it
    changes: a plan version's ``effective_from``, a tier price adjustment's ``valid_from``/``valid_until``,
    the tier year's start (the running total restarts at 0), and the first day of a month where a seasonal
    price changes season. The volume (and each time-of-use band's volume) is apportioned to the segments
    by days, on cumulative cut points rounded half up to ``QUANTITY_QUANTUM`` (0.001) with the last
    segment taking the rest, so the parts add up to the volume exactly (``apportion_by_days``). Each
    segment is priced by the version and coefficients in force on its first day, and gives its own lines.

    Consequence (tested): a period cut only at a price change ``c`` bills exactly, to the fen, the sum of
    the two bills for ``[start, c)`` and ``[c, end)`` with the volumes ``apportion_by_days`` gives and the
    running total carried over: the lines are the same lines, so the equality is exact, not approximate.
    With more than one cut, the parts' own day apportionment may place a 0.001 differently, so the
    equality then holds within rounding only.

Monotonic in volume (tested): for a period no cut divides, more volume (in total or in any time-of-use
    band) never gives a smaller total, to the fen: each line's quantity only grows with the volume and
    rounding half up is monotonic. For a cut period the promise is weaker. With the exact day shares it
    holds as long as each tier costs no less than the tier below it (true of every 阶梯 plan; not
    enforced, since a coefficient may be set on one tier only). Then rounding the cut points to 0.001
    can still move 0.001 of volume from one segment's prices to its neighbour's as the volume grows,
    lowering the exact total by up to 0.001 × the price difference per cut (0.02 yuan at a 20 元
    difference), and the rounded total by that plus half a fen per line.

Tiers (阶梯): the year's running total before the period is ``usage.year_to_date_volume``; a segment's
    volume fills the tiers from where that total stands, and the total moves on. A segment starting on the
    tier year's start day (including the period's first day) starts again from 0.
    ``TariffBill.year_to_date_volume_after`` is the running total to pass to the next period's bill.

Heating by area: the price per m² is for a whole season; a segment pays
    area × price × (days of the season it covers) / (days of the season), so a full season is exactly the
    price and an account opened or closed mid-season pays its days. A suspended premise pays the
    component's ``suspension_share`` of it. Fixed monthly fees are prorated by days of each calendar month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from itertools import pairwise

from pydantic import Field, model_validator

from billing.domain.tariff_plans import (
    TOU_BAND_NAMES,
    AreaSeasonCharge,
    FixedMonthlyFee,
    FrozenModel,
    NonNegativeDec,
    SeasonalVolumeCharge,
    TariffPlan,
    TariffVersion,
    TieredVolumeCharge,
    TimeOfUseCharge,
    TouBand,
    VolumeCharge,
    month_day_in,
)

#: Volumes are apportioned (and usage volumes must be given) to this precision.
QUANTITY_QUANTUM = Decimal("0.001")
_FEN = Decimal(1)
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_ONE = Decimal(1)
_WORKING_PRECISION = 50
_DAY = dt.timedelta(days=1)
_CHINESE_ORDINALS = "一二三四五六七八九十"


class LineKind(StrEnum):
    TIER = "tier"
    VOLUME = "volume"
    SEASONAL_VOLUME = "seasonal_volume"
    TIME_OF_USE = "time_of_use"
    AREA_SEASON = "area_season"
    FIXED_MONTHLY = "fixed_monthly"


class Usage(FrozenModel):
    """What one account used in ``[period_start, period_end)`` (end excluded), in the plan's volume unit."""

    period_start: dt.date
    period_end: dt.date
    volume: NonNegativeDec | None = None  # total; may be left out when tou_volumes are given
    tou_volumes: dict[TouBand, NonNegativeDec] | None = None
    year_to_date_volume: NonNegativeDec = Decimal(0)  # the tier year's running total before period_start
    household_members: int | None = Field(None, ge=1)
    heated_area_m2: NonNegativeDec | None = None
    suspended: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Usage:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        quantities = [self.volume, self.year_to_date_volume, *(self.tou_volumes or {}).values()]
        for quantity in quantities:
            if quantity is not None and quantity != quantity.quantize(QUANTITY_QUANTUM):
                raise ValueError(f"volumes are given to {QUANTITY_QUANTUM} at most, got {quantity}")
        tou_total = sum((self.tou_volumes or {}).values(), _ZERO)
        if self.tou_volumes is not None and self.volume is not None and tou_total != self.volume:
            raise ValueError("volume must equal the sum of tou_volumes")
        return self

    @property
    def total_volume(self) -> Decimal:
        if self.volume is not None:
            return self.volume
        return sum((self.tou_volumes or {}).values(), _ZERO)


@dataclass(frozen=True, slots=True)
class BillLine:
    kind: LineKind
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount_fen: int
    exact_amount: Decimal  # yuan, before the one rounding
    period_start: dt.date
    period_end: dt.date  # excluded
    plan_version: int
    tier: int | None = None
    band: TouBand | None = None
    season: str | None = None
    share: Decimal = _ONE
    days: int | None = None  # proration numerator
    of_days: int | None = None  # proration denominator


@dataclass(frozen=True, slots=True)
class TariffBill:
    plan_code: str
    period_start: dt.date
    period_end: dt.date
    lines: tuple[BillLine, ...]
    total_fen: int
    year_to_date_volume_after: Decimal

    @property
    def exact_total(self) -> Decimal:
        """The sum of the lines' unrounded amounts, in yuan (for checks; the bill is ``total_fen``)."""
        with localcontext(prec=_WORKING_PRECISION):
            return sum((line.exact_amount for line in self.lines), _ZERO)


def round_to_fen(amount_yuan: Decimal) -> int:
    """Yuan → integer fen, half up: the module's one rounding."""
    return int((amount_yuan * _HUNDRED).quantize(_FEN, rounding=ROUND_HALF_UP))


def apportion_by_days(volume: Decimal, cuts: Sequence[dt.date]) -> list[Decimal]:
    """Split ``volume`` over the segments between consecutive ``cuts`` in proportion to their days.

    The cumulative cut points are rounded half up to ``QUANTITY_QUANTUM``; the last part takes the rest,
    so the parts are non-negative and add up to ``volume`` exactly.
    """
    if len(cuts) < 2 or any(b <= a for a, b in pairwise(cuts)):
        raise ValueError("cuts must be at least two strictly increasing dates")
    total_days = (cuts[-1] - cuts[0]).days
    with localcontext(prec=_WORKING_PRECISION):
        points = [_ZERO]
        for cut in cuts[1:-1]:
            share = volume * (cut - cuts[0]).days / total_days
            points.append(share.quantize(QUANTITY_QUANTUM, rounding=ROUND_HALF_UP))
        points.append(volume)
        return [b - a for a, b in pairwise(points)]


def segment_cuts(plan: TariffPlan, start: dt.date, end: dt.date) -> list[dt.date]:
    """The dates that cut ``[start, end)`` into priced segments, ``start`` and ``end`` included."""
    cuts = {start, end}

    def add(day: dt.date | None) -> None:
        if day is not None and start < day < end:
            cuts.add(day)

    for version in plan.versions:
        add(version.effective_from)
    for adjustment in plan.tier_price_adjustments:
        add(adjustment.valid_from)
        add(adjustment.valid_until)
    components = [c for v in plan.versions for c in v.components]
    for month_day in {c.tier_year_starts_on for c in components if isinstance(c, TieredVolumeCharge)}:
        for year in range(start.year, end.year + 1):
            add(month_day_in(year, month_day))
    seasonal = [c for c in components if isinstance(c, SeasonalVolumeCharge)]
    if seasonal:
        for first in _month_starts(start, end):
            previous_month = (first - _DAY).month
            if any(c.season_for(first.month) is not c.season_for(previous_month) for c in seasonal):
                add(first)
    return sorted(cuts)


def compute_bill(plan: TariffPlan, usage: Usage) -> TariffBill:
    """Price ``usage`` under ``plan``: the lines, each rounded once to the fen, and their sum."""
    cuts = segment_cuts(plan, usage.period_start, usage.period_end)
    several = len(cuts) > 2
    band_parts = {band: apportion_by_days(volume, cuts) for band, volume in (usage.tou_volumes or {}).items()}
    if band_parts:  # the segments' totals are the sums of their bands, so tiers and bands agree
        total_parts = [sum(parts, _ZERO) for parts in zip(*band_parts.values(), strict=True)]
    else:
        total_parts = apportion_by_days(usage.total_volume, cuts)
    components = [c for v in plan.versions for c in v.components]
    reset_days = {
        (int(c.tier_year_starts_on[:2]), int(c.tier_year_starts_on[3:]))  # (month, day) of "MM-DD"
        for c in components
        if isinstance(c, TieredVolumeCharge)
    }
    running_total = usage.year_to_date_volume
    lines: list[BillLine] = []
    with localcontext(prec=_WORKING_PRECISION):
        for index, (start, end) in enumerate(pairwise(cuts)):
            if (start.month, start.day) in reset_days:
                running_total = _ZERO
            segment = _Segment(
                plan=plan,
                version=plan.version_on(start),
                usage=usage,
                start=start,
                end=end,
                volume=total_parts[index],
                band_volumes={band: parts[index] for band, parts in band_parts.items()},
                running_total=running_total,
                prefix=f"{start.isoformat()}至{(end - _DAY).isoformat()} " if several else "",
            )
            lines.extend(segment.lines())
            running_total += total_parts[index]
    return TariffBill(
        plan_code=plan.code,
        period_start=usage.period_start,
        period_end=usage.period_end,
        lines=tuple(lines),
        total_fen=sum(line.amount_fen for line in lines),
        year_to_date_volume_after=running_total,
    )


@dataclass(frozen=True, slots=True)
class _Segment:
    plan: TariffPlan
    version: TariffVersion
    usage: Usage
    start: dt.date
    end: dt.date
    volume: Decimal
    band_volumes: dict[TouBand, Decimal]
    running_total: Decimal
    prefix: str

    def lines(self) -> Iterable[BillLine]:
        for component in self.version.components:
            if isinstance(component, TieredVolumeCharge):
                yield from self._tiered(component)
            elif isinstance(component, VolumeCharge):
                yield from self._line(LineKind.VOLUME, component.label, self.volume, component.price)
            elif isinstance(component, SeasonalVolumeCharge):
                season = component.season_for(self.start.month)
                label = f"{component.label}（{season.name}）"
                yield from self._line(
                    LineKind.SEASONAL_VOLUME, label, self.volume, season.price, season=season.name
                )
            elif isinstance(component, TimeOfUseCharge):
                yield from self._time_of_use(component)
            elif isinstance(component, AreaSeasonCharge):
                yield from self._area_season(component)
            else:
                yield from self._fixed_monthly(component)

    @property
    def _unit(self) -> str:
        return self.plan.volume_unit.value if self.plan.volume_unit else ""

    def _line(
        self,
        kind: LineKind,
        label: str,
        quantity: Decimal,
        unit_price: Decimal,
        *,
        unit: str | None = None,
        price_unit: str = "",
        share: Decimal = _ONE,
        days: int | None = None,
        of_days: int | None = None,
        tier: int | None = None,
        band: TouBand | None = None,
        season: str | None = None,
    ) -> Iterable[BillLine]:
        exact = quantity * unit_price * share
        if days is not None and of_days is not None:
            exact = exact * days / of_days
        if exact == 0:
            return
        unit = self._unit if unit is None else unit
        text = (
            f"{self.prefix}{label} {_quantity_text(quantity)} {unit}"
            f" × {_price_text(unit_price)} 元{price_unit}"
        )
        if days is not None and days != of_days:
            text += f"（按 {days}/{of_days} 天）"
        if share != _ONE:
            text += f"（报停，按 {_quantity_text(share * _HUNDRED)}% 收取）"
        yield BillLine(
            kind=kind,
            description=text,
            quantity=quantity,
            unit=unit,
            unit_price=unit_price,
            amount_fen=round_to_fen(exact),
            exact_amount=exact,
            period_start=self.start,
            period_end=self.end,
            plan_version=self.version.version,
            tier=tier,
            band=band,
            season=season,
            share=share,
            days=days,
            of_days=of_days,
        )

    def _tiered(self, component: TieredVolumeCharge) -> Iterable[BillLine]:
        bounds = component.upper_bounds(self.usage.household_members)
        low_mark, high_mark = self.running_total, self.running_total + self.volume
        lower = _ZERO
        for index, tier in enumerate(component.tiers):
            number = index + 1
            upper = bounds[index] if index < len(bounds) else None
            quantity = (high_mark if upper is None else min(high_mark, upper)) - max(low_mark, lower)
            if upper is not None:
                lower = upper
            if quantity <= 0:
                continue
            coefficient = _ONE
            for adjustment in self.plan.tier_price_adjustments:
                if adjustment.applies(self.start, number):
                    coefficient *= adjustment.coefficient
            price = tier.price * coefficient
            basis = ""
            if coefficient != _ONE:
                basis = f"（基准 {_price_text(tier.price)} 元 × 调价系数 {_quantity_text(coefficient)}）"
            ordinal = _CHINESE_ORDINALS[index] if index < len(_CHINESE_ORDINALS) else str(number)
            label = f"第{ordinal}阶梯{component.label}"
            yield from self._line(LineKind.TIER, label, quantity, price, price_unit=basis, tier=number)

    def _time_of_use(self, component: TimeOfUseCharge) -> Iterable[BillLine]:
        if self.usage.tou_volumes is None:
            raise ValueError(f"plan {self.plan.code} prices time-of-use bands: the usage needs tou_volumes")
        unpriced = set(self.usage.tou_volumes) - set(component.prices)
        if any(self.usage.tou_volumes[band] for band in unpriced):
            raise ValueError(f"plan {self.plan.code} has no price for the bands {sorted(unpriced)}")
        for band in TouBand:
            if band in component.prices and band in self.band_volumes:
                label = f"{component.label}（{TOU_BAND_NAMES[band]}）"
                yield from self._line(
                    LineKind.TIME_OF_USE, label, self.band_volumes[band], component.prices[band], band=band
                )

    def _area_season(self, component: AreaSeasonCharge) -> Iterable[BillLine]:
        area = self.usage.heated_area_m2
        if area is None:
            raise ValueError(f"plan {self.plan.code} charges by area: the usage needs heated_area_m2")
        share = component.suspension_share if self.usage.suspended else _ONE
        for first, after in component.seasons_overlapping(self.start, self.end):
            days = (min(after, self.end) - max(first, self.start)).days
            yield from self._line(
                LineKind.AREA_SEASON,
                component.label,
                area,
                component.price_per_m2,
                unit="m²",
                price_unit="/m²·采暖期",
                share=share,
                days=days,
                of_days=(after - first).days,
                season=f"{first.year}-{after.year}",
            )

    def _fixed_monthly(self, component: FixedMonthlyFee) -> Iterable[BillLine]:
        share = component.suspension_share if self.usage.suspended else _ONE
        for first in [self.start.replace(day=1), *_month_starts(self.start, self.end)]:
            following = _next_month(first)
            days = (min(following, self.end) - max(first, self.start)).days
            yield from self._line(
                LineKind.FIXED_MONTHLY,
                f"{component.label}（{first.year}年{first.month}月）",
                _ONE,
                component.fee,
                unit="月",
                share=share,
                days=days,
                of_days=(following - first).days,
            )


def _month_starts(start: dt.date, end: dt.date) -> list[dt.date]:
    """The first days of months strictly inside ``(start, end)``."""
    firsts = []
    first = _next_month(start.replace(day=1))
    while first < end:
        firsts.append(first)
        first = _next_month(first)
    return firsts


def _next_month(first: dt.date) -> dt.date:
    return dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _quantity_text(quantity: Decimal) -> str:
    """120.000 → "120", 12.50 → "12.5"."""
    return format(quantity.normalize(), "f")


def _price_text(price: Decimal) -> str:
    """At least two decimals: 2.6 → "2.60", 0.5583 → "0.5583", 2.73000 → "2.73"."""
    cents = price.quantize(Decimal("0.01"))
    return str(cents) if cents == price else format(price.normalize(), "f")
