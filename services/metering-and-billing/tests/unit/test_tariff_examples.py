"""Worked examples of the tariff engine, one or more per tariff kind, on the seed plans.

Every expected figure is computed by hand in the comments (yuan → fen, half up, once per line).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing.domain.tariff_plans import TariffPlan, TouBand
from billing.domain.tariffs import LineKind, Usage, apportion_by_days, compute_bill, round_to_fen

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "tariffs"
D = Decimal
day = dt.date


def seed(code: str) -> TariffPlan:
    return TariffPlan.model_validate_json((SEEDS / f"{code}.json").read_bytes())


def summary(bill) -> list[tuple[str, Decimal, Decimal, int]]:
    return [(line.kind, line.quantity, line.unit_price, line.amount_fen) for line in bill.lines]


def test_every_seed_file_loads_as_a_plan() -> None:
    codes = sorted(path.stem for path in SEEDS.glob("*.json"))
    assert len(codes) >= 4
    for code in codes:
        assert seed(code).code == code  # the file name is the plan's code


# --- tiered by annual cumulative volume (阶梯) -------------------------------------------------------


def test_tiers_split_a_monthly_volume_by_where_the_years_running_total_stands() -> None:
    # Beijing gas, version 2 (from 2026-07-01): 0-350 at 2.70, 350-500 at 3.24, above 500 at 4.05.
    # August 2026, 300 m³ used earlier this year, 120 m³ this month: the running total goes 300 → 420.
    #   tier 1: 350 - 300 = 50 m³ × 2.70 = 135.00 → 13500 fen
    #   tier 2: 420 - 350 = 70 m³ × 3.24 = 226.80 → 22680 fen
    #   total 36180 fen; the running total after is 420.
    bill = compute_bill(
        seed("beijing-residential-gas-tiered"),
        Usage(
            period_start=day(2026, 8, 1),
            period_end=day(2026, 9, 1),
            volume=D(120),
            year_to_date_volume=D(300),
        ),
    )
    assert summary(bill) == [("tier", D(50), D("2.70"), 13500), ("tier", D(70), D("3.24"), 22680)]
    assert [line.tier for line in bill.lines] == [1, 2]
    assert bill.lines[0].description == "第一阶梯 50 m³ × 2.70 元"
    assert bill.total_fen == 36180
    assert bill.year_to_date_volume_after == D(420)


def test_a_volume_crossing_all_three_tiers() -> None:
    # Running total 340 → 540: tier 1 10 × 2.70 = 27.00; tier 2 150 × 3.24 = 486.00; tier 3 40 × 4.05 = 162.00
    # total 675.00 → 67500 fen.
    bill = compute_bill(
        seed("beijing-residential-gas-tiered"),
        Usage(
            period_start=day(2026, 8, 1),
            period_end=day(2026, 9, 1),
            volume=D(200),
            year_to_date_volume=D(340),
        ),
    )
    assert [(line.tier, line.quantity, line.amount_fen) for line in bill.lines] == [
        (1, D(10), 2700),
        (2, D(150), 48600),
        (3, D(40), 16200),
    ]
    assert bill.total_fen == 67500


def test_households_of_five_or_more_get_wider_tiers() -> None:
    # Widening: +50 m³ (tier 1) and +30 m³ (tier 2) per member above 4. Six members: 2 extra, so
    # tier 1 is 0-450 (350 + 100) and tier 2 is 450-660 (width 150 + 60 = 210).
    # Running total 400 → 700:
    #   tier 1: 450 - 400 = 50 × 2.70 = 135.00 → 13500
    #   tier 2: 660 - 450 = 210 × 3.24 = 680.40 → 68040
    #   tier 3: 700 - 660 = 40 × 4.05 = 162.00 → 16200      total 97740 fen
    # Four members (no widening), same usage: tier 2 500 - 400 = 100 × 3.24 = 324.00; tier 3 200 × 4.05 =
    # 810.00; total 113400 fen.
    plan = seed("beijing-residential-gas-tiered")
    period = {"period_start": day(2026, 8, 1), "period_end": day(2026, 9, 1)}
    big = compute_bill(plan, Usage(**period, volume=D(300), year_to_date_volume=D(400), household_members=6))
    small = compute_bill(
        plan, Usage(**period, volume=D(300), year_to_date_volume=D(400), household_members=4)
    )
    assert [(line.tier, line.quantity, line.amount_fen) for line in big.lines] == [
        (1, D(50), 13500),
        (2, D(210), 68040),
        (3, D(40), 16200),
    ]
    assert big.total_fen == 97740
    assert [(line.tier, line.quantity) for line in small.lines] == [(2, D(100)), (3, D(200))]
    assert small.total_fen == 113400


def test_regulator_coefficient_applies_to_the_listed_tiers_and_rounds_only_the_line() -> None:
    # From 2026-11-15 to 2027-03-15 the regulator puts 1.05 on tiers 2 and 3:
    #   tier 2 3.24 × 1.05 = 3.402; tier 3 4.05 × 1.05 = 4.2525 (unit prices are not rounded).
    # December 2026, running total 450 → 550:
    #   tier 2: 50 × 3.402  = 170.10  → 17010 fen
    #   tier 3: 50 × 4.2525 = 212.625 → 21263 fen (half up once; rounding the price first to 4.25 would
    #           give 212.50, 21250 fen)
    #   total 38273 fen.
    bill = compute_bill(
        seed("beijing-residential-gas-tiered"),
        Usage(
            period_start=day(2026, 12, 1),
            period_end=day(2027, 1, 1),
            volume=D(100),
            year_to_date_volume=D(450),
        ),
    )
    assert summary(bill) == [("tier", D(50), D("3.402"), 17010), ("tier", D(50), D("4.2525"), 21263)]
    assert bill.lines[1].description == "第三阶梯 50 m³ × 4.2525 元（基准 4.05 元 × 调价系数 1.05）"
    assert bill.total_fen == 38273


def test_the_tier_year_restarts_on_its_reset_date_inside_a_period() -> None:
    # 2026-12-15 to 2027-01-15 (31 days), 100 m³, 480 m³ used in 2026; the tier year starts on 01-01.
    # Cut at 2027-01-01: 17 days before, 14 after: 100 × 17/31 = 54.8387… → 54.839 m³; 45.161 m³ after.
    # December part (coefficient 1.05 on tiers 2-3 is in force):
    #   tier 2: 500 - 480 = 20 × 3.402 = 68.04 → 6804
    #   tier 3: 34.839 × 4.2525 = 148.1528475 → 14815
    # January part, running total restarts at 0: tier 1 45.161 × 2.70 = 121.9347 → 12193
    # total 6804 + 14815 + 12193 = 33812 fen; the new year's running total after is 45.161.
    bill = compute_bill(
        seed("beijing-residential-gas-tiered"),
        Usage(
            period_start=day(2026, 12, 15),
            period_end=day(2027, 1, 15),
            volume=D(100),
            year_to_date_volume=D(480),
        ),
    )
    assert [(line.tier, line.quantity, line.amount_fen) for line in bill.lines] == [
        (2, D(20), 6804),
        (3, D("34.839"), 14815),
        (1, D("45.161"), 12193),
    ]
    assert bill.total_fen == 33812
    assert bill.year_to_date_volume_after == D("45.161")
    assert bill.lines[2].description == "2027-01-01至2027-01-14 第一阶梯 45.161 m³ × 2.70 元"


def test_a_period_that_starts_on_the_reset_date_ignores_last_years_total() -> None:
    # January 2027: the running total restarts at 0 on 01-01 whatever was passed: 100 × 2.70 = 270.00.
    bill = compute_bill(
        seed("beijing-residential-gas-tiered"),
        Usage(
            period_start=day(2027, 1, 1),
            period_end=day(2027, 2, 1),
            volume=D(100),
            year_to_date_volume=D(600),
        ),
    )
    assert summary(bill) == [("tier", D(100), D("2.70"), 27000)]


# --- a price change inside a period ------------------------------------------------------------------


def test_a_period_straddling_a_price_change_is_split_by_days() -> None:
    # Version 2 (2.60 → 2.70 on tier 1) from 2026-07-01. Period 2026-06-15 to 2026-07-15: 30 days,
    # 16 in June, 14 in July. 100 m³: 100 × 16/30 = 53.333… → 53.333 m³; July gets 46.667 m³.
    #   53.333 × 2.60 = 138.6658 → 13867 fen
    #   46.667 × 2.70 = 126.0009 → 12600 fen      total 26467 fen
    bill = compute_bill(
        seed("beijing-residential-gas-tiered"),
        Usage(period_start=day(2026, 6, 15), period_end=day(2026, 7, 15), volume=D(100)),
    )
    assert [(line.plan_version, line.quantity, line.unit_price, line.amount_fen) for line in bill.lines] == [
        (1, D("53.333"), D("2.60"), 13867),
        (2, D("46.667"), D("2.70"), 12600),
    ]
    assert bill.total_fen == 26467
    assert apportion_by_days(D(100), [day(2026, 6, 15), day(2026, 7, 1), day(2026, 7, 15)]) == [
        D("53.333"),
        D("46.667"),
    ]


# --- time of use, with a tier surcharge --------------------------------------------------------------


def test_time_of_use_bands_are_priced_separately_and_tiers_add_their_surcharge() -> None:
    # Jiangsu: peak 0.5583, valley 0.3583 per kWh; surcharge +0.05 above 2760 kWh a year, +0.30 above 4800.
    # September 2026, 2700 kWh earlier this year, peak 200 + valley 150 = 350 kWh (running total → 3050):
    #   peak:   200 × 0.5583 = 111.66  → 11166 fen
    #   valley: 150 × 0.3583 = 53.745  → 5375 fen (half up)
    #   tier 1: 60 kWh at +0 → no line; tier 2: 3050 - 2760 = 290 × 0.05 = 14.50 → 1450 fen
    #   total 17991 fen
    bill = compute_bill(
        seed("jiangsu-residential-electricity-tiered-tou"),
        Usage(
            period_start=day(2026, 9, 1),
            period_end=day(2026, 10, 1),
            tou_volumes={TouBand.PEAK: D(200), TouBand.VALLEY: D(150)},
            year_to_date_volume=D(2700),
        ),
    )
    assert summary(bill) == [
        ("time_of_use", D(200), D("0.5583"), 11166),
        ("time_of_use", D(150), D("0.3583"), 5375),
        ("tier", D(290), D("0.05"), 1450),
    ]
    assert [line.band for line in bill.lines[:2]] == [TouBand.PEAK, TouBand.VALLEY]
    assert bill.lines[0].description == "电度电费（峰段） 200 kWh × 0.5583 元"
    assert bill.lines[2].description == "第二阶梯加价 290 kWh × 0.05 元"
    assert bill.total_fen == 17991


def test_time_of_use_plan_needs_band_volumes() -> None:
    usage = Usage(period_start=day(2026, 9, 1), period_end=day(2026, 10, 1), volume=D(350))
    with pytest.raises(ValueError, match="tou_volumes"):
        compute_bill(seed("jiangsu-residential-electricity-tiered-tou"), usage)


# --- seasonal prices and fixed monthly fees ----------------------------------------------------------


def test_seasonal_prices_split_a_period_at_the_season_change_and_fixed_fees_prorate_by_days() -> None:
    # Non-residential gas: 淡季 (Apr-Oct) 3.55, 旺季 (Nov-Mar) 3.95; 表具维护费 30.00 a month.
    # 2026-10-15 to 2026-11-15 (31 days), 310 m³; cut at 11-01: 17 days → 170 m³, 14 days → 140 m³.
    #   170 × 3.55 = 603.50 → 60350;   fee 30 × 17/31 = 16.4516… → 1645
    #   140 × 3.95 = 553.00 → 55300;   fee 30 × 14/30 = 14.00     → 1400
    #   total 118695 fen
    bill = compute_bill(
        seed("example-nonresidential-gas-seasonal"),
        Usage(period_start=day(2026, 10, 15), period_end=day(2026, 11, 15), volume=D(310)),
    )
    assert [(line.kind, line.season, line.quantity, line.amount_fen) for line in bill.lines] == [
        ("seasonal_volume", "淡季", D(170), 60350),
        ("fixed_monthly", None, D(1), 1645),
        ("seasonal_volume", "旺季", D(140), 55300),
        ("fixed_monthly", None, D(1), 1400),
    ]
    assert (bill.lines[1].days, bill.lines[1].of_days) == (17, 31)
    assert bill.total_fen == 118695


def test_a_full_month_pays_the_whole_fixed_fee_and_a_suspension_share_of_zero_drops_it() -> None:
    # November 2026, 200 m³: 200 × 3.95 = 790.00 + fee 30.00 = 820.00 → 82000 fen.
    # Suspended (share 0): the fee line's amount is 0, so it is not printed: 79000 fen.
    plan = seed("example-nonresidential-gas-seasonal")
    period = {"period_start": day(2026, 11, 1), "period_end": day(2026, 12, 1), "volume": D(200)}
    bill = compute_bill(plan, Usage(**period))
    assert summary(bill) == [
        ("seasonal_volume", D(200), D("3.95"), 79000),
        ("fixed_monthly", D(1), D("30.00"), 3000),
    ]
    assert bill.lines[1].description == "表具维护费（2026年11月） 1 月 × 30.00 元"
    assert compute_bill(plan, Usage(**period, suspended=True)).total_fen == 79000


# --- heating by area ---------------------------------------------------------------------------------


def test_heating_by_area_for_a_whole_season() -> None:
    # Harbin 29.80 元/m² a season (10-20 to 04-20). 80 m² × 29.80 = 2384.00 → 238400 fen.
    # Season 2026-10-20 .. 2027-04-20: 12 + 30 + 31 + 31 + 28 + 31 + 20 = 183 days, all of them billed.
    bill = compute_bill(
        seed("harbin-residential-heating-area"),
        Usage(period_start=day(2026, 10, 20), period_end=day(2027, 4, 21), heated_area_m2=D(80)),
    )
    assert summary(bill) == [("area_season", D(80), D("29.80"), 238400)]
    assert (bill.lines[0].days, bill.lines[0].of_days) == (183, 183)
    assert bill.lines[0].description == "采暖费 80 m² × 29.80 元/m²·采暖期"


def test_a_leap_year_season_has_one_more_day_and_still_costs_the_season_price() -> None:
    # Season 2027-10-20 .. 2028-04-20 has 184 days (February 2028 has 29); a full season is still
    # 80 × 29.80 = 2384.00; an account opened on 2028-01-01 pays 31 + 29 + 31 + 20 = 111 days:
    # 2384 × 111/184 = 1438.1739… → 143817 fen.
    plan = seed("harbin-residential-heating-area")
    full = compute_bill(
        plan, Usage(period_start=day(2027, 10, 20), period_end=day(2028, 4, 21), heated_area_m2=D(80))
    )
    late = compute_bill(
        plan, Usage(period_start=day(2028, 1, 1), period_end=day(2028, 4, 21), heated_area_m2=D(80))
    )
    assert (full.lines[0].of_days, full.total_fen) == (184, 238400)
    assert (late.lines[0].days, late.lines[0].of_days, late.total_fen) == (111, 184, 143817)


def test_an_account_opened_mid_season_and_suspended_pays_its_days_times_the_share() -> None:
    # Opened 2026-12-01: 31 + 31 + 28 + 31 + 20 = 141 of 183 days.
    #   open:      2384 × 141/183 = 1836.8524… → 183685 fen
    #   suspended: × 20%           = 367.3704… → 36737 fen (one rounding, on the product)
    plan = seed("harbin-residential-heating-area")
    period = {"period_start": day(2026, 12, 1), "period_end": day(2027, 4, 21), "heated_area_m2": D(80)}
    open_bill = compute_bill(plan, Usage(**period))
    suspended = compute_bill(plan, Usage(**period, suspended=True))
    assert (open_bill.lines[0].days, open_bill.lines[0].of_days, open_bill.total_fen) == (141, 183, 183685)
    assert suspended.total_fen == 36737
    assert (
        suspended.lines[0].description
        == "采暖费 80 m² × 29.80 元/m²·采暖期（按 141/183 天）（报停，按 20% 收取）"
    )


def test_a_period_outside_the_heating_season_costs_nothing() -> None:
    bill = compute_bill(
        seed("harbin-residential-heating-area"),
        Usage(period_start=day(2026, 5, 1), period_end=day(2026, 10, 1), heated_area_m2=D(80)),
    )
    assert (bill.lines, bill.total_fen) == ((), 0)


# --- two-part heating --------------------------------------------------------------------------------


def test_two_part_heating_basic_by_area_plus_metered_heat() -> None:
    # 2025-2026 season, version 1: basic 11.92 元/m², metered 39.50 元/GJ. 80 m², 25.5 GJ.
    #   basic:   80 × 11.92 = 953.60   → 95360 fen
    #   metered: 25.5 × 39.50 = 1007.25 → 100725 fen      total 196085 fen
    # Suspended: 20% of the basic charge, 953.60 × 0.2 = 190.72 → 19072 fen, and no heat metered.
    plan = seed("harbin-residential-heating-two-part")
    period = {"period_start": day(2025, 10, 20), "period_end": day(2026, 4, 21), "heated_area_m2": D(80)}
    bill = compute_bill(plan, Usage(**period, volume=D("25.5")))
    assert summary(bill) == [
        ("area_season", D(80), D("11.92"), 95360),
        ("volume", D("25.5"), D("39.50"), 100725),
    ]
    assert bill.lines[1].description == "计量热费 25.5 GJ × 39.50 元"
    assert bill.total_fen == 196085
    suspended = compute_bill(plan, Usage(**period, volume=D(0), suspended=True))
    assert summary(suspended) == [("area_season", D(80), D("11.92"), 19072)]


def test_two_part_heating_across_a_price_change_mid_season() -> None:
    # Version 2 (metered 41.20) from 2027-01-01. Season 2026-10-20 .. 2027-04-20 (183 days): cut at
    # 01-01, 73 days before and 110 after. 25.5 GJ: 25.5 × 73/183 = 10.1721… → 10.172; 15.328 after.
    #   basic   80 × 11.92 × 73/183  = 380.3978… → 38040
    #   metered 10.172 × 39.50       = 401.794   → 40179
    #   basic   80 × 11.92 × 110/183 = 573.2021… → 57320
    #   metered 15.328 × 41.20       = 631.5136  → 63151
    #   total 198690 fen (the two basic lines add to 95360, the season's basic charge, here by chance)
    bill = compute_bill(
        seed("harbin-residential-heating-two-part"),
        Usage(
            period_start=day(2026, 10, 20),
            period_end=day(2027, 4, 21),
            heated_area_m2=D(80),
            volume=D("25.5"),
        ),
    )
    assert [(line.kind, line.quantity, line.amount_fen) for line in bill.lines] == [
        (LineKind.AREA_SEASON, D(80), 38040),
        (LineKind.VOLUME, D("10.172"), 40179),
        (LineKind.AREA_SEASON, D(80), 57320),
        (LineKind.VOLUME, D("15.328"), 63151),
    ]
    assert bill.total_fen == 198690


# --- rounding and validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yuan", "fen"),
    [("0.005", 1), ("0.00499", 0), ("1.115", 112), ("2.125", 213), ("212.625", 21263), ("0", 0)],
)
def test_round_to_fen_is_half_up(yuan: str, fen: int) -> None:
    assert round_to_fen(D(yuan)) == fen


def test_floats_are_refused_in_plans_and_usage() -> None:
    data = seed("example-nonresidential-gas-seasonal").model_dump(mode="json")
    data["versions"][0]["components"][1]["fee"] = 30.5
    with pytest.raises(ValidationError, match="never as floats"):
        TariffPlan.model_validate(data)
    with pytest.raises(ValidationError, match="never as floats"):
        Usage(period_start=day(2026, 1, 1), period_end=day(2026, 2, 1), volume=1.5)


def test_malformed_plans_are_refused() -> None:
    data = seed("beijing-residential-gas-tiered").model_dump(mode="json")
    tiers = data["versions"][0]["components"][0]["tiers"]
    tiers[1]["up_to"] = "300"  # below the first tier's 350
    with pytest.raises(ValidationError, match="strictly increasing"):
        TariffPlan.model_validate(data)
    seasonal = seed("example-nonresidential-gas-seasonal").model_dump(mode="json")
    seasonal["versions"][0]["components"][0]["seasons"][0]["months"] = [11, 12, 1, 2]  # March missing
    with pytest.raises(ValidationError, match="months 1-12"):
        TariffPlan.model_validate(seasonal)


def test_usage_is_checked() -> None:
    with pytest.raises(ValidationError, match="at most"):
        Usage(period_start=day(2026, 1, 1), period_end=day(2026, 2, 1), volume=D("1.0005"))
    with pytest.raises(ValidationError, match="after period_start"):
        Usage(period_start=day(2026, 2, 1), period_end=day(2026, 2, 1))
    with pytest.raises(ValidationError, match="sum of tou_volumes"):
        Usage(
            period_start=day(2026, 1, 1),
            period_end=day(2026, 2, 1),
            volume=D(10),
            tou_volumes={TouBand.PEAK: D(4), TouBand.VALLEY: D(5)},
        )


def test_a_period_before_the_first_version_is_refused() -> None:
    with pytest.raises(ValueError, match="no version in force"):
        compute_bill(
            seed("beijing-residential-gas-tiered"),
            Usage(period_start=day(2023, 12, 1), period_end=day(2024, 1, 1), volume=D(10)),
        )
