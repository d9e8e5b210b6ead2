"""Property tests of the tariff engine (hypothesis) on generated plans and usages.

What holds, precisely (see the module docstring of ``billing.domain.tariffs``):
- the total is the sum of the rounded lines; each line is its exact amount rounded once, half up; no line,
  quantity or price is negative; the rounded total is within half a fen per line of the exact total;
- the tier lines carry the whole volume and their amounts add up to the total of a tiers-only plan;
- totals are monotonic in volume, exactly (to the fen), for a period that no price change cuts;
- a period cut only at a price change bills EXACTLY (to the fen, line for line) the sum of the two
  bills for its parts, when the parts get the volumes ``apportion_by_days`` gives and the running total
  is carried from the first part to the second.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.tariff_plans import TariffPlan, TouBand
from billing.domain.tariffs import (
    QUANTITY_QUANTUM,
    LineKind,
    TariffBill,
    Usage,
    apportion_by_days,
    compute_bill,
    segment_cuts,
)

D = Decimal
prices = st.decimals(min_value=0, max_value=20, places=4)
positive_prices = st.decimals(min_value=D("0.0001"), max_value=20, places=4)
volumes = st.decimals(min_value=0, max_value=3000, places=3)
areas = st.decimals(min_value=0, max_value=300, places=2)
SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def tiered(draw, price_strategy=prices) -> dict:
    count = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 1000), min_size=count - 1, max_size=count - 1))
    bounds, total = [], 0
    for width in widths:
        total += width
        bounds.append(str(total))
    tier_prices = draw(st.lists(price_strategy, min_size=count, max_size=count))
    component = {
        "kind": "tiered_volume",
        "tiers": [
            {"up_to": bound, "price": str(price)}
            for bound, price in zip([*bounds, None], tier_prices, strict=True)
        ],
        "tier_year_starts_on": "01-01",
    }
    if count > 1 and draw(st.booleans()):
        extra = draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1))
        component["household_widening"] = {"base_members": 4, "per_extra_member": [str(e) for e in extra]}
    return component


@st.composite
def components(draw, *, seasonal: bool) -> list[dict]:
    """A tiered charge plus any of the other kinds; time-of-use prices every band."""
    parts = [draw(tiered())]
    if draw(st.booleans()):
        parts.append({"kind": "volume", "price": str(draw(prices))})
    if draw(st.booleans()):
        parts.append({"kind": "time_of_use", "prices": {band.value: str(draw(prices)) for band in TouBand}})
    if draw(st.booleans()):
        parts.append(
            {
                "kind": "area_season",
                "price_per_m2": str(draw(prices)),
                "season_starts_on": "10-20",
                "season_ends_on": "04-20",
                "suspension_share": str(draw(st.decimals(min_value=0, max_value=1, places=2))),
            }
        )
    if draw(st.booleans()):
        parts.append({"kind": "fixed_monthly", "fee": str(draw(prices)), "suspension_share": "0.5"})
    if seasonal and draw(st.booleans()):
        split = draw(st.integers(1, 11))
        parts.append(
            {
                "kind": "seasonal_volume",
                "seasons": [
                    {"name": "甲", "months": list(range(1, split + 1)), "price": str(draw(prices))},
                    {"name": "乙", "months": list(range(split + 1, 13)), "price": str(draw(prices))},
                ],
            }
        )
    return parts


def plan_of(versions: list[tuple[dt.date, list[dict]]], adjustments: list[dict] = ()) -> TariffPlan:
    return TariffPlan.model_validate(
        {
            "code": "generated",
            "name": "生成的价格方案",
            "utility": "gas",
            "customer_class": "residential",
            "volume_unit": "m³",
            "versions": [
                {"version": n, "effective_from": start.isoformat(), "components": parts}
                for n, (start, parts) in enumerate(versions, start=1)
            ],
            "tier_price_adjustments": list(adjustments),
        }
    )


@st.composite
def usages(draw, start: dt.date, end: dt.date, *, tou: bool) -> Usage:
    fields = {
        "period_start": start,
        "period_end": end,
        "year_to_date_volume": draw(volumes),
        "household_members": draw(st.none() | st.integers(1, 9)),
        "heated_area_m2": draw(areas),
        "suspended": draw(st.booleans()),
    }
    if tou:
        fields["tou_volumes"] = {band: draw(volumes) for band in TouBand}
    else:
        fields["volume"] = draw(volumes)
    return Usage(**fields)


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def uses_tou(plan: TariffPlan) -> bool:
    return any(c.kind == "time_of_use" for v in plan.versions for c in v.components)


def exact_fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


@st.composite
def any_bill(draw) -> tuple[TariffPlan, Usage, TariffBill]:
    """Any plan (1-3 versions, seasonal prices, coefficients) and any period of up to 400 days."""
    first = dt.date(2025, 1, 1)
    changes = sorted(set(draw(st.lists(st.integers(1, 700), max_size=2))))
    versions = [(first, draw(components(seasonal=True)))]
    versions += [(first + days(n), draw(components(seasonal=True))) for n in changes]
    adjustments = []
    for _ in range(draw(st.integers(0, 2))):
        valid_from = first + days(draw(st.integers(0, 700)))
        length = draw(st.none() | st.integers(1, 200))
        adjustments.append(
            {
                "valid_from": valid_from.isoformat(),
                "valid_until": None if length is None else (valid_from + days(length)).isoformat(),
                "coefficient": str(draw(st.decimals(min_value=D("0.5"), max_value=2, places=2))),
                "tiers": draw(st.none() | st.lists(st.integers(1, 4), min_size=1, max_size=3)),
            }
        )
    plan = plan_of(versions, adjustments)
    start = first + days(draw(st.integers(0, 500)))
    usage = draw(usages(start, start + days(draw(st.integers(1, 400))), tou=uses_tou(plan)))
    return plan, usage, compute_bill(plan, usage)


@SETTINGS
@given(any_bill())
def test_the_total_is_the_sum_of_lines_each_rounded_once_and_nothing_is_negative(case) -> None:
    _plan, _usage, bill = case
    assert bill.total_fen == sum(line.amount_fen for line in bill.lines)
    for line in bill.lines:
        assert line.amount_fen >= 0 and line.quantity >= 0 and line.unit_price >= 0 and line.exact_amount > 0
        expected = line.quantity * line.unit_price * line.share
        if line.days is not None:
            assert 0 < line.days <= line.of_days
            expected = expected * line.days / line.of_days
        assert abs(line.exact_amount - expected) < D("1e-20")
        assert line.amount_fen == exact_fen(line.exact_amount)
        assert line.period_start < line.period_end
    # half a fen at most per line between the rounded total and the exact one
    assert abs(bill.total_fen - bill.exact_total * 100) <= D(len(bill.lines)) / 2


@SETTINGS
@given(st.data())
def test_tier_lines_carry_the_whole_volume_and_add_up_to_the_total(data) -> None:
    # A tiers-only plan with positive prices, two versions, period within one tier year.
    component = data.draw(tiered(price_strategy=positive_prices))
    later = data.draw(tiered(price_strategy=positive_prices))
    plan = plan_of([(dt.date(2026, 1, 1), [component]), (dt.date(2026, 6, 1), [later])])
    start = dt.date(2026, 1, 1) + days(data.draw(st.integers(0, 300)))
    end = min(start + days(data.draw(st.integers(1, 120))), dt.date(2027, 1, 1))
    usage = data.draw(usages(start, end, tou=False))
    bill = compute_bill(plan, usage)
    tier_lines = [line for line in bill.lines if line.kind == LineKind.TIER]
    assert tier_lines == list(bill.lines)
    assert sum(line.amount_fen for line in tier_lines) == bill.total_fen
    assert sum((line.quantity for line in tier_lines), D(0)) == usage.volume
    running = D(0) if start.strftime("%m-%d") == "01-01" else usage.year_to_date_volume
    assert bill.year_to_date_volume_after == running + usage.volume


@SETTINGS
@given(st.data())
def test_totals_are_monotonic_in_volume_for_an_uncut_period(data) -> None:
    plan = plan_of([(dt.date(2025, 1, 1), data.draw(components(seasonal=True)))])
    # a period inside one calendar month: no version, season or tier year cut inside it
    first = dt.date(2025, data.draw(st.integers(1, 12)), 1) + days(data.draw(st.integers(0, 27)))
    month_end = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    end = first + days(data.draw(st.integers(1, (month_end - first).days)))
    assert segment_cuts(plan, first, end) == [first, end]
    usage = data.draw(usages(first, end, tou=uses_tou(plan)))
    more = data.draw(volumes)
    if usage.tou_volumes is not None:
        band = data.draw(st.sampled_from(list(TouBand)))
        bigger = usage.model_copy(
            update={"tou_volumes": {**usage.tou_volumes, band: usage.tou_volumes[band] + more}}
        )
    else:
        bigger = usage.model_copy(update={"volume": usage.volume + more})
    small, large = compute_bill(plan, usage), compute_bill(plan, bigger)
    assert small.total_fen <= large.total_fen
    assert small.exact_total <= large.exact_total


@SETTINGS
@given(st.data())
def test_a_period_cut_at_a_price_change_bills_exactly_the_sum_of_its_parts(data) -> None:
    start = dt.date(2026, 1, 1) + days(data.draw(st.integers(0, 280)))
    change = start + days(data.draw(st.integers(1, 40)))
    end = change + days(data.draw(st.integers(1, 40)))  # at most 2026-12-21: no tier year start inside
    before = data.draw(components(seasonal=False))
    if data.draw(st.booleans(), label="the price change is a new version"):
        plan = plan_of([(dt.date(2025, 1, 1), before), (change, data.draw(components(seasonal=False)))])
    else:  # ... or a regulator's coefficient from that day
        coefficient = str(data.draw(st.decimals(min_value=D("0.5"), max_value=2, places=2)))
        plan = plan_of(
            [(dt.date(2025, 1, 1), before)], [{"valid_from": change.isoformat(), "coefficient": coefficient}]
        )
    assert segment_cuts(plan, start, end) == [start, change, end]
    whole = data.draw(usages(start, end, tou=uses_tou(plan)))
    cuts = [start, change, end]
    shared = {"household_members": whole.household_members, "heated_area_m2": whole.heated_area_m2}
    shared["suspended"] = whole.suspended
    if whole.tou_volumes is not None:
        split = {band: apportion_by_days(volume, cuts) for band, volume in whole.tou_volumes.items()}
        first_volumes = {"tou_volumes": {band: parts[0] for band, parts in split.items()}}
        second_volumes = {"tou_volumes": {band: parts[1] for band, parts in split.items()}}
    else:
        first_part, second_part = apportion_by_days(whole.volume, cuts)
        first_volumes, second_volumes = {"volume": first_part}, {"volume": second_part}
    first = compute_bill(
        plan,
        Usage(
            period_start=start,
            period_end=change,
            year_to_date_volume=whole.year_to_date_volume,
            **first_volumes,
            **shared,
        ),
    )
    second = compute_bill(
        plan,
        Usage(
            period_start=change,
            period_end=end,
            year_to_date_volume=first.year_to_date_volume_after,
            **second_volumes,
            **shared,
        ),
    )
    bill = compute_bill(plan, whole)
    assert bill.total_fen == first.total_fen + second.total_fen
    assert [line.amount_fen for line in bill.lines] == [
        line.amount_fen for line in first.lines + second.lines
    ]
    assert [line.exact_amount for line in bill.lines] == [
        line.exact_amount for line in first.lines + second.lines
    ]
    assert bill.year_to_date_volume_after == second.year_to_date_volume_after


@SETTINGS
@given(volumes, st.lists(st.integers(1, 60), min_size=1, max_size=6))
def test_apportioning_by_days_adds_up_exactly_and_follows_the_days(
    volume: Decimal, lengths: list[int]
) -> None:
    cuts = [dt.date(2026, 3, 1)]
    for length in lengths:
        cuts.append(cuts[-1] + days(length))
    parts = apportion_by_days(volume, cuts)
    assert sum(parts, D(0)) == volume
    assert all(part >= 0 and part == part.quantize(QUANTITY_QUANTUM) for part in parts)
    total_days = sum(lengths)
    for part, length in zip(parts, lengths, strict=True):
        assert abs(part - volume * length / total_days) <= QUANTITY_QUANTUM


@SETTINGS
@given(st.integers(2000, 2099), areas, prices, st.lists(st.integers(1, 180), max_size=5))
def test_a_heating_season_costs_its_price_and_its_parts_add_up_within_half_a_fen_each(
    year: int, area: Decimal, price: Decimal, inner: list[int]
) -> None:
    plan = TariffPlan.model_validate(
        {
            "code": "area",
            "name": "按面积",
            "utility": "heating",
            "customer_class": "residential",
            "versions": [
                {
                    "version": 1,
                    "effective_from": "1999-01-01",
                    "components": [
                        {
                            "kind": "area_season",
                            "price_per_m2": str(price),
                            "season_starts_on": "10-20",
                            "season_ends_on": "04-20",
                        }
                    ],
                }
            ],
        }
    )
    start, end = dt.date(year, 10, 20), dt.date(year + 1, 4, 21)
    full = compute_bill(plan, Usage(period_start=start, period_end=end, heated_area_m2=area))
    assert full.total_fen == exact_fen(area * price)
    # The same season billed in pieces (e.g. an account that changes hands): each piece is prorated by its
    # days and rounded once, so the pieces add up to the season within half a fen per piece, and their
    # exact amounts add up to it exactly (up to the working precision of the sum).
    cuts = sorted({start, end, *(start + days(n) for n in inner if start + days(n) < end)})
    pieces = [
        compute_bill(plan, Usage(period_start=a, period_end=b, heated_area_m2=area))
        for a, b in pairwise(cuts)
    ]
    assert abs(sum(p.total_fen for p in pieces) - full.total_fen) <= D(len(pieces)) / 2 + D("0.5")
    assert abs(sum(p.exact_total for p in pieces) - area * price) < D("1e-20")
