"""Time rules: instants are stored in UTC; business dates (billing cycles, due dates, opening dates,
heating seasons) are calendar dates in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def business_today() -> date:
    return datetime.now(BUSINESS_TZ).date()


def business_date_of(instant: datetime) -> date:
    if instant.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; store and pass aware UTC instants")
    return instant.astimezone(BUSINESS_TZ).date()
