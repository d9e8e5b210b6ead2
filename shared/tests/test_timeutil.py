"""Business dates are calendar dates in Asia/Shanghai; instants must be aware."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from utilis_shared import timeutil
from utilis_shared.timeutil import BUSINESS_TZ, business_date_of, business_today, utcnow


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 11, 21, 16, 30, tzinfo=UTC), date(2026, 11, 22)),  # 00:30 in Shanghai
        (datetime(2026, 11, 21, 15, 59, 59, tzinfo=UTC), date(2026, 11, 21)),  # 23:59:59 in Shanghai
        (datetime(2026, 11, 21, 16, 0, tzinfo=UTC), date(2026, 11, 22)),  # midnight exactly
        (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), date(2027, 1, 1)),
        (datetime(2026, 11, 22, 0, 30, tzinfo=timezone(timedelta(hours=8))), date(2026, 11, 22)),
        (datetime(2026, 11, 21, 11, 30, tzinfo=timezone(timedelta(hours=-5))), date(2026, 11, 22)),
    ],
)
def test_business_date_of(instant: datetime, expected: date) -> None:
    assert business_date_of(instant) == expected


def test_naive_datetime_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        business_date_of(datetime(2026, 11, 21, 16, 30))


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - now).total_seconds()) < 5


def test_business_today_is_the_shanghai_date(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)  # still the 21st in UTC

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return fixed.astimezone(tz) if tz is not None else fixed.replace(tzinfo=None)

    monkeypatch.setattr(timeutil, "datetime", FrozenDatetime)
    assert business_today() == date(2026, 11, 22)
    assert utcnow() == fixed


def test_business_tz_is_shanghai() -> None:
    assert datetime(2026, 7, 1, tzinfo=BUSINESS_TZ).utcoffset() == timedelta(hours=8)  # no DST
    assert datetime(2026, 1, 1, tzinfo=BUSINESS_TZ).utcoffset() == timedelta(hours=8)
