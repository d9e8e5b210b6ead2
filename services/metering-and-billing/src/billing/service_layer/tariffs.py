"""Use cases of versioned tariff plans: publish a version, list and read versions, quote a period.

One row of ``tariff_plans`` is one version of a plan code. Its ``plan`` column is the domain document
(``billing.domain.tariff_plans.TariffPlan``) holding exactly that one version; quoting a period rebuilds the
plan with all its versions (``plan_with_history``) so the engine splits a period that straddles a price
change by days, as it does for seed files.

Rules on publish (checked here, under a lock on the code's versions; the database enforces the same):
- a code keeps its utility, customer class and volume unit across versions;
- a new version starts after the latest version's ``effective_from`` and closes the latest version on the
  day before it starts (unless that version already ends earlier);
- versions of one code never overlap (``ex_tariff_plans_no_overlap``), version numbers are 1, 2, 3, ...
Use cases stage rows and events; the caller commits (``utilis_shared.commands.execute``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, func, or_, select

from billing.adapters.orm import TariffPlanVersion
from billing.domain.tariff_plans import TariffPlan
from billing.domain.tariffs import TariffBill, Usage, compute_bill
from billing.events import TariffPublished, catalog
from billing.service_layer.errors import TariffPlanNotFound, conflict, invalid_field
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import UnprocessableEntity

_DAY = dt.timedelta(days=1)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """A pydantic error as the problem document's ``errors[]``, never echoing the input."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


@dataclass(frozen=True)
class NewVersion:
    """What a publisher gives: the plan's header and one version's terms (the number is assigned here)."""

    code: str
    name: str
    utility: str
    customer_class: str
    effective_from: dt.date
    components: list[dict[str, Any]]
    region: str = ""
    volume_unit: str | None = None
    note: str = ""
    tier_price_adjustments: list[dict[str, Any]] | None = None
    effective_to: dt.date | None = None
    expected_version: int | None = None  # optimistic check: "I am publishing version N"


def build_plan(data: NewVersion, version: int) -> TariffPlan:
    """The domain plan of one version; a plan the domain refuses is a 422 ``invalid_tariff_plan``."""
    document = {
        "code": data.code,
        "name": data.name,
        "utility": data.utility,
        "customer_class": data.customer_class,
        "region": data.region,
        "volume_unit": data.volume_unit,
        "versions": [
            {
                "version": version,
                "effective_from": data.effective_from.isoformat(),
                "note": data.note,
                "components": data.components,
            }
        ],
        "tier_price_adjustments": data.tier_price_adjustments or [],
    }
    try:
        # JSON mode: prices arrive as strings, exactly as in an API body or a seed file.
        return TariffPlan.model_validate_json(_json(document))
    except ValidationError as exc:
        raise UnprocessableEntity(
            "The tariff plan is not valid.", code="invalid_tariff_plan", errors=validation_errors(exc)
        ) from exc


def _json(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document, ensure_ascii=False)


async def versions_of(uow_session, code: str, *, for_update: bool = False) -> list[TariffPlanVersion]:
    stmt = select(TariffPlanVersion).where(TariffPlanVersion.code == code).order_by(TariffPlanVersion.version)
    if for_update:
        stmt = stmt.with_for_update()
    return list((await uow_session.execute(stmt)).scalars())


async def publish_version(uow: UnitOfWork, *, published_by: str, data: NewVersion) -> TariffPlanVersion:
    if data.effective_to is not None and data.effective_to < data.effective_from:
        raise invalid_field(
            "effective_to", "invalid_effective_period", "effective_to must not be before effective_from."
        )
    existing = await versions_of(uow.session, data.code, for_update=True)
    number = existing[-1].version + 1 if existing else 1
    if data.expected_version is not None and data.expected_version != number:
        raise conflict(
            "tariff_version_conflict",
            f"The next version of {data.code} is {number}, not {data.expected_version}.",
            next_version=number,
        )
    plan = build_plan(data, number)
    closed: TariffPlanVersion | None = None
    if existing:
        latest = existing[-1]
        if (latest.utility, latest.customer_class) != (data.utility, data.customer_class):
            raise conflict(
                "tariff_plan_class_mismatch",
                f"Plan {data.code} is for {latest.utility} / {latest.customer_class}; "
                "a new version keeps them.",
            )
        if latest.plan.get("volume_unit") != plan.model_dump(mode="json")["volume_unit"]:
            raise conflict(
                "volume_unit_mismatch",
                f"Plan {data.code} is priced in {latest.plan.get('volume_unit')}; a new version keeps it.",
            )
        if data.effective_from <= latest.effective_from:
            raise conflict(
                "tariff_version_overlap",
                f"Version {latest.version} of {data.code} is in force from {latest.effective_from}; a new "
                "version must start after that.",
                latest_version=latest.version,
                latest_effective_from=latest.effective_from.isoformat(),
            )
        if latest.effective_to is None or latest.effective_to >= data.effective_from:
            latest.effective_to = data.effective_from - _DAY
            closed = latest
            await uow.session.flush()  # close it before the new row meets the exclusion constraint
    row = TariffPlanVersion(
        code=data.code,
        version=number,
        name=data.name,
        utility=data.utility,
        customer_class=data.customer_class,
        effective_from=data.effective_from,
        effective_to=data.effective_to,
        plan=plan.model_dump(mode="json"),
        created_by=published_by,
    )
    uow.session.add(row)
    await uow.session.flush()
    await uow.session.refresh(row)
    uow.emit(
        catalog.build(
            TariffPublished(
                code=row.code,
                version=row.version,
                name=row.name,
                utility=row.utility,
                customer_class=row.customer_class,
                effective_from=row.effective_from,
                effective_to=row.effective_to,
                closed_version=closed.version if closed else None,
                closed_version_effective_to=closed.effective_to if closed else None,
                published_by=published_by,
                plan=row.plan,
            ),
            subject=row.code,
        )
    )
    return row


async def list_plans(
    session,
    *,
    utility: str | None = None,
    customer_class: str | None = None,
    on: dt.date | None = None,
) -> list[TariffPlanVersion]:
    """With ``on``: the version of each code in force that day. Without: the latest version of each code."""
    stmt = select(TariffPlanVersion)
    if utility:
        stmt = stmt.where(TariffPlanVersion.utility == utility)
    if customer_class:
        stmt = stmt.where(TariffPlanVersion.customer_class == customer_class)
    if on is not None:
        stmt = stmt.where(
            TariffPlanVersion.effective_from <= on,
            or_(TariffPlanVersion.effective_to.is_(None), TariffPlanVersion.effective_to >= on),
        ).order_by(TariffPlanVersion.code)
    else:
        latest = (
            select(TariffPlanVersion.code, func.max(TariffPlanVersion.version).label("version"))
            .group_by(TariffPlanVersion.code)
            .subquery()
        )
        stmt = stmt.join(
            latest,
            and_(latest.c.code == TariffPlanVersion.code, latest.c.version == TariffPlanVersion.version),
        ).order_by(TariffPlanVersion.code)
    return list((await session.execute(stmt)).scalars())


async def plan_versions(session, code: str) -> list[TariffPlanVersion]:
    rows = await versions_of(session, code)
    if not rows:
        raise TariffPlanNotFound(f"No tariff plan {code}.")
    return rows


def plan_with_history(rows: list[TariffPlanVersion]) -> TariffPlan:
    """One domain plan with every stored version of a code (the latest version's header and regulator
    coefficients: a new version restates the plan's adjustments)."""
    latest = dict(rows[-1].plan)
    latest["versions"] = [row.plan["versions"][0] for row in rows]
    return TariffPlan.model_validate_json(_json(latest))


def uncovered_days(rows: list[TariffPlanVersion], start: dt.date, end: dt.date) -> dt.date | None:
    """The first day of ``[start, end)`` on which no version is in force, or None."""
    day = start
    for row in rows:
        if day < row.effective_from:
            return day
        if row.effective_to is None:
            return None
        day = max(day, row.effective_to + _DAY)
        if day >= end:
            return None
    return day if day < end else None


async def quote(session, code: str, usage: Usage) -> tuple[TariffPlan, TariffBill]:
    rows = await plan_versions(session, code)
    gap = uncovered_days(rows, usage.period_start, usage.period_end)
    if gap is not None:
        raise invalid_field(
            "period_start",
            "no_tariff_in_force",
            f"No version of {code} is in force on {gap.isoformat()}.",
        )
    plan = plan_with_history(rows)
    try:
        bill = compute_bill(plan, usage)
    except ValueError as exc:  # e.g. an area plan without an area, a time-of-use plan without bands
        raise invalid_field("usage", "usage_incomplete", str(exc)) from exc
    return plan, bill
