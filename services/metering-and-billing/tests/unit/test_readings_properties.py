"""Property tests (hypothesis) of the meter reading rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.domain.readings import (
    ConsumptionKind,
    MeteringConfig,
    MeterReading,
    MeterReplacement,
    PeriodConsumption,
    ReadingSource,
    check_reading,
    consumption_between,
    estimate_reading,
    robust_score,
    true_up,
)

SETTINGS = settings(max_examples=200, deadline=None)
T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
NOW = datetime(2027, 1, 1, tzinfo=UTC)

digits_st = st.integers(min_value=3, max_value=8)
places_st = st.integers(min_value=0, max_value=3)


def reading(value: Decimal, when: datetime, digits: int, serial: str = "M1") -> MeterReading:
    return MeterReading(serial, ReadingSource.REMOTE_BATCH, when, value, digits, "batch-1")


@st.composite
def register_value(draw, digits: int, places: int | None = None) -> Decimal:
    places = draw(places_st) if places is None else places
    units = draw(st.integers(min_value=0, max_value=10 ** (digits + places) - 1))
    return Decimal(units).scaleb(-places)


@st.composite
def reading_pair(draw):
    """Two readings of a meter (or of an old and a new meter, with or without a replacement record)."""
    digits = draw(digits_st)
    prev = reading(draw(register_value(digits)), T0, digits)
    days = draw(st.integers(min_value=1, max_value=120))
    later = T0 + timedelta(days=days)
    serial = draw(st.sampled_from(["M1", "M1", "M1", "M2"]))
    cur = reading(draw(register_value(digits)), later, digits, serial)
    replacements = []
    if draw(st.booleans()):
        replacements.append(
            MeterReplacement(
                T0 + timedelta(days=draw(st.integers(min_value=0, max_value=days + 5))),
                draw(st.sampled_from(["M1", "M0"])),
                draw(register_value(digits)),
                draw(st.sampled_from(["M2", "M1"])),
                draw(register_value(digits)),
            )
        )
    return prev, cur, replacements


@SETTINGS
@given(reading_pair())
def test_consumption_is_never_negative(pair):
    prev, cur, replacements = pair
    used = consumption_between(prev, cur, replacements)
    if used.volume is None:
        assert used.kind is ConsumptionKind.UNDETERMINED
        assert any(f.needs_review for f in used.flags)
    else:
        assert used.volume >= 0
        assert used.kind is not ConsumptionKind.UNDETERMINED
    check = check_reading(cur, [prev], now=NOW, replacements=replacements)
    assert check.consumption is None or check.consumption >= 0
    assert check.consumption == used.volume


@SETTINGS
@given(reading_pair())
def test_a_rollover_is_capacity_minus_previous_plus_current(pair):
    prev, cur, replacements = pair
    used = consumption_between(prev, cur, replacements)
    if used.kind is ConsumptionKind.ROLLOVER:
        assert used.volume == (Decimal(10) ** prev.digits - prev.value) + cur.value
        assert cur.value < prev.value


@st.composite
def rollover_pair(draw):
    """A previous value in the top 10% of the register and a current value that keeps the implied
    consumption within 10% of the register: a rollover by the default rule."""
    digits = draw(digits_st)
    places = draw(places_st)
    capacity = Decimal(10) ** digits
    step = Decimal(1).scaleb(-places)
    top = int(capacity / 10 / step)  # units in the top 10%
    prev_units_from_top = draw(st.integers(min_value=1, max_value=top))  # capacity − prev, in units
    prev_value = capacity - prev_units_from_top * step
    room = top - prev_units_from_top  # implied ≤ capacity / 10
    cur_value = draw(st.integers(min_value=0, max_value=room)) * step
    assume(cur_value < prev_value)
    return reading(prev_value, T0, digits), reading(cur_value, T0 + timedelta(days=30), digits)


@SETTINGS
@given(rollover_pair())
def test_top_of_register_wraps_as_a_rollover(pair):
    prev, cur = pair
    used = consumption_between(prev, cur)
    assert used.kind is ConsumptionKind.ROLLOVER
    assert used.volume == (Decimal(10) ** prev.digits - prev.value) + cur.value


daily_st = st.decimals(min_value=0, max_value=500, places=3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(
    past=st.lists(daily_st, min_size=0, max_size=15),
    x=daily_st,
    shift=st.decimals(min_value=-1000, max_value=100000, places=4, allow_nan=False, allow_infinity=False),
    threshold=st.sampled_from([Decimal("2.5"), Decimal("3.5"), Decimal(5)]),
    tolerance=st.sampled_from([Decimal(0), Decimal("0.5")]),
)
def test_mad_flagging_is_invariant_under_a_constant_shift(past, x, shift, threshold, tolerance):
    cfg = MeteringConfig(mad_threshold=threshold, flat_history_tolerance=tolerance)
    base = robust_score(past, x, cfg)
    moved = robust_score([v + shift for v in past], x + shift, cfg)
    assert moved.deviation == base.deviation
    assert moved.mad == base.mad
    assert moved.scale == base.scale
    if base.median is not None:
        assert moved.median == base.median + shift


@SETTINGS
@given(
    past=st.lists(daily_st, min_size=4, max_size=15),
    x=daily_st,
)
def test_flag_agrees_with_the_modified_z_score(past, x):
    s = robust_score(past, x)
    if s.score is not None:
        assert s.is_outlier == (abs(s.score) > Decimal("3.5"))


@st.composite
def estimate_case(draw):
    digits = draw(st.integers(min_value=4, max_value=7))
    places = draw(st.integers(min_value=0, max_value=2))
    periods = []
    start = T0 - timedelta(days=400)
    for _ in range(draw(st.integers(min_value=1, max_value=14))):
        length = draw(st.integers(min_value=20, max_value=62))
        used = Decimal(draw(st.integers(min_value=0, max_value=5000))).scaleb(-places)
        periods.append(PeriodConsumption(start, start + timedelta(days=length), used))
        start += timedelta(days=length)
    base = reading(draw(register_value(digits, places)), start, digits)
    n_estimates = draw(st.integers(min_value=1, max_value=3))
    estimates = []
    at = base
    for _ in range(n_estimates):
        e = estimate_reading(at, at.read_at + timedelta(days=draw(st.integers(1, 62))), periods)
        estimates.append(e)
        at = e.reading
    actual_used = Decimal(draw(st.integers(min_value=0, max_value=10 ** (digits + places) // 20))).scaleb(
        -places
    )
    later = at.read_at + timedelta(days=draw(st.integers(1, 30)))
    actual = reading((base.value + actual_used) % base.capacity, later, digits)
    return estimates, actual, actual_used


@SETTINGS
@given(estimate_case())
def test_estimates_plus_true_up_equal_the_actual_consumption(case):
    estimates, actual, actual_used = case
    up = true_up(estimates, actual)
    # actual_used is at most 5% of the register, so a wrap is a plausible rollover and is measured back.
    assert up.actual_consumption == actual_used
    assert sum((e.consumption for e in estimates), Decimal(0)) + up.correction == actual_used
    assert all(e.consumption >= 0 for e in estimates)
    assert all(e.reading.source is ReadingSource.ESTIMATED for e in estimates)
    assert (up.correction > 0) == (up.direction == "debit")
    assert (up.correction < 0) == (up.direction == "credit")
