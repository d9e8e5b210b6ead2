"""Meter readings (抄表读数): the reading value object, its validation and anomaly flags against the meter's
history, estimated readings (估抄) and their true-up (多退少补). Pure rules: no I/O, no clock (``now`` is an
argument), no float anywhere: values, consumption and statistics are ``Decimal``.

Decisions:

* **Previous reading.** A new reading is compared with the latest *actual* (non-estimated) reading of the
  account's meter history. Estimated readings never serve as a base: the volume billed on estimates is
  corrected by :func:`true_up` once the actual reading arrives, so an actual value below an over-estimate
  is not an error.
* **Value below the previous one** (:func:`consumption_between`), in this order:
    1. a recorded :class:`MeterReplacement` between the two readings → ``REPLACEMENT``; consumption =
       (old meter's final value − previous) + (current − new meter's initial value). A record that does not
       match the two meters' serials, or a part that comes out negative, is an error for review;
    2. no record, but the serial changed or (same serial) the value is close to a new meter's initial
       reading (≤ ``new_meter_initial_max``) and no rollover fits → an unrecorded replacement, for review;
    3. same meter, the previous value within the top ``rollover_near_fraction`` of the register
       (≥ 10^digits × (1 − fraction)) and the implied consumption (10^digits − previous) + current at most
       ``rollover_max_fraction`` × 10^digits → ``ROLLOVER`` (the register wrapped);
    4. anything else → an error (``value_decreased``), for review.
  Where the consumption cannot be determined it is ``None`` (never billed, never negative); the review queue
  decides (correct the reading, record the replacement, or issue an estimate).
* **Consumption far off the account's own history**: robust statistics on past periods' *daily*
  consumption (consumption ÷ days, days to the second, so monthly and bimonthly periods compare). With the
  median ``m`` and the median absolute deviation ``MAD`` of those daily values, the new period's daily
  value ``x`` is an outlier when |x − m| > threshold × 1.4826 × MAD (the modified z-score of Iglewicz and
  Hoaglin; threshold 3.5 by default; compared by multiplication, so exact in Decimal).
    - fewer than ``min_periods`` (4) usable past periods: no statistical test; an informational flag says
      so (the other checks still run);
    - MAD = 0 (more than half the periods equal the median): the scale falls back to 1.253314 × the mean
      absolute deviation from the median (the usual substitute, same consistency for a normal law);
    - all past daily values equal (both scales 0): outlier when |x − m| > ``flat_history_tolerance``
      (absolute, per day; default 0: any change from a perfectly flat history goes to review — such
      histories are contract or estimated figures rather than metered use).
  Every rule here depends only on differences from the median, so adding a constant to all daily values
  never changes the verdict (tested). The default past periods are the last ``history_periods`` (12) ones
  derived from the actual readings; an account with strong seasonality can pass its own comparable periods
  (e.g. the same months of past years) as ``periods``.
* **Zero consumption** for an occupied premise goes to review; a vacant or suspended premise may read 0.
* **Missing period**: when an expected cycle is configured and the time since the latest reading of any
  kind (an estimate fills a missed cycle) exceeds cycle × (1 + ``cycle_tolerance``), at least one cycle had
  no reading. :func:`missing_cycles` lists, for the service's estimator, the expected windows with none.
* **Time**: a reading more than ``future_tolerance`` after ``now`` is in the future; one not after the
  previous actual reading is out of order. Both go to review with no consumption.
* **Estimation** (:func:`estimate_reading`): the same period last year when the past periods cover at least
  ``same_period_min_coverage`` (80%) of the window shifted back one year (the overlap-weighted daily rate
  of those periods × days; it follows the seasons, which matter for heating and gas), else the median
  daily consumption of the last ``history_periods`` periods × days. The consumption is rounded half up to
  the base reading's own decimal places; the estimated value wraps at 10^digits like the register.
* **True-up** (:func:`true_up`): actual consumption from the last actual reading (the first estimate's
  base) to the actual reading, minus the sum of the estimated consumption billed since: positive → a debit
  (补收), negative → a credit (退还) on a later bill. Estimated + correction = actual, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from itertools import pairwise

SECONDS_PER_DAY = Decimal(86_400)
MAD_CONSISTENCY = Decimal("1.4826")  # 1 / Φ⁻¹(3/4): MAD → standard deviation for a normal law
MEAN_AD_CONSISTENCY = Decimal("1.253314")  # √(π/2): mean absolute deviation → standard deviation
_PRECISION = 50


# --------------------------------------------------------------------------------------------------
# The reading


class ReadingSource(StrEnum):
    MANUAL = "manual"  # 抄表员现场抄表
    REMOTE_BATCH = "remote_batch"  # 远传表批量上传
    IOT_GATEWAY = "iot_gateway"  # 物联网网关上报
    SELF_REPORTED = "self_reported"  # 居民自报（附照片）
    ESTIMATED = "estimated"  # 估抄


SOURCE_NAMES_ZH: dict[ReadingSource, str] = {
    ReadingSource.MANUAL: "人工抄表",
    ReadingSource.REMOTE_BATCH: "远传抄表",
    ReadingSource.IOT_GATEWAY: "物联网抄表",
    ReadingSource.SELF_REPORTED: "用户自报",
    ReadingSource.ESTIMATED: "估抄",
}


def _utc(instant: datetime, what: str) -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"{what} must be a datetime")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what}: naive datetimes are ambiguous; pass aware instants (UTC)")
    return instant.astimezone(UTC)


def _decimal(value: object, what: str) -> Decimal:
    # bool is an int, float is inexact: only Decimal is accepted.
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{what} must be finite")
    return value


@dataclass(frozen=True)
class MeterReading:
    """One register reading of one meter. ``digits`` is the number of integer digits of the register: it
    shows values in [0, 10^digits) and wraps to 0 after 10^digits − 1."""

    meter_serial: str
    source: ReadingSource
    read_at: datetime  # aware; normalised to UTC
    value: Decimal
    digits: int
    entered_by: str  # meter reader's id, batch or gateway id, resident's account, or "system:estimator"
    photo_ref: str | None = None  # required for self-reported readings

    def __post_init__(self) -> None:
        if not self.meter_serial:
            raise ValueError("meter_serial is required")
        if not self.entered_by:
            raise ValueError("entered_by is required")
        object.__setattr__(self, "source", ReadingSource(self.source))
        object.__setattr__(self, "read_at", _utc(self.read_at, "read_at"))
        _decimal(self.value, "value")
        if isinstance(self.digits, bool) or not isinstance(self.digits, int) or not 1 <= self.digits <= 15:
            raise ValueError("digits must be an integer from 1 to 15")
        if not Decimal(0) <= self.value < self.capacity:
            raise ValueError(f"value {self.value} outside the register range [0, {self.capacity})")
        if self.source is ReadingSource.SELF_REPORTED and not self.photo_ref:
            raise ValueError("a self-reported reading needs a photo reference")

    @property
    def capacity(self) -> Decimal:
        """10^digits: the register wraps to 0 there."""
        return Decimal(10) ** self.digits

    @property
    def is_estimated(self) -> bool:
        return self.source is ReadingSource.ESTIMATED


@dataclass(frozen=True)
class MeterReplacement:
    """换表: the old meter's final reading and the new meter's initial reading at the change."""

    replaced_at: datetime
    old_serial: str
    old_final_value: Decimal
    new_serial: str
    new_initial_value: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "replaced_at", _utc(self.replaced_at, "replaced_at"))
        if _decimal(self.old_final_value, "old_final_value") < 0:
            raise ValueError("old_final_value must not be negative")
        if _decimal(self.new_initial_value, "new_initial_value") < 0:
            raise ValueError("new_initial_value must not be negative")


@dataclass(frozen=True)
class MeteringConfig:
    """The thresholds of the checks; a utility configures its own (data, not code)."""

    mad_threshold: Decimal = Decimal("3.5")
    min_periods: int = 4
    history_periods: int = 12
    flat_history_tolerance: Decimal = Decimal(0)  # per day, absolute, for a perfectly flat history
    rollover_near_fraction: Decimal = Decimal("0.1")
    rollover_max_fraction: Decimal = Decimal("0.1")
    new_meter_initial_max: Decimal = Decimal(10)
    future_tolerance: timedelta = timedelta(minutes=5)
    expected_cycle: timedelta | None = None  # e.g. 30 days (monthly) or 61 days (bimonthly)
    cycle_tolerance: Decimal = Decimal("0.5")
    same_period_min_coverage: Decimal = Decimal("0.8")

    def __post_init__(self) -> None:
        if self.mad_threshold <= 0:
            raise ValueError("mad_threshold must be positive")
        if self.min_periods < 1 or self.history_periods < self.min_periods:
            raise ValueError("need 1 <= min_periods <= history_periods")
        if self.flat_history_tolerance < 0:
            raise ValueError("flat_history_tolerance must not be negative")
        for name in ("rollover_near_fraction", "rollover_max_fraction", "same_period_min_coverage"):
            if not Decimal(0) < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        if self.expected_cycle is not None and self.expected_cycle <= timedelta(0):
            raise ValueError("expected_cycle must be positive")


DEFAULT_CONFIG = MeteringConfig()


# --------------------------------------------------------------------------------------------------
# Flags


class FlagCode(StrEnum):
    """Stable codes: stored with the review item and used by the agent UI; never renamed."""

    ROLLOVER = "rollover"
    METER_REPLACED = "meter_replaced"
    REPLACEMENT_INCONSISTENT = "replacement_inconsistent"
    REPLACEMENT_UNRECORDED = "replacement_unrecorded"
    VALUE_DECREASED = "value_decreased"
    CONSUMPTION_HIGH = "consumption_high"
    CONSUMPTION_LOW = "consumption_low"
    INSUFFICIENT_HISTORY = "insufficient_history"
    ZERO_CONSUMPTION = "zero_consumption"
    MISSING_PERIOD = "missing_period"
    FUTURE_READING = "future_reading"
    NOT_AFTER_PREVIOUS = "not_after_previous"
    FIRST_READING = "first_reading"


# code → (needs review, Chinese text, English text); the texts are templates filled by ``_flag``.
FLAG_CATALOGUE: dict[FlagCode, tuple[bool, str, str]] = {
    FlagCode.ROLLOVER: (
        False,
        "表盘翻转：上次读数 {previous}，本次读数 {current}，按 {capacity} 进位计算用量 {consumption}。",
        "Register rollover: previous {previous}, current {current}; consumption {consumption} "
        "computed across {capacity}.",
    ),
    FlagCode.METER_REPLACED: (
        False,
        "期间换表（{old_serial} → {new_serial}），用量按旧表止码与新表起码分段计算：{consumption}。",
        "Meter replaced ({old_serial} → {new_serial}); consumption {consumption} computed in two parts.",
    ),
    FlagCode.REPLACEMENT_INCONSISTENT: (
        True,
        "换表记录与读数不一致：{detail}，请核实。",
        "Meter replacement record inconsistent with the readings: {detail}; please verify.",
    ),
    FlagCode.REPLACEMENT_UNRECORDED: (
        True,
        "疑似换表但无换表记录：上次读数 {previous}（表号 {old_serial}），本次读数 {current}"
        "（表号 {new_serial}），请补录换表信息。",
        "Suspected meter replacement without a record: previous {previous} (meter {old_serial}), "
        "current {current} (meter {new_serial}); please record the replacement.",
    ),
    FlagCode.VALUE_DECREASED: (
        True,
        "本次读数 {current} 小于上次读数 {previous}，且不符合翻表或换表特征，疑似抄错。",
        "Reading {current} is below the previous {previous} and fits neither a rollover nor a meter "
        "replacement: probably a misread.",
    ),
    FlagCode.CONSUMPTION_HIGH: (
        True,
        "用量异常偏高：日均 {daily}，历史日均中位数 {median}，偏离 {score} 倍（阈值 {threshold}）。",
        "Consumption unusually high: {daily} per day against a historical median of {median} "
        "(score {score}, threshold {threshold}).",
    ),
    FlagCode.CONSUMPTION_LOW: (
        True,
        "用量异常偏低：日均 {daily}，历史日均中位数 {median}，偏离 {score} 倍（阈值 {threshold}）。",
        "Consumption unusually low: {daily} per day against a historical median of {median} "
        "(score {score}, threshold {threshold}).",
    ),
    FlagCode.INSUFFICIENT_HISTORY: (
        False,
        "历史周期不足 {min_periods} 个（现有 {periods} 个），未做用量偏离检查。",
        "Fewer than {min_periods} past periods ({periods}); consumption deviation not checked.",
    ),
    FlagCode.ZERO_CONSUMPTION: (
        True,
        "在住房屋本期用量为零，请核实表具是否正常。",
        "Zero consumption for an occupied premise; please check the meter.",
    ),
    FlagCode.MISSING_PERIOD: (
        True,
        "距上次读数已 {days} 天，约缺少 {cycles} 个抄表周期的读数。",
        "{days} days since the previous reading: about {cycles} expected reading cycle(s) missing.",
    ),
    FlagCode.FUTURE_READING: (
        True,
        "抄表时间 {read_at} 晚于当前时间，请核实。",
        "Reading time {read_at} is in the future; please verify.",
    ),
    FlagCode.NOT_AFTER_PREVIOUS: (
        True,
        "抄表时间 {read_at} 不晚于上次抄表时间 {previous_at}，请核实。",
        "Reading time {read_at} is not after the previous reading at {previous_at}; please verify.",
    ),
    FlagCode.FIRST_READING: (
        False,
        "该表首次读数，无可比较的上次读数。",
        "First reading of this meter: nothing to compare with.",
    ),
}


@dataclass(frozen=True)
class ReadingFlag:
    code: FlagCode
    needs_review: bool
    message_zh: str
    message_en: str


def _flag(code: FlagCode, **values: object) -> ReadingFlag:
    review, zh, en = FLAG_CATALOGUE[code]
    shown = {k: (_show(v) if isinstance(v, Decimal) else v) for k, v in values.items()}
    return ReadingFlag(code, review, zh.format(**shown), en.format(**shown))


def _show(value: Decimal) -> str:
    """A Decimal for a message: at most 3 decimal places, no exponent, no trailing zeros."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        text = format(value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# --------------------------------------------------------------------------------------------------
# Consumption between two readings


class ConsumptionKind(StrEnum):
    NORMAL = "normal"
    ROLLOVER = "rollover"
    REPLACEMENT = "replacement"
    UNDETERMINED = "undetermined"  # needs review; consumption is None


@dataclass(frozen=True)
class Consumption:
    kind: ConsumptionKind
    volume: Decimal | None  # never negative; None when undetermined
    flags: tuple[ReadingFlag, ...] = ()


def consumption_between(
    previous: MeterReading,
    current: MeterReading,
    replacements: Iterable[MeterReplacement] = (),
    config: MeteringConfig = DEFAULT_CONFIG,
) -> Consumption:
    """Volume used from ``previous`` to ``current`` (``current`` read later), classified as normal,
    rollover, meter replacement or undetermined (an error for review). See the module notes."""
    between = [r for r in replacements if previous.read_at < r.replaced_at <= current.read_at]
    if between:
        return _across_replacement(previous, current, between)

    if current.meter_serial != previous.meter_serial:
        return Consumption(
            ConsumptionKind.UNDETERMINED,
            None,
            (_unrecorded_replacement(previous, current),),
        )

    if current.value >= previous.value:
        return Consumption(ConsumptionKind.NORMAL, current.value - previous.value)

    capacity = previous.capacity
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        implied = capacity - previous.value + current.value
        near_top = previous.value >= capacity * (1 - config.rollover_near_fraction)
        plausible = implied <= capacity * config.rollover_max_fraction
    if current.digits == previous.digits and near_top and plausible:
        flag = _flag(
            FlagCode.ROLLOVER,
            previous=previous.value,
            current=current.value,
            capacity=capacity,
            consumption=implied,
        )
        return Consumption(ConsumptionKind.ROLLOVER, implied, (flag,))

    if current.value <= config.new_meter_initial_max:
        return Consumption(
            ConsumptionKind.UNDETERMINED,
            None,
            (_unrecorded_replacement(previous, current),),
        )
    flag = _flag(FlagCode.VALUE_DECREASED, previous=previous.value, current=current.value)
    return Consumption(ConsumptionKind.UNDETERMINED, None, (flag,))


def _unrecorded_replacement(previous: MeterReading, current: MeterReading) -> ReadingFlag:
    return _flag(
        FlagCode.REPLACEMENT_UNRECORDED,
        previous=previous.value,
        current=current.value,
        old_serial=previous.meter_serial,
        new_serial=current.meter_serial,
    )


def _across_replacement(
    previous: MeterReading, current: MeterReading, between: list[MeterReplacement]
) -> Consumption:
    def inconsistent(detail_zh: str, detail_en: str) -> Consumption:
        review, zh, en = FLAG_CATALOGUE[FlagCode.REPLACEMENT_INCONSISTENT]
        flag = ReadingFlag(
            FlagCode.REPLACEMENT_INCONSISTENT,
            review,
            zh.format(detail=detail_zh),
            en.format(detail=detail_en),
        )
        return Consumption(ConsumptionKind.UNDETERMINED, None, (flag,))

    if len(between) > 1:
        return inconsistent(
            f"两次读数之间有 {len(between)} 条换表记录", f"{len(between)} replacements between"
        )
    (rep,) = between
    if rep.old_serial != previous.meter_serial or rep.new_serial != current.meter_serial:
        return inconsistent(
            f"换表记录 {rep.old_serial} → {rep.new_serial}，读数表号 {previous.meter_serial} → "
            f"{current.meter_serial}",
            f"record {rep.old_serial} → {rep.new_serial}, readings {previous.meter_serial} → "
            f"{current.meter_serial}",
        )
    old_part = rep.old_final_value - previous.value
    new_part = current.value - rep.new_initial_value
    if old_part < 0:
        return inconsistent(
            f"旧表止码 {_show(rep.old_final_value)} 小于上次读数 {_show(previous.value)}",
            f"old meter's final value {_show(rep.old_final_value)} below the previous reading "
            f"{_show(previous.value)}",
        )
    if new_part < 0:
        return inconsistent(
            f"本次读数 {_show(current.value)} 小于新表起码 {_show(rep.new_initial_value)}",
            f"reading {_show(current.value)} below the new meter's initial value "
            f"{_show(rep.new_initial_value)}",
        )
    volume = old_part + new_part
    flag = _flag(
        FlagCode.METER_REPLACED, old_serial=rep.old_serial, new_serial=rep.new_serial, consumption=volume
    )
    return Consumption(ConsumptionKind.REPLACEMENT, volume, (flag,))


# --------------------------------------------------------------------------------------------------
# Periods and robust statistics


@dataclass(frozen=True)
class PeriodConsumption:
    """A past period's consumption between two readings, [start, end)."""

    start: datetime
    end: datetime
    consumption: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "start"))
        object.__setattr__(self, "end", _utc(self.end, "end"))
        if self.end <= self.start:
            raise ValueError("a period must end after it starts")
        if _decimal(self.consumption, "consumption") < 0:
            raise ValueError("consumption must not be negative")

    @property
    def days(self) -> Decimal:
        return days_between(self.start, self.end)

    @property
    def daily(self) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            return self.consumption / self.days


def days_between(start: datetime, end: datetime) -> Decimal:
    """Days from ``start`` to ``end``, exact to the microsecond, as a Decimal."""
    delta = end - start
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return Decimal(micros) / (SECONDS_PER_DAY * 1_000_000)


def periods_from_readings(
    readings: Iterable[MeterReading],
    replacements: Iterable[MeterReplacement] = (),
    config: MeteringConfig = DEFAULT_CONFIG,
) -> list[PeriodConsumption]:
    """The periods between consecutive actual readings (estimates skipped), oldest first; a pair whose
    consumption is undetermined (an error) gives no period."""
    reps = tuple(replacements)
    actual = sorted((r for r in readings if not r.is_estimated), key=lambda r: r.read_at)
    periods = []
    for prev, cur in pairwise(actual):
        if cur.read_at <= prev.read_at:
            continue
        used = consumption_between(prev, cur, reps, config)
        if used.volume is not None:
            periods.append(PeriodConsumption(prev.read_at, cur.read_at, used.volume))
    return periods


def median(values: Sequence[Decimal]) -> Decimal:
    if not values:
        raise ValueError("median of nothing")
    ordered = sorted(values)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


class Deviation(StrEnum):
    NONE = "none"
    HIGH = "high"
    LOW = "low"
    NOT_CHECKED = "not_checked"  # too few periods


@dataclass(frozen=True)
class RobustScore:
    """The verdict of the robust check for one daily value ``x`` against past daily values."""

    deviation: Deviation
    x: Decimal
    periods: int
    median: Decimal | None = None
    mad: Decimal | None = None
    scale: Decimal | None = None  # 1.4826·MAD, or 1.253314·mean AD when MAD = 0, or 0 for flat history
    score: Decimal | None = None  # (x − median) / scale; None when the scale is 0

    @property
    def is_outlier(self) -> bool:
        return self.deviation in (Deviation.HIGH, Deviation.LOW)


def robust_score(
    past_daily: Sequence[Decimal], x: Decimal, config: MeteringConfig = DEFAULT_CONFIG
) -> RobustScore:
    """Median/MAD outlier test of ``x`` against ``past_daily`` (see the module notes)."""
    n = len(past_daily)
    if n < config.min_periods:
        return RobustScore(Deviation.NOT_CHECKED, x, n)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        m = median(past_daily)
        deviations = [abs(v - m) for v in past_daily]
        mad = median(deviations)
        # MAD = 0 (over half the values equal the median): fall back to the mean absolute deviation.
        mean_ad = sum(deviations, Decimal(0)) / n
        scale = MAD_CONSISTENCY * mad if mad > 0 else MEAN_AD_CONSISTENCY * mean_ad
        distance = x - m
        if scale > 0:
            outlier = abs(distance) > config.mad_threshold * scale
            score: Decimal | None = distance / scale
        else:
            outlier = abs(distance) > config.flat_history_tolerance
            score = None
    deviation = Deviation.NONE if not outlier else Deviation.HIGH if distance > 0 else Deviation.LOW
    return RobustScore(deviation, x, n, m, mad, scale, score)


# --------------------------------------------------------------------------------------------------
# Checking a new reading


@dataclass(frozen=True)
class ReadingCheck:
    """The result of :func:`check_reading`: what goes to the review queue, or on to billing."""

    reading: MeterReading
    previous: MeterReading | None  # the latest actual reading compared with
    kind: ConsumptionKind | None  # None when nothing was compared (first reading, time errors)
    consumption: Decimal | None  # from ``previous`` to ``reading``; None when not determined
    flags: tuple[ReadingFlag, ...]
    statistics: RobustScore | None = None

    @property
    def needs_review(self) -> bool:
        return any(f.needs_review for f in self.flags)

    @property
    def codes(self) -> tuple[FlagCode, ...]:
        return tuple(f.code for f in self.flags)

    @property
    def billable(self) -> bool:
        return self.consumption is not None and not self.needs_review


def check_reading(
    reading: MeterReading,
    history: Iterable[MeterReading],
    *,
    now: datetime,
    replacements: Iterable[MeterReplacement] = (),
    occupied: bool = True,
    periods: Sequence[PeriodConsumption] | None = None,
    config: MeteringConfig = DEFAULT_CONFIG,
) -> ReadingCheck:
    """Validate a new reading against the meter's history (the account's earlier readings, any source)
    and flag anomalies. ``periods`` overrides the past periods derived from ``history`` for the
    statistical check. ``occupied``: the premise is lived in / not suspended."""
    now = _utc(now, "now")
    history = [r for r in history if r is not reading]
    reps = tuple(replacements)
    flags: list[ReadingFlag] = []

    if reading.read_at > now + config.future_tolerance:
        flags.append(_flag(FlagCode.FUTURE_READING, read_at=reading.read_at.isoformat()))

    actual = [r for r in history if not r.is_estimated]
    previous = max(actual, key=lambda r: r.read_at, default=None)
    if previous is None:
        flags.append(_flag(FlagCode.FIRST_READING))
        return ReadingCheck(reading, None, None, None, tuple(flags))
    if reading.read_at <= previous.read_at:
        flags.append(
            _flag(
                FlagCode.NOT_AFTER_PREVIOUS,
                read_at=reading.read_at.isoformat(),
                previous_at=previous.read_at.isoformat(),
            )
        )
        return ReadingCheck(reading, previous, None, None, tuple(flags))

    latest_any = max((r.read_at for r in history if r.read_at < reading.read_at), default=previous.read_at)
    missing = _missing_period(latest_any, reading.read_at, config)
    if missing is not None:
        flags.append(missing)

    used = consumption_between(previous, reading, reps, config)
    flags.extend(used.flags)
    if any(f.code is FlagCode.FUTURE_READING for f in flags):
        return ReadingCheck(reading, previous, used.kind, None, tuple(flags))
    if used.volume is None:
        return ReadingCheck(reading, previous, used.kind, None, tuple(flags))

    if used.volume == 0 and occupied:
        flags.append(_flag(FlagCode.ZERO_CONSUMPTION))

    past = list(periods) if periods is not None else periods_from_readings(actual, reps, config)
    past = sorted(past, key=lambda p: p.end)[-config.history_periods :]
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        x = used.volume / days_between(previous.read_at, reading.read_at)
    stats = robust_score([p.daily for p in past], x, config)
    if stats.deviation is Deviation.NOT_CHECKED:
        flags.append(_flag(FlagCode.INSUFFICIENT_HISTORY, min_periods=config.min_periods, periods=len(past)))
    elif stats.is_outlier:
        code = FlagCode.CONSUMPTION_HIGH if stats.deviation is Deviation.HIGH else FlagCode.CONSUMPTION_LOW
        score = "∞" if stats.score is None else _show(abs(stats.score))
        flags.append(_flag(code, daily=x, median=stats.median, score=score, threshold=config.mad_threshold))
    return ReadingCheck(reading, previous, used.kind, used.volume, tuple(flags), stats)


def _missing_period(since: datetime, at: datetime, config: MeteringConfig) -> ReadingFlag | None:
    cycle = config.expected_cycle
    if cycle is None:
        return None
    gap = at - since
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        ratio = days_between(since, at) / days_between(since, since + cycle)
        if ratio <= 1 + config.cycle_tolerance:
            return None
        cycles = max(1, int(ratio.to_integral_value(rounding=ROUND_HALF_UP)) - 1)
    return _flag(FlagCode.MISSING_PERIOD, days=gap.days, cycles=cycles)


@dataclass(frozen=True)
class ExpectedCycle:
    """A reading window the schedule expects a reading in, [opens, closes)."""

    label: str  # e.g. "2026-11"
    opens: datetime
    closes: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "opens", _utc(self.opens, "opens"))
        object.__setattr__(self, "closes", _utc(self.closes, "closes"))
        if self.closes <= self.opens:
            raise ValueError("a cycle must close after it opens")


def missing_cycles(
    readings: Iterable[MeterReading], cycles: Iterable[ExpectedCycle], *, now: datetime
) -> list[ExpectedCycle]:
    """The expected cycles, already closed at ``now``, with no reading of any source inside them."""
    now = _utc(now, "now")
    times = sorted(r.read_at for r in readings)
    out = []
    for cycle in cycles:
        if cycle.closes > now:
            continue
        if not any(cycle.opens <= t < cycle.closes for t in times):
            out.append(cycle)
    return out


# --------------------------------------------------------------------------------------------------
# Estimation and true-up


class EstimationMethod(StrEnum):
    SAME_PERIOD_LAST_YEAR = "same_period_last_year"
    MEDIAN_DAILY = "median_daily"


class NotEnoughHistory(ValueError):
    """No usable past period to estimate from: the reading needs a person (or a site visit)."""


@dataclass(frozen=True)
class Estimate:
    reading: MeterReading  # source ESTIMATED
    base: MeterReading  # what the estimate starts from: the last actual reading or the previous estimate
    consumption: Decimal
    method: EstimationMethod
    daily_rate: Decimal
    days: Decimal


def _one_year_earlier(instant: datetime) -> datetime:
    try:
        return instant.replace(year=instant.year - 1)
    except ValueError:  # 29 February
        return instant.replace(year=instant.year - 1, day=28)


def estimate_reading(
    base: MeterReading,
    at: datetime,
    periods: Sequence[PeriodConsumption],
    *,
    entered_by: str = "system:estimator",
    config: MeteringConfig = DEFAULT_CONFIG,
) -> Estimate:
    """Estimate the reading at ``at`` from ``base`` (the latest reading, actual or estimated) and the past
    periods' consumption. See the module notes for the method."""
    at = _utc(at, "at")
    if at <= base.read_at:
        raise ValueError("an estimate must be later than its base reading")
    days = days_between(base.read_at, at)
    usable = sorted(periods, key=lambda p: p.end)
    if not usable:
        raise NotEnoughHistory("no past period to estimate from")

    with localcontext() as ctx:
        ctx.prec = _PRECISION
        window_start, window_end = _one_year_earlier(base.read_at), _one_year_earlier(at)
        covered = Decimal(0)
        weighted = Decimal(0)
        for p in usable:
            lo, hi = max(p.start, window_start), min(p.end, window_end)
            if hi > lo:
                overlap = days_between(lo, hi)
                covered += overlap
                weighted += p.daily * overlap
        window_days = days_between(window_start, window_end)
        if window_days > 0 and covered >= config.same_period_min_coverage * window_days:
            method = EstimationMethod.SAME_PERIOD_LAST_YEAR
            rate = weighted / covered
        else:
            method = EstimationMethod.MEDIAN_DAILY
            rate = median([p.daily for p in usable[-config.history_periods :]])
        quantum = Decimal(1).scaleb(min(base.value.as_tuple().exponent, 0))
        consumption = (rate * days).quantize(quantum, rounding=ROUND_HALF_UP)
        value = (base.value + consumption) % base.capacity
    reading = MeterReading(
        meter_serial=base.meter_serial,
        source=ReadingSource.ESTIMATED,
        read_at=at,
        value=value,
        digits=base.digits,
        entered_by=entered_by,
    )
    return Estimate(reading, base, consumption, method, rate, days)


class CorrectionDirection(StrEnum):
    DEBIT = "debit"  # 补收: the actual use was higher than billed
    CREDIT = "credit"  # 退还: the actual use was lower than billed
    NONE = "none"


@dataclass(frozen=True)
class TrueUp:
    actual_reading: MeterReading
    actual_consumption: Decimal  # from the last actual reading to the actual reading
    estimated_consumption: Decimal  # the sum billed on estimates in between
    correction: Decimal  # actual − estimated: the volume to bill (> 0) or credit (< 0) later
    direction: CorrectionDirection
    description_zh: str
    description_en: str


def true_up(
    estimates: Sequence[Estimate],
    actual: MeterReading,
    replacements: Iterable[MeterReplacement] = (),
    config: MeteringConfig = DEFAULT_CONFIG,
) -> TrueUp:
    """The correction once the actual reading arrives after one or more chained estimates.

    Raises ``ValueError`` when the chain is broken or the actual consumption cannot be determined (the
    reading is for review first)."""
    if not estimates:
        raise ValueError("nothing to true up")
    for earlier, later in pairwise(estimates):
        if later.base != earlier.reading:
            raise ValueError("estimates must be chained: each based on the previous one")
    start = estimates[0].base
    if start.is_estimated:
        raise ValueError("the first estimate must start from an actual reading")
    if actual.is_estimated:
        raise ValueError("a true-up needs an actual reading")
    if actual.read_at <= start.read_at:
        raise ValueError("the actual reading must be later than the last actual reading")
    used = consumption_between(start, actual, replacements, config)
    if used.volume is None:
        raise ValueError("the actual consumption is undetermined; review the reading first")
    estimated = sum((e.consumption for e in estimates), Decimal(0))
    correction = used.volume - estimated
    act, est, diff = _show(used.volume), _show(estimated), _show(abs(correction))
    if correction > 0:
        direction = CorrectionDirection.DEBIT
        zh = f"估抄多退少补：实际用量 {act}，已按估抄计费 {est}，补收 {diff}。"
        en = f"True-up: actual {act}, billed on estimates {est}; debit {diff}."
    elif correction < 0:
        direction = CorrectionDirection.CREDIT
        zh = f"估抄多退少补：实际用量 {act}，已按估抄计费 {est}，退还 {diff}。"
        en = f"True-up: actual {act}, billed on estimates {est}; credit {diff}."
    else:
        direction = CorrectionDirection.NONE
        zh = f"估抄多退少补：实际用量 {act} 与估抄一致，无需调整。"
        en = f"True-up: actual {act} equals the estimates; no correction."
    return TrueUp(actual, used.volume, estimated, correction, direction, zh, en)


__all__ = [
    "DEFAULT_CONFIG",
    "FLAG_CATALOGUE",
    "SOURCE_NAMES_ZH",
    "Consumption",
    "ConsumptionKind",
    "CorrectionDirection",
    "Deviation",
    "Estimate",
    "EstimationMethod",
    "ExpectedCycle",
    "FlagCode",
    "MeterReading",
    "MeterReplacement",
    "MeteringConfig",
    "NotEnoughHistory",
    "PeriodConsumption",
    "ReadingCheck",
    "ReadingFlag",
    "ReadingSource",
    "RobustScore",
    "TrueUp",
    "check_reading",
    "consumption_between",
    "days_between",
    "estimate_reading",
    "median",
    "missing_cycles",
    "periods_from_readings",
    "robust_score",
    "true_up",
]
