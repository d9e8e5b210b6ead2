"""Worked examples of the meter reading rules: every figure is computed by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from billing.domain.readings import (
    ConsumptionKind,
    CorrectionDirection,
    Deviation,
    EstimationMethod,
    ExpectedCycle,
    FlagCode,
    MeteringConfig,
    MeterReading,
    MeterReplacement,
    NotEnoughHistory,
    PeriodConsumption,
    ReadingSource,
    check_reading,
    consumption_between,
    estimate_reading,
    missing_cycles,
    periods_from_readings,
    robust_score,
    true_up,
)

D = Decimal
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 2, 0, tzinfo=UTC)


def reading(
    value: str,
    when: datetime,
    *,
    serial: str = "M1",
    digits: int = 5,
    source: ReadingSource = ReadingSource.MANUAL,
    photo: str | None = None,
) -> MeterReading:
    return MeterReading(serial, source, when, D(value), digits, "reader-007", photo)


def monthly_history(consumptions: list[str], start_value: str = "1000") -> list[MeterReading]:
    """Readings 30 days apart from 2026-01-01, each period using the given volume."""
    out = [reading(start_value, at(1, 1))]
    for used in consumptions:
        prev = out[-1]
        out.append(reading(str(prev.value + D(used)), prev.read_at + timedelta(days=30)))
    return out


# ------------------------------------------------------------------------------------------------
# The value object


def test_reading_rejects_float_and_int_values():
    with pytest.raises(TypeError):
        MeterReading("M1", ReadingSource.MANUAL, at(1, 1), 12.5, 5, "r")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MeterReading("M1", ReadingSource.MANUAL, at(1, 1), 12, 5, "r")  # type: ignore[arg-type]


def test_reading_rejects_naive_time_and_normalises_to_utc():
    with pytest.raises(ValueError, match="naive"):
        reading("1", datetime(2026, 1, 1, 10, 0))
    # 10:00 in Beijing (UTC+8) is 02:00 UTC.
    r = reading("1", datetime(2026, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=8))))
    assert r.read_at == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    assert r.read_at.utcoffset() == timedelta(0)


def test_reading_value_must_fit_the_register():
    # 5 digits: 0 … 99999.999…; 100000 does not fit, nor does a negative value.
    assert reading("99999.99", at(1, 1)).capacity == D(100000)
    with pytest.raises(ValueError, match="register range"):
        reading("100000", at(1, 1))
    with pytest.raises(ValueError, match="register range"):
        reading("-1", at(1, 1))
    with pytest.raises(ValueError):
        reading("NaN", at(1, 1))


def test_self_reported_reading_needs_a_photo():
    with pytest.raises(ValueError, match="photo"):
        reading("10", at(1, 1), source=ReadingSource.SELF_REPORTED)
    r = reading("10", at(1, 1), source=ReadingSource.SELF_REPORTED, photo="oss://photos/abc.jpg")
    assert r.photo_ref == "oss://photos/abc.jpg"
    assert r.source is ReadingSource.SELF_REPORTED


# ------------------------------------------------------------------------------------------------
# Value below the previous one


def test_normal_consumption():
    # 1290 − 1200 = 90
    used = consumption_between(reading("1200", at(1, 1)), reading("1290", at(1, 31)))
    assert (used.kind, used.volume, used.flags) == (ConsumptionKind.NORMAL, D(90), ())


def test_rollover_of_a_five_digit_register():
    # previous 99950 is in the top 10% (≥ 90000); implied (100000 − 99950) + 30 = 80 ≤ 10000.
    used = consumption_between(reading("99950", at(1, 1)), reading("30", at(1, 31)))
    assert used.kind is ConsumptionKind.ROLLOVER
    assert used.volume == D(80)
    assert [f.code for f in used.flags] == [FlagCode.ROLLOVER]
    assert not used.flags[0].needs_review
    assert "100000" in used.flags[0].message_zh and "80" in used.flags[0].message_zh


def test_decrease_far_from_the_top_is_an_error():
    # 50000 is not within the top 10% of 100000: a misread, not a rollover.
    used = consumption_between(reading("50000", at(1, 1)), reading("49990", at(1, 31)))
    assert used.kind is ConsumptionKind.UNDETERMINED
    assert used.volume is None
    assert [f.code for f in used.flags] == [FlagCode.VALUE_DECREASED]
    assert used.flags[0].needs_review


def test_implausible_rollover_is_an_error():
    # 95000 is near the top, but (100000 − 95000) + 20000 = 25000 > 10% of 100000 = 10000.
    used = consumption_between(reading("95000", at(1, 1)), reading("20000", at(1, 31)))
    assert used.volume is None
    assert [f.code for f in used.flags] == [FlagCode.VALUE_DECREASED]


def test_rollover_limit_is_inclusive():
    # (100000 − 91000) + 1000 = 10000 = exactly 10% → still a rollover; one more unit is not.
    ok = consumption_between(reading("91000", at(1, 1)), reading("1000", at(1, 31)))
    assert (ok.kind, ok.volume) == (ConsumptionKind.ROLLOVER, D(10000))
    bad = consumption_between(reading("91000", at(1, 1)), reading("1001", at(1, 31)))
    assert bad.kind is ConsumptionKind.UNDETERMINED


def test_rollover_needs_the_previous_value_near_the_top():
    # With the defaults (both 10%) a plausible wrap implies a previous value ≥ 90000; a stricter
    # configuration separates them: top 5% → previous ≥ 95000.
    cfg = MeteringConfig(rollover_near_fraction=D("0.05"), rollover_max_fraction=D("0.1"))
    # 93000 → 100: implied (100000 − 93000) + 100 = 7100 ≤ 10000, but 93000 < 95000 → an error.
    used = consumption_between(reading("93000", at(1, 1)), reading("100", at(1, 31)), config=cfg)
    assert used.kind is ConsumptionKind.UNDETERMINED
    assert [f.code for f in used.flags] == [FlagCode.VALUE_DECREASED]
    # 96000 → 100: 4100, near the top → a rollover.
    ok = consumption_between(reading("96000", at(1, 1)), reading("100", at(1, 31)), config=cfg)
    assert (ok.kind, ok.volume) == (ConsumptionKind.ROLLOVER, D(4100))


def test_recorded_replacement_splits_the_consumption():
    # Old meter M1: 4500 → final 4560 (60); new meter M2: initial 3 → 40 (37). Total 97.
    rep = MeterReplacement(at(1, 15), "M1", D(4560), "M2", D(3))
    used = consumption_between(reading("4500", at(1, 1)), reading("40", at(1, 31), serial="M2"), [rep])
    assert used.kind is ConsumptionKind.REPLACEMENT
    assert used.volume == D(97)
    assert [f.code for f in used.flags] == [FlagCode.METER_REPLACED]
    assert not used.flags[0].needs_review


def test_replacement_outside_the_interval_is_ignored():
    # A replacement recorded before the previous reading does not apply to this pair.
    rep = MeterReplacement(at(12, 1, 2025), "M0", D(100), "M1", D(0))
    used = consumption_between(reading("4500", at(1, 1)), reading("4600", at(1, 31)), [rep])
    assert (used.kind, used.volume) == (ConsumptionKind.NORMAL, D(100))


@pytest.mark.parametrize(
    ("rep", "current_serial", "current"),
    [
        # the reading (40) is below the new meter's initial value (50)
        (MeterReplacement(at(1, 15), "M1", D(4560), "M2", D(50)), "M2", "40"),
        # the old meter's final value (4400) is below the previous reading (4500)
        (MeterReplacement(at(1, 15), "M1", D(4400), "M2", D(3)), "M2", "40"),
        # the record names other meters
        (MeterReplacement(at(1, 15), "M9", D(4560), "M2", D(3)), "M2", "40"),
    ],
)
def test_inconsistent_replacement_goes_to_review(rep, current_serial, current):
    used = consumption_between(
        reading("4500", at(1, 1)), reading(current, at(1, 31), serial=current_serial), [rep]
    )
    assert used.volume is None
    assert [f.code for f in used.flags] == [FlagCode.REPLACEMENT_INCONSISTENT]
    assert used.flags[0].needs_review


def test_unrecorded_replacement_is_suspected():
    # A new serial without a record, or the same serial back near a new meter's initial value (≤ 10).
    other = consumption_between(reading("4500", at(1, 1)), reading("40", at(1, 31), serial="M2"))
    near_zero = consumption_between(reading("4500", at(1, 1)), reading("5", at(1, 31)))
    for used in (other, near_zero):
        assert used.volume is None
        assert [f.code for f in used.flags] == [FlagCode.REPLACEMENT_UNRECORDED]
        assert used.flags[0].needs_review


# ------------------------------------------------------------------------------------------------
# Robust statistics

PAST = [D("3"), D("3.2"), D("2.8"), D("3.1"), D("2.9"), D("3.0")]


def test_robust_score_by_hand():
    # sorted 2.8 2.9 3 3.0 3.1 3.2 → median (3 + 3.0) / 2 = 3
    # |deviations| 0.2 0.1 0 0 0.1 0.2 → sorted 0 0 0.1 0.1 0.2 0.2 → MAD (0.1 + 0.1) / 2 = 0.1
    # scale 1.4826 × 0.1 = 0.14826; limit 3.5 × 0.14826 = 0.51891
    s = robust_score(PAST, D("3.5"))
    assert (s.median, s.mad, s.scale) == (D(3), D("0.1"), D("0.14826"))
    assert s.deviation is Deviation.NONE  # |3.5 − 3| = 0.5 ≤ 0.51891
    high = robust_score(PAST, D("3.52"))  # 0.52 > 0.51891
    assert high.deviation is Deviation.HIGH
    assert high.score.quantize(D("0.0001")) == D("3.5074")  # 0.52 / 0.14826 = 3.507352 → 3.5074
    assert robust_score(PAST, D("2.48")).deviation is Deviation.LOW  # 2.48 − 3 = −0.52


def test_robust_score_when_mad_is_zero_uses_mean_absolute_deviation():
    # [3, 3, 3, 3, 5]: median 3, deviations 0 0 0 0 2 → MAD 0; mean AD 2 / 5 = 0.4
    # scale 1.253314 × 0.4 = 0.5013256; limit 3.5 × 0.5013256 = 1.7546396
    past = [D(3), D(3), D(3), D(3), D(5)]
    s = robust_score(past, D("4.7"))
    assert (s.mad, s.scale, s.deviation) == (D(0), D("0.5013256"), Deviation.NONE)  # 1.7 ≤ 1.75…
    assert robust_score(past, D("4.8")).deviation is Deviation.HIGH  # 1.8 > 1.75…


def test_robust_score_on_a_flat_history():
    flat = [D(3)] * 4
    assert robust_score(flat, D(3)).deviation is Deviation.NONE
    assert robust_score(flat, D("3.001")).deviation is Deviation.HIGH
    tolerant = MeteringConfig(flat_history_tolerance=D("0.5"))
    assert robust_score(flat, D("3.4"), tolerant).deviation is Deviation.NONE
    assert robust_score(flat, D("2.4"), tolerant).deviation is Deviation.LOW


def test_robust_score_needs_min_periods():
    assert robust_score(PAST[:3], D(100)).deviation is Deviation.NOT_CHECKED
    assert robust_score(PAST[:4], D(100)).deviation is Deviation.HIGH


# ------------------------------------------------------------------------------------------------
# check_reading

# Six 30-day periods using 90 96 84 93 87 90 → daily 3 3.2 2.8 3.1 2.9 3.0 (as PAST above);
# readings 1000 1090 1186 1270 1363 1450 1540, the last on 2026-01-01 + 180 days = 2026-06-30.
HISTORY = monthly_history(["90", "96", "84", "93", "87", "90"])


def test_history_as_built():
    assert [r.value for r in HISTORY] == [
        D(v) for v in ("1000", "1090", "1186", "1270", "1363", "1450", "1540")
    ]
    assert HISTORY[-1].read_at == at(6, 30)
    assert [p.daily for p in periods_from_readings(HISTORY)] == PAST


def test_normal_reading_is_billable():
    # 30 days after 1540: 1630 → 90, daily 3 = the median.
    new = reading("1630", at(7, 30))
    check = check_reading(new, HISTORY, now=NOW)
    assert check.previous == HISTORY[-1]
    assert (check.kind, check.consumption, check.flags) == (ConsumptionKind.NORMAL, D(90), ())
    assert not check.needs_review and check.billable
    assert check.statistics.median == D(3)


def test_high_consumption_goes_to_review():
    # 1540 → 1696: 156 in 30 days = 5.2 per day; (5.2 − 3) / 0.14826 = 14.84 > 3.5
    check = check_reading(reading("1696", at(7, 30)), HISTORY, now=NOW)
    assert check.codes == (FlagCode.CONSUMPTION_HIGH,)
    assert check.needs_review and not check.billable
    assert check.consumption == D(156)
    flag = check.flags[0]
    assert "5.2" in flag.message_zh and "14.839" in flag.message_zh
    assert "unusually high" in flag.message_en


def test_days_normalise_the_period():
    # 180 over 60 days is still 3 per day: not an anomaly although twice a usual period's volume.
    check = check_reading(reading("1720", at(8, 29)), HISTORY, now=NOW)
    assert check.consumption == D(180)
    assert check.flags == ()


def test_low_consumption_goes_to_review():
    # 1540 → 1570: 30 in 30 days = 1 per day; (1 − 3) / 0.14826 = −13.49
    check = check_reading(reading("1570", at(7, 30)), HISTORY, now=NOW)
    assert check.codes == (FlagCode.CONSUMPTION_LOW,)


def test_zero_consumption_for_an_occupied_premise():
    short = HISTORY[:2]  # one period only: no statistics, just the zero check
    check = check_reading(reading("1090", at(3, 2)), short, now=NOW)
    assert check.consumption == D(0)
    assert check.codes == (FlagCode.ZERO_CONSUMPTION, FlagCode.INSUFFICIENT_HISTORY)
    assert check.needs_review
    vacant = check_reading(reading("1090", at(3, 2)), short, now=NOW, occupied=False)
    assert vacant.codes == (FlagCode.INSUFFICIENT_HISTORY,)
    assert not vacant.needs_review


def test_too_few_periods_is_informational():
    check = check_reading(reading("9000", at(5, 1)), HISTORY[:4], now=NOW)  # 3 periods < 4
    assert check.codes == (FlagCode.INSUFFICIENT_HISTORY,)
    assert "4" in check.flags[0].message_zh and "3" in check.flags[0].message_zh
    assert check.statistics.deviation is Deviation.NOT_CHECKED
    assert not check.needs_review


def test_rollover_through_check_reading():
    hist = [reading("99900", at(1, 1)), reading("99960", at(1, 31))]
    check = check_reading(reading("20", at(3, 2)), hist, now=NOW)  # (100000 − 99960) + 20 = 60
    assert check.kind is ConsumptionKind.ROLLOVER
    assert check.consumption == D(60)
    assert check.codes == (FlagCode.ROLLOVER, FlagCode.INSUFFICIENT_HISTORY)
    assert not check.needs_review


def test_misread_goes_to_review_without_consumption():
    check = check_reading(reading("1500", at(7, 30)), HISTORY, now=NOW)
    assert check.codes == (FlagCode.VALUE_DECREASED,)
    assert check.consumption is None and check.needs_review and not check.billable


def test_missing_period():
    cfg = MeteringConfig(expected_cycle=timedelta(days=30))
    # 60 days since the previous reading: 60 / 30 = 2 > 1.5 → about 2 − 1 = 1 cycle missing.
    check = check_reading(reading("1720", at(8, 29)), HISTORY, now=NOW, config=cfg)
    assert check.codes == (FlagCode.MISSING_PERIOD,)
    assert "60 天" in check.flags[0].message_zh and "1 个" in check.flags[0].message_zh
    # 45 days: 1.5 is not above 1.5 → no flag.
    assert check_reading(reading("1675", at(8, 14)), HISTORY, now=NOW, config=cfg).flags == ()
    # 95 days: 95 / 30 = 3.17 → round 3 − 1 = 2 cycles.
    far = check_reading(reading("1825", at(10, 3)), HISTORY, now=NOW, config=cfg)
    assert "2 个" in far.flags[0].message_zh


def test_an_estimate_fills_the_missed_cycle():
    cfg = MeteringConfig(expected_cycle=timedelta(days=30))
    est = reading("1630", at(7, 30), source=ReadingSource.ESTIMATED)
    check = check_reading(reading("1720", at(8, 29)), [*HISTORY, est], now=NOW, config=cfg)
    assert FlagCode.MISSING_PERIOD not in check.codes
    # and the consumption is measured from the last *actual* reading: 1720 − 1540 = 180
    assert check.previous == HISTORY[-1]
    assert check.consumption == D(180)


def test_actual_below_an_estimate_is_not_an_error():
    est = reading("1700", at(7, 30), source=ReadingSource.ESTIMATED)
    check = check_reading(reading("1620", at(7, 31)), [*HISTORY, est], now=NOW)
    assert check.consumption == D(80)  # 1620 − 1540
    assert FlagCode.VALUE_DECREASED not in check.codes


def test_future_reading():
    soon = check_reading(reading("1630", NOW + timedelta(minutes=4)), HISTORY, now=NOW)
    assert FlagCode.FUTURE_READING not in soon.codes
    later = check_reading(reading("1630", NOW + timedelta(hours=1)), HISTORY, now=NOW)
    assert FlagCode.FUTURE_READING in later.codes
    assert later.consumption is None and later.needs_review


def test_reading_before_the_previous_one():
    check = check_reading(reading("1600", at(6, 1)), HISTORY, now=NOW)
    assert check.codes == (FlagCode.NOT_AFTER_PREVIOUS,)
    assert check.consumption is None and check.needs_review
    same_time = check_reading(reading("1540", at(6, 30)), HISTORY, now=NOW)
    assert same_time.codes == (FlagCode.NOT_AFTER_PREVIOUS,)


def test_first_reading():
    check = check_reading(reading("0", at(1, 1)), [], now=NOW)
    assert check.codes == (FlagCode.FIRST_READING,)
    assert check.consumption is None and not check.needs_review


def test_explicit_periods_override_the_derived_ones():
    # Winter-only comparison periods: 10 per day; the new 30-day period uses 300 → exactly the median.
    winter = [PeriodConsumption(at(1, 1, y), at(1, 31, y), D(300)) for y in (2021, 2022, 2023, 2024)]
    check = check_reading(reading("1840", at(7, 30)), HISTORY, now=NOW, periods=winter)
    assert check.flags == ()
    assert check.statistics.median == D(10)
    # against the account's own summer history the same 300 is far too high
    assert check_reading(reading("1840", at(7, 30)), HISTORY, now=NOW).codes == (FlagCode.CONSUMPTION_HIGH,)


def test_only_the_latest_history_periods_count():
    # Four old periods at 10/day (300 per 30 days), then four at 3 3.2 2.8 3.1 per day; window of 4.
    # Latest four: median (3 + 3.1) / 2 = 3.05; |dev| 0.05 0.15 0.25 0.05 → MAD (0.05 + 0.15) / 2 = 0.1;
    # limit 3.5 × 0.14826 = 0.519. A new 30-day period of 300 (10/day) is far off: flagged.
    # With all eight the median would be (3.2 + 10) / 2 = 6.6 and MAD 3.45: 10 would pass unflagged.
    cfg = MeteringConfig(history_periods=4)
    hist = monthly_history(["300", "300", "300", "300", "90", "96", "84", "93"])
    assert hist[-1].value == D(2563) and hist[-1].read_at == at(8, 29)
    new = reading("2863", at(9, 28))
    check = check_reading(new, hist, now=NOW, config=cfg)
    assert check.statistics.median == D("3.05")
    assert check.codes == (FlagCode.CONSUMPTION_HIGH,)
    wide = check_reading(new, hist, now=NOW, config=MeteringConfig(history_periods=8))
    assert wide.statistics.median == D("6.6")
    assert wide.flags == ()


def test_flag_codes_are_stable():
    assert {c.value for c in FlagCode} == {
        "rollover",
        "meter_replaced",
        "replacement_inconsistent",
        "replacement_unrecorded",
        "value_decreased",
        "consumption_high",
        "consumption_low",
        "insufficient_history",
        "zero_consumption",
        "missing_period",
        "future_reading",
        "not_after_previous",
        "first_reading",
    }


def test_missing_cycles():
    cycles = [
        ExpectedCycle("2026-07", at(7, 25), at(8, 5)),
        ExpectedCycle("2026-08", at(8, 25), at(9, 5)),
        ExpectedCycle("2026-12", at(12, 25), at(1, 5, 2027)),  # not closed yet at NOW
    ]
    readings = [reading("1630", at(7, 30))]
    assert [c.label for c in missing_cycles(readings, cycles, now=NOW)] == ["2026-08"]


# ------------------------------------------------------------------------------------------------
# Estimates and true-up


def test_estimate_by_median_daily_consumption():
    # No period a year before July 2026: median daily 3 × 30 days = 90 → 1540 + 90 = 1630.
    est = estimate_reading(HISTORY[-1], at(7, 30), periods_from_readings(HISTORY))
    assert est.method is EstimationMethod.MEDIAN_DAILY
    assert (est.daily_rate, est.days, est.consumption) == (D(3), D(30), D(90))
    assert est.reading.value == D(1630)
    assert est.reading.source is ReadingSource.ESTIMATED
    assert est.reading.entered_by == "system:estimator"
    assert est.reading.meter_serial == "M1" and est.reading.digits == 5


def test_estimate_from_the_same_period_last_year():
    # Last year: 2025-01-01 → 01-31 used 300 (10/day), 2025-01-31 → 03-02 used 240 (8/day).
    # Window 2026-01-16 → 02-15 shifted a year: 15 days at 10 and 15 days at 8 → (150 + 120) / 30 = 9/day
    # → 9 × 30 = 270.
    periods = [
        PeriodConsumption(at(1, 1, 2025), at(1, 31, 2025), D(300)),
        PeriodConsumption(at(1, 31, 2025), at(3, 2, 2025), D(240)),
        PeriodConsumption(at(12, 1, 2025), at(12, 31, 2025), D(600)),
    ]
    base = reading("5000", at(1, 16))
    est = estimate_reading(base, at(2, 15), periods)
    assert est.method is EstimationMethod.SAME_PERIOD_LAST_YEAR
    assert (est.daily_rate, est.consumption, est.reading.value) == (D(9), D(270), D(5270))


def test_estimate_falls_back_when_last_year_covers_too_little():
    # Only 2025-01-31 → 02-15 (15 of 30 days = 50% < 80%) is covered: the median daily is used.
    periods = [PeriodConsumption(at(1, 31, 2025), at(3, 2, 2025), D(240))]
    est = estimate_reading(reading("5000", at(1, 16)), at(2, 15), periods)
    assert est.method is EstimationMethod.MEDIAN_DAILY
    assert est.consumption == D(240)  # 8/day × 30


def test_estimate_rounds_to_the_meter_resolution_and_wraps():
    # 2 decimal places on the base; 10 days at 3.33333…/day (100 over 30 days) = 33.333… → 33.33;
    # 99990.50 + 33.33 = 100023.83 → wraps to 23.83.
    periods = [PeriodConsumption(at(1, 1), at(1, 31), D(100))]
    est = estimate_reading(reading("99990.50", at(2, 1)), at(2, 11), periods)
    assert est.consumption == D("33.33")
    assert est.reading.value == D("23.83")


def test_estimate_needs_history():
    with pytest.raises(NotEnoughHistory):
        estimate_reading(HISTORY[-1], at(7, 30), [])
    with pytest.raises(ValueError):
        estimate_reading(HISTORY[-1], at(6, 1), periods_from_readings(HISTORY))


def test_true_up_debit_and_credit():
    periods = periods_from_readings(HISTORY)
    est = estimate_reading(HISTORY[-1], at(7, 30), periods)  # 90 → 1630
    # actual 1660: 1660 − 1540 = 120 used, 90 billed → debit 30
    up = true_up([est], reading("1660", at(8, 2)))
    assert (up.actual_consumption, up.estimated_consumption, up.correction) == (D(120), D(90), D(30))
    assert up.direction is CorrectionDirection.DEBIT
    assert "补收 30" in up.description_zh
    # actual 1600: 60 used, 90 billed → credit 30
    down = true_up([est], reading("1600", at(8, 2)))
    assert (down.correction, down.direction) == (D(-30), CorrectionDirection.CREDIT)
    assert "退还 30" in down.description_zh
    even = true_up([est], reading("1630", at(8, 2)))
    assert (even.correction, even.direction) == (D(0), CorrectionDirection.NONE)


def test_true_up_over_chained_estimates_and_a_rollover():
    # base 99900 (5 digits); two 30-day estimates at 3/day: 90 → 99990, 90 → 80 (wrapped)
    periods = [PeriodConsumption(at(1, 1), at(1, 31), D(90))]
    base = reading("99900", at(2, 1))
    first = estimate_reading(base, at(3, 3), periods)
    second = estimate_reading(first.reading, at(4, 2), periods)
    assert (first.reading.value, second.reading.value) == (D(99990), D(80))
    # actual 150 on 04-05: (100000 − 99900) + 150 = 250 used; 180 billed → debit 70
    up = true_up([first, second], reading("150", at(4, 5)))
    assert (up.actual_consumption, up.estimated_consumption, up.correction) == (D(250), D(180), D(70))
    with pytest.raises(ValueError, match="chained"):
        true_up([second, first], reading("150", at(4, 5)))


def test_true_up_refuses_an_undetermined_actual():
    est = estimate_reading(HISTORY[-1], at(7, 30), periods_from_readings(HISTORY))
    with pytest.raises(ValueError, match="review"):
        true_up([est], reading("1500", at(8, 2)))  # below 1540, not a rollover
