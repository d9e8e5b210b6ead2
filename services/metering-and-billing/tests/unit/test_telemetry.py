"""Heating telemetry: latest values, the return-temperature check and the agent's sentence."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.telemetry import (
    ReturnTemperaturePolicy,
    ReturnTemperatureStatus,
    Site,
    SiteKind,
    TelemetrySample,
    assess_return_temperature,
    latest_by_site,
    latest_values,
    show_temperature,
)

D = Decimal
HOME = Site(SiteKind.PREMISE, "P-1001")
STATION = Site(SiteKind.SUBSTATION, "S-07", "阳光小区换热站")
# 2026-11-22 06:00 UTC = 14:00 in Beijing
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def sample(site: Site, minutes_ago: int, supply: str | None, ret: str | None) -> TelemetrySample:
    return TelemetrySample(
        site,
        NOW - timedelta(minutes=minutes_ago),
        None if supply is None else D(supply),
        None if ret is None else D(ret),
        "dev-1",
    )


def test_the_return_below_the_minimum_sentence():
    samples = [sample(HOME, 120, "62", "47"), sample(HOME, 30, "55", "38")]
    result = assess_return_temperature(latest_values(samples, HOME), now=NOW)
    assert result.status is ReturnTemperatureStatus.BELOW_MINIMUM
    assert result.below_minimum is True
    assert result.needs_inspection
    assert result.sentence_zh == "您家的回水温度为 38°C，低于 45°C 的标准，我们将安排检查。"
    assert result.sentence_en == (
        "Your return water is 38°C, below the 45°C standard; we will arrange an inspection."
    )
    # 05:30 UTC = 13:30 Beijing
    assert result.detail_zh == "供水 55°C，回水 38°C，回水更新于 11月22日 13:30"
    assert result.latest.difference_c == D(17)  # 55 − 38
    assert result.age == timedelta(minutes=30)


def test_return_at_the_minimum_is_ok():
    result = assess_return_temperature(latest_values([sample(HOME, 5, "60", "45.0")], HOME), now=NOW)
    assert result.status is ReturnTemperatureStatus.OK
    assert result.below_minimum is False
    assert not result.needs_inspection
    assert result.sentence_zh == "您家的回水温度为 45°C，达到 45°C 的标准，供热运行正常。"


def test_just_under_the_minimum_is_never_shown_as_the_minimum():
    # 44.96 is below 45; floored for display to 44.9 (rounding would print a confusing "45°C，低于 45°C").
    result = assess_return_temperature(latest_values([sample(HOME, 5, None, "44.96")], HOME), now=NOW)
    assert result.status is ReturnTemperatureStatus.BELOW_MINIMUM
    assert result.sentence_zh == "您家的回水温度为 44.9°C，低于 45°C 的标准，我们将安排检查。"
    assert result.detail_zh == "回水 44.9°C，回水更新于 11月22日 13:55"


def test_configured_minimum():
    policy = ReturnTemperaturePolicy(min_return_c=D("40.5"))
    result = assess_return_temperature(
        latest_values([sample(HOME, 5, "55", "40")], HOME), now=NOW, policy=policy
    )
    assert result.sentence_zh == "您家的回水温度为 40°C，低于 40.5°C 的标准，我们将安排检查。"
    ok = assess_return_temperature(latest_values([sample(HOME, 5, "55", "41")], HOME), now=NOW, policy=policy)
    assert ok.status is ReturnTemperatureStatus.OK


def test_substation_sentence_names_the_station():
    result = assess_return_temperature(latest_values([sample(STATION, 10, "85", "42.37")], STATION), now=NOW)
    assert result.sentence_zh == "阳光小区换热站的回水温度为 42.3°C，低于 45°C 的标准，我们将安排检查。"


def test_supply_and_return_are_latest_independently():
    # The newest sample carries only a supply value: the return comes from the older one.
    samples = [sample(HOME, 60, "60", "46"), sample(HOME, 10, "58", None), sample(STATION, 1, "90", "30")]
    latest = latest_values(samples, HOME)
    assert (latest.supply_c, latest.return_c) == (D(58), D(46))
    assert latest.supply_at == NOW - timedelta(minutes=10)
    assert latest.return_at == NOW - timedelta(minutes=60)


def test_order_of_samples_does_not_matter_for_latest():
    older, newer = sample(HOME, 60, "60", "50"), sample(HOME, 10, "58", "40")
    assert latest_values([newer, older], HOME) == latest_values([older, newer], HOME)
    assert latest_values([newer, older], HOME).return_c == D(40)


def test_stale_data():
    # 7 hours old, limit 6 hours: 2026-11-21 23:00 UTC = 11-22 07:00 Beijing.
    result = assess_return_temperature(latest_values([sample(HOME, 420, "50", "38")], HOME), now=NOW)
    assert result.status is ReturnTemperatureStatus.STALE
    assert result.below_minimum is True
    assert result.needs_inspection
    assert result.sentence_zh == (
        "您家的回水温度最近一次记录为 38°C（11月22日 07:00），数据已超过 6 小时未更新，我们将核实后与您联系。"
    )
    fresh = assess_return_temperature(latest_values([sample(HOME, 360, "50", "38")], HOME), now=NOW)
    assert fresh.status is ReturnTemperatureStatus.BELOW_MINIMUM  # exactly 6 hours is still fresh


def test_no_data():
    result = assess_return_temperature(latest_values([sample(HOME, 5, "60", None)], HOME), now=NOW)
    assert result.status is ReturnTemperatureStatus.NO_DATA
    assert result.below_minimum is None
    assert result.sentence_zh == "暂未收到您家的回水温度数据，我们将安排核实。"
    empty = assess_return_temperature(latest_values([], HOME), now=NOW)
    assert empty.detail_zh == "暂无温度数据"


def test_latest_by_site():
    samples = [sample(HOME, 60, "60", "50"), sample(STATION, 5, "90", "44"), sample(HOME, 10, "58", "40")]
    by_site = latest_by_site(samples)
    assert set(by_site) == {(SiteKind.PREMISE, "P-1001"), (SiteKind.SUBSTATION, "S-07")}
    assert by_site[(SiteKind.PREMISE, "P-1001")].return_c == D(40)
    assert by_site[(SiteKind.SUBSTATION, "S-07")].supply_c == D(90)


def test_samples_are_validated():
    with pytest.raises(TypeError):
        TelemetrySample(HOME, NOW, 60.0, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plausible"):
        TelemetrySample(HOME, NOW, D(60), D(200))
    with pytest.raises(ValueError, match="supply or a return"):
        TelemetrySample(HOME, NOW, None, None)
    with pytest.raises(ValueError, match="naive"):
        TelemetrySample(HOME, datetime(2026, 11, 22, 6, 0), D(60), D(40))


@pytest.mark.parametrize(
    ("value", "shown"),
    [("38", "38"), ("38.0", "38"), ("44.96", "44.9"), ("50.25", "50.2"), ("45", "45"), ("-3.25", "-3.3")],
)
def test_show_temperature(value, shown):
    assert show_temperature(D(value)) == shown


temps = st.decimals(min_value=-30, max_value=150, places=2, allow_nan=False, allow_infinity=False)


minimums = st.one_of(
    *(
        st.decimals(min_value=30, max_value=70, places=p, allow_nan=False, allow_infinity=False)
        for p in (0, 1, 2)
    )
)


@settings(max_examples=300, deadline=None)
@given(value=temps, minimum=minimums)
def test_sentence_agrees_with_the_comparison(value, minimum):
    policy = ReturnTemperaturePolicy(min_return_c=minimum)
    result = assess_return_temperature(
        latest_values([TelemetrySample(HOME, NOW, None, value)], HOME), now=NOW, policy=policy
    )
    assert result.below_minimum == (value < minimum)
    assert ("低于" in result.sentence_zh) == (value < minimum)
    # the figures in the sentence are on the same side of each other as the measured ones
    shown_value, shown_minimum = re.findall(r"(-?[0-9.]+)°C", result.sentence_zh)
    assert D(shown_minimum) == minimum
    assert (D(shown_value) < D(shown_minimum)) == (value < minimum)


def test_shown_value_follows_a_finer_minimum():
    # minimum 45.05: 45.04 is below; at 0.1 it would show as "45", so it is shown to 0.01.
    policy = ReturnTemperaturePolicy(min_return_c=D("45.05"))
    result = assess_return_temperature(
        latest_values([sample(HOME, 5, None, "45.049")], HOME), now=NOW, policy=policy
    )
    assert result.sentence_zh == "您家的回水温度为 45.04°C，低于 45.05°C 的标准，我们将安排检查。"
