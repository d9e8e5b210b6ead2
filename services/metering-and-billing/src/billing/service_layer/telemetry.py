"""Use cases of heating telemetry (供热温度监测): storing supply/return temperature samples per premise or
substation, the sites' configuration (name, minimum return temperature, a premise's substation), which
premise each account is at (from ``customer.events``), and the agent's view of an account: the latest
values, their staleness and the sentence of ``domain/telemetry.py``.

* Samples are refused one by one when the domain refuses them (implausible temperature, neither value);
  a re-sent sample (same site, device and measurement time) is stored once (``duplicate``).
* A site seen in samples is created with no name and the default minimum; a technician or billing clerk
  names it, sets its own minimum or, for a premise, its substation.
* An account's view: its premise's values; when the premise has none, its substation's (the agent says
  which). The minimum is the site's own, else ``heating_min_return_c``; stale after
  ``telemetry_max_age_minutes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.orm import AccountPremise, BillingAccount, TelemetrySampleRow, TelemetrySite
from billing.domain.telemetry import (
    LatestTelemetry,
    ReturnTemperaturePolicy,
    ReturnTemperatureStatus,
    Site,
    SiteKind,
    TelemetryAssessment,
    TelemetrySample,
    assess_return_temperature,
    latest_values,
)
from billing.service_layer.errors import AccountNotFound
from utilis_shared.db import UnitOfWork
from utilis_shared.ids import new_id
from utilis_shared.timeutil import utcnow

INSERT_CHUNK = 1000  # rows per INSERT (PostgreSQL takes at most 32,767 bind parameters)


# --------------------------------------------------------------------------------------------------
# Which premise an account is at (called by service_layer/accounts.py)


async def keep_premise(uow: UnitOfWork, account_no: str, premise_id: str, event_time: datetime) -> None:
    stmt = insert(AccountPremise).values(
        account_no=account_no, premise_id=premise_id, last_event_at=event_time
    )
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["account_no"],
            set_={"premise_id": stmt.excluded.premise_id, "last_event_at": stmt.excluded.last_event_at}
            | {"updated_at": func.now()},
            where=AccountPremise.__table__.c.last_event_at <= stmt.excluded.last_event_at,
        )
    )


# --------------------------------------------------------------------------------------------------
# Samples


@dataclass(frozen=True)
class NewSample:
    site_kind: str
    site_id: str
    measured_at: datetime
    supply_c: Decimal | None
    return_c: Decimal | None
    device_id: str = ""


@dataclass(frozen=True)
class SampleResult:
    index: int
    outcome: str  # accepted | duplicate | rejected
    code: str | None = None
    message: str | None = None


async def record_samples(uow: UnitOfWork, samples: Sequence[NewSample]) -> list[SampleResult]:
    results: dict[int, SampleResult] = {}
    rows: list[dict[str, Any]] = []
    keys: dict[tuple[str, str, str, datetime], int] = {}
    for index, s in enumerate(samples):
        try:
            TelemetrySample(
                Site(SiteKind(s.site_kind), s.site_id), s.measured_at, s.supply_c, s.return_c, s.device_id
            )
        except ValueError as exc:
            code = (
                "no_temperature" if s.supply_c is None and s.return_c is None else "implausible_temperature"
            )
            results[index] = SampleResult(index, "rejected", code, str(exc))
            continue
        key = (s.site_kind, s.site_id, s.device_id, s.measured_at)
        if key in keys:
            results[index] = SampleResult(index, "duplicate")
            continue
        keys[key] = index
        rows.append(
            {
                "id": new_id(),
                "site_kind": s.site_kind,
                "site_id": s.site_id,
                "device_id": s.device_id,
                "measured_at": s.measured_at,
                "supply_c": s.supply_c,
                "return_c": s.return_c,
            }
        )
    sites = sorted({(r["site_kind"], r["site_id"]) for r in rows})
    for start in range(0, len(sites), INSERT_CHUNK):
        chunk = [{"site_kind": k, "site_id": i, "name": ""} for k, i in sites[start : start + INSERT_CHUNK]]
        await uow.session.execute(insert(TelemetrySite).values(chunk).on_conflict_do_nothing())
    t = TelemetrySampleRow.__table__
    inserted: set[tuple[str, str, str, datetime]] = set()
    for start in range(0, len(rows), INSERT_CHUNK):
        stmt = (
            insert(TelemetrySampleRow)
            .values(rows[start : start + INSERT_CHUNK])
            .on_conflict_do_nothing(constraint="uq_telemetry_samples_site_device_time")
            .returning(t.c.site_kind, t.c.site_id, t.c.device_id, t.c.measured_at)
        )
        inserted.update(tuple(r) for r in await uow.session.execute(stmt))
    for key, index in keys.items():
        results[index] = SampleResult(index, "accepted" if key in inserted else "duplicate")
    return [results[i] for i in sorted(results)]


# --------------------------------------------------------------------------------------------------
# Sites


async def configure_site(
    uow: UnitOfWork,
    site_kind: str,
    site_id: str,
    *,
    name: str,
    min_return_c: Decimal | None,
    substation_id: str | None,
) -> TelemetrySite:
    stmt = insert(TelemetrySite).values(
        site_kind=site_kind,
        site_id=site_id,
        name=name,
        min_return_c=min_return_c,
        substation_id=substation_id,
    )
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["site_kind", "site_id"],
            set_={
                "name": stmt.excluded.name,
                "min_return_c": stmt.excluded.min_return_c,
                "substation_id": stmt.excluded.substation_id,
                "updated_at": func.now(),
            },
        )
    )
    return (
        await uow.session.execute(
            select(TelemetrySite)
            .where(TelemetrySite.site_kind == site_kind, TelemetrySite.site_id == site_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


# --------------------------------------------------------------------------------------------------
# The agent's view


@dataclass(frozen=True)
class SiteView:
    site: TelemetrySite | None
    latest: LatestTelemetry
    assessment: TelemetryAssessment


@dataclass(frozen=True)
class HeatingView:
    account_no: str
    premise: SiteView | None
    substation: SiteView | None

    @property
    def primary(self) -> SiteView | None:
        """What the agent reads out: the premise's values, else the substation's."""
        for view in (self.premise, self.substation):
            if view is not None and view.assessment.status is not ReturnTemperatureStatus.NO_DATA:
                return view
        return self.premise or self.substation


async def _latest(session: AsyncSession, site: Site) -> LatestTelemetry:
    s = TelemetrySampleRow
    found = []
    for column in (s.supply_c, s.return_c):
        row = (
            await session.execute(
                select(s)
                .where(s.site_kind == site.kind.value, s.site_id == site.site_id, column.is_not(None))
                .order_by(s.measured_at.desc(), s.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if row is not None:
            found.append(TelemetrySample(site, row.measured_at, row.supply_c, row.return_c, row.device_id))
    return latest_values(found, site)


async def _view(
    session: AsyncSession,
    kind: SiteKind,
    site_id: str,
    config: TelemetrySite | None,
    now: datetime,
    settings: Any,
) -> SiteView:
    site = Site(kind, site_id, config.name if config is not None else "")
    minimum = config.min_return_c if config is not None and config.min_return_c is not None else None
    policy = ReturnTemperaturePolicy(
        min_return_c=minimum if minimum is not None else Decimal(str(settings.heating_min_return_c)),
        max_age=timedelta(minutes=settings.telemetry_max_age_minutes),
    )
    latest = await _latest(session, site)
    return SiteView(config, latest, assess_return_temperature(latest, now=now, policy=policy))


async def heating_view(
    session: AsyncSession, account_no: str, settings: Any, *, now: datetime | None = None
) -> HeatingView:
    now = now or utcnow()
    if await session.get(BillingAccount, account_no) is None:
        raise AccountNotFound(f"No account {account_no}.")
    premise = await session.get(AccountPremise, account_no)
    if premise is None:
        return HeatingView(account_no, None, None)
    premise_config = await session.get(TelemetrySite, ("premise", premise.premise_id))
    premise_view = await _view(session, SiteKind.PREMISE, premise.premise_id, premise_config, now, settings)
    substation_view = None
    if premise_config is not None and premise_config.substation_id:
        substation_config = await session.get(TelemetrySite, ("substation", premise_config.substation_id))
        substation_view = await _view(
            session, SiteKind.SUBSTATION, premise_config.substation_id, substation_config, now, settings
        )
    return HeatingView(account_no, premise_view, substation_view)
