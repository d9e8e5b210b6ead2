"""Heating telemetry (供热温度监测): supply and return water temperatures per premise (住户) or substation
(换热站), the latest values, whether the return temperature is under the configured minimum, and the
sentence an agent reads to the resident. Pure rules: no I/O, no clock (``now`` is an argument); temperatures
are ``Decimal`` degrees Celsius, never float.

Decisions:

* The latest supply and the latest return values are taken independently (a device may report one of
  them only); each keeps its own measurement time. Samples at the same instant: the later in the input
  wins (the adapter passes them in arrival order).
* A sample outside [-30 °C, 150 °C] is a sensor fault and is refused when built (the ingestion adapter
  drops or quarantines it); a sample needs at least one of the two temperatures.
* The minimum return temperature and the freshness limit are configuration (:class:`ReturnTemperaturePolicy`,
  e.g. 45 °C and 6 hours); the comparison is strict: 45.0 °C is not below 45 °C.
* Status, in this order: no return value at all → ``NO_DATA``; the latest return value older than
  ``max_age`` → ``STALE`` (the sentence gives the old value and its time; ``below_minimum`` is still
  computed on it); else ``BELOW_MINIMUM`` or ``OK``.
* Shown temperatures are cut (floored) to 0.1 °C (or to the minimum's own precision when finer) and lose
  trailing zeros, so the shown value is always on the same side of the minimum as the measured one: the
  sentence never says "45°C，低于 45°C" for 44.96 °C (it says 44.9°C). Times are shown in Asia/Shanghai.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from utilis_shared.timeutil import BUSINESS_TZ

MIN_PLAUSIBLE_C = Decimal(-30)
MAX_PLAUSIBLE_C = Decimal(150)


class SiteKind(StrEnum):
    PREMISE = "premise"  # 住户
    SUBSTATION = "substation"  # 换热站


@dataclass(frozen=True)
class Site:
    kind: SiteKind
    site_id: str  # the premise id or the substation code
    name: str = ""  # e.g. "阳光小区换热站"; shown for a substation

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SiteKind(self.kind))
        if not self.site_id:
            raise ValueError("site_id is required")


def _utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what}: naive datetimes are ambiguous; pass aware instants (UTC)")
    return instant.astimezone(UTC)


def _temperature(value: Decimal | None, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite() or not MIN_PLAUSIBLE_C <= value <= MAX_PLAUSIBLE_C:
        raise ValueError(f"{what} {value} °C is not a plausible water temperature")


@dataclass(frozen=True)
class TelemetrySample:
    site: Site
    measured_at: datetime
    supply_c: Decimal | None
    return_c: Decimal | None
    device_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "measured_at", _utc(self.measured_at, "measured_at"))
        _temperature(self.supply_c, "supply_c")
        _temperature(self.return_c, "return_c")
        if self.supply_c is None and self.return_c is None:
            raise ValueError("a sample needs a supply or a return temperature")


@dataclass(frozen=True)
class LatestTelemetry:
    site: Site
    supply_c: Decimal | None = None
    supply_at: datetime | None = None
    return_c: Decimal | None = None
    return_at: datetime | None = None

    @property
    def difference_c(self) -> Decimal | None:
        """Supply − return (供回水温差), when both are known."""
        if self.supply_c is None or self.return_c is None:
            return None
        return self.supply_c - self.return_c


def latest_values(samples: Iterable[TelemetrySample], site: Site) -> LatestTelemetry:
    """The latest supply and the latest return temperature of one site (matched on kind and id)."""
    supply: tuple[datetime, Decimal] | None = None
    ret: tuple[datetime, Decimal] | None = None
    for s in samples:
        if (s.site.kind, s.site.site_id) != (site.kind, site.site_id):
            continue
        if s.supply_c is not None and (supply is None or s.measured_at >= supply[0]):
            supply = (s.measured_at, s.supply_c)
        if s.return_c is not None and (ret is None or s.measured_at >= ret[0]):
            ret = (s.measured_at, s.return_c)
    return LatestTelemetry(
        site,
        supply_c=supply[1] if supply else None,
        supply_at=supply[0] if supply else None,
        return_c=ret[1] if ret else None,
        return_at=ret[0] if ret else None,
    )


def latest_by_site(samples: Iterable[TelemetrySample]) -> dict[tuple[SiteKind, str], LatestTelemetry]:
    """:func:`latest_values` for every site in the samples, keyed by (kind, site id)."""
    samples = list(samples)
    sites: dict[tuple[SiteKind, str], Site] = {}
    for s in samples:
        sites.setdefault((s.site.kind, s.site.site_id), s.site)
    return {key: latest_values(samples, site) for key, site in sites.items()}


@dataclass(frozen=True)
class ReturnTemperaturePolicy:
    min_return_c: Decimal = Decimal(45)
    max_age: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        _temperature(self.min_return_c, "min_return_c")
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")


DEFAULT_POLICY = ReturnTemperaturePolicy()


class ReturnTemperatureStatus(StrEnum):
    OK = "ok"
    BELOW_MINIMUM = "below_minimum"
    STALE = "stale"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class TelemetryAssessment:
    latest: LatestTelemetry
    status: ReturnTemperatureStatus
    below_minimum: bool | None  # None without a return value
    min_return_c: Decimal
    age: timedelta | None  # of the latest return value at ``now``
    sentence_zh: str  # what the agent says to the resident
    sentence_en: str
    detail_zh: str  # supply, return and the time, for the agent's screen

    @property
    def needs_inspection(self) -> bool:
        """Below the minimum, or no fresh data: someone should look (检查 / 核实)."""
        return self.status is not ReturnTemperatureStatus.OK


def show_temperature(value: Decimal, places: int = 1) -> str:
    """Floored to ``places`` decimals (at least 1), without trailing zeros: 38 → "38", 44.96 → "44.9",
    50.25 → "50.2"; with places=2, 45.049 → "45.04"."""
    quantum = Decimal(1).scaleb(-max(places, 1))
    text = format(value.quantize(quantum, rounding=ROUND_FLOOR), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _local_time(instant: datetime) -> str:
    local = instant.astimezone(BUSINESS_TZ)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def assess_return_temperature(
    latest: LatestTelemetry, *, now: datetime, policy: ReturnTemperaturePolicy = DEFAULT_POLICY
) -> TelemetryAssessment:
    """Whether the site's return water is under the minimum, with the agent-facing sentence."""
    now = _utc(now, "now")
    site = latest.site
    if site.kind is SiteKind.PREMISE:
        subject_zh, subject_en = "您家的", "Your"
    else:
        label = site.name or site.site_id
        subject_zh, subject_en = f"{label}的", f"{label}'s"
    # the reading is shown at least as precisely as the minimum, so both sit on the same side of it
    places = max(1, -policy.min_return_c.normalize().as_tuple().exponent)
    minimum = show_temperature(policy.min_return_c, places)

    parts = []
    if latest.supply_c is not None:
        parts.append(f"供水 {show_temperature(latest.supply_c)}°C")
    if latest.return_c is not None:
        parts.append(f"回水 {show_temperature(latest.return_c, places)}°C")
    if latest.return_at is not None:
        parts.append(f"回水更新于 {_local_time(latest.return_at)}")
    detail = "，".join(parts) if parts else "暂无温度数据"

    if latest.return_c is None or latest.return_at is None:
        return TelemetryAssessment(
            latest,
            ReturnTemperatureStatus.NO_DATA,
            None,
            policy.min_return_c,
            None,
            f"暂未收到{subject_zh}回水温度数据，我们将安排核实。",
            f"{subject_en} return water temperature has not been received yet; we will check.",
            detail,
        )

    shown = show_temperature(latest.return_c, places)
    below = latest.return_c < policy.min_return_c
    age = now - latest.return_at
    if age > policy.max_age:
        hours = int(policy.max_age.total_seconds() // 3600)
        limit = f"{hours} 小时" if policy.max_age.total_seconds() % 3600 == 0 else str(policy.max_age)
        status = ReturnTemperatureStatus.STALE
        zh = (
            f"{subject_zh}回水温度最近一次记录为 {shown}°C（{_local_time(latest.return_at)}），"
            f"数据已超过 {limit}未更新，我们将核实后与您联系。"
        )
        en = (
            f"{subject_en} last recorded return water temperature was {shown}°C "
            f"({latest.return_at.isoformat()}); no update for over {policy.max_age}, "
            "we will check and call back."
        )
    elif below:
        status = ReturnTemperatureStatus.BELOW_MINIMUM
        zh = f"{subject_zh}回水温度为 {shown}°C，低于 {minimum}°C 的标准，我们将安排检查。"
        en = (
            f"{subject_en} return water is {shown}°C, below the {minimum}°C standard; "
            "we will arrange an inspection."
        )
    else:
        status = ReturnTemperatureStatus.OK
        zh = f"{subject_zh}回水温度为 {shown}°C，达到 {minimum}°C 的标准，供热运行正常。"
        en = (
            f"{subject_en} return water is {shown}°C, meeting the {minimum}°C standard; "
            "heating is running normally."
        )
    return TelemetryAssessment(latest, status, below, policy.min_return_c, age, zh, en, detail)


__all__ = [
    "DEFAULT_POLICY",
    "LatestTelemetry",
    "ReturnTemperaturePolicy",
    "ReturnTemperatureStatus",
    "Site",
    "SiteKind",
    "TelemetryAssessment",
    "TelemetrySample",
    "assess_return_temperature",
    "latest_by_site",
    "latest_values",
    "show_temperature",
]
