"""Stored versions of a plan code (no database): which days they cover, and the plan they make together."""

from __future__ import annotations

from datetime import date

from billing.adapters.orm import TariffPlanVersion
from billing.service_layer.tariffs import NewVersion, build_plan, plan_with_history, uncovered_days


def version(number: int, start: date, end: date | None, price: str = "2.60") -> TariffPlanVersion:
    data = NewVersion(
        code="p",
        name="p",
        utility="gas",
        customer_class="residential",
        volume_unit="m³",
        effective_from=start,
        components=[{"kind": "volume", "price": price}],
    )
    return TariffPlanVersion(
        code="p",
        version=number,
        effective_from=start,
        effective_to=end,
        plan=build_plan(data, number).model_dump(mode="json"),
    )


ROWS = [version(1, date(2026, 1, 1), date(2026, 6, 30)), version(2, date(2026, 7, 1), None, "2.70")]


def test_covered_periods() -> None:
    assert uncovered_days(ROWS, date(2026, 1, 1), date(2027, 1, 1)) is None
    assert uncovered_days(ROWS, date(2026, 6, 1), date(2026, 8, 1)) is None
    assert uncovered_days(ROWS, date(2030, 1, 1), date(2030, 2, 1)) is None


def test_days_before_the_first_version_or_in_a_gap_are_uncovered() -> None:
    assert uncovered_days(ROWS, date(2025, 12, 1), date(2026, 2, 1)) == date(2025, 12, 1)
    gap = [version(1, date(2026, 1, 1), date(2026, 3, 31)), version(2, date(2026, 5, 1), None)]
    assert uncovered_days(gap, date(2026, 3, 1), date(2026, 4, 1)) is None
    assert uncovered_days(gap, date(2026, 3, 1), date(2026, 4, 2)) == date(2026, 4, 1)
    assert uncovered_days(gap, date(2026, 4, 15), date(2026, 6, 1)) == date(2026, 4, 15)
    closed = [version(1, date(2026, 1, 1), date(2026, 3, 31))]
    assert uncovered_days(closed, date(2026, 3, 1), date(2026, 4, 1)) is None
    assert uncovered_days(closed, date(2026, 3, 1), date(2026, 4, 2)) == date(2026, 4, 1)


def test_the_plan_with_history_holds_every_version_in_order() -> None:
    plan = plan_with_history(ROWS)
    assert [(v.version, v.effective_from) for v in plan.versions] == [
        (1, date(2026, 1, 1)),
        (2, date(2026, 7, 1)),
    ]
    assert str(plan.version_on(date(2026, 7, 1)).components[0].price) == "2.70"
