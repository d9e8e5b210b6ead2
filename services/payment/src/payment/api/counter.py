"""HTTP routes of the service counter's shift report (交班报表), included by ``api/routes.py`` under ``/v1``:
a cashier's totals for a shift (counts and fen by method: cash, POS), and a supervisor's view of every
cashier and shift of a business day (Asia/Shanghai)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from payment.api.schemas import Money, money
from payment.service_layer import counter
from utilis_shared.auth import Principal, Role, require
from utilis_shared.errors import problem_responses
from utilis_shared.web import Uow

router = APIRouter()
READ_ERRORS = problem_responses(401, 403, 404, 422)

CanReadShift = Annotated[Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR)))]
CanReadDay = Annotated[Principal, Depends(require(roles=(Role.BILLING_SUPERVISOR,)))]


class MethodTotalsRead(BaseModel):
    count: int
    amount: Money


class TotalsRead(BaseModel):
    count: int
    amount: Money
    cash: MethodTotalsRead
    pos: MethodTotalsRead
    unspecified: MethodTotalsRead = Field(description="receipts whose method was not recorded")
    first_at: str | None
    last_at: str | None


class CashierShiftRead(BaseModel):
    cashier: str
    shift_id: str = Field(examples=["2026-11-23-A"])
    business_days: list[date]
    totals: TotalsRead


class ShiftReportRead(BaseModel):
    shift_id: str
    scope: Literal["own", "all"] = Field(
        description="own: the asking cashier's receipts; all: every cashier's"
    )
    cashiers: list[CashierShiftRead]
    totals: TotalsRead


class DayReportRead(BaseModel):
    day: date
    shifts: list[CashierShiftRead] = Field(description="one per cashier and shift, by shift then cashier")
    totals: TotalsRead


def totals_read(t: counter.Totals) -> dict[str, Any]:
    def method(name: str) -> dict[str, Any]:
        m = t.by_method[name]
        return {"count": m.count, "amount": money(m.amount_fen)}

    return {
        "count": t.count,
        "amount": money(t.amount_fen),
        "cash": method("cash"),
        "pos": method("pos"),
        "unspecified": method("unspecified"),
        "first_at": t.first_at.isoformat() if t.first_at else None,
        "last_at": t.last_at.isoformat() if t.last_at else None,
    }


def group_read(g: counter.Group) -> dict[str, Any]:
    return {
        "cashier": g.cashier,
        "shift_id": g.shift_id,
        "business_days": sorted(d.isoformat() for d in g.business_days),
        "totals": totals_read(g.totals),
    }


@router.get(
    "/counter-shifts/{shift_id}/totals",
    response_model=ShiftReportRead,
    responses=READ_ERRORS,
    summary="A counter shift's totals: counts and amounts by method (cash, POS), per cashier",
    description="A cashier (billing_clerk) sees the receipts they took in the shift; a billing_supervisor "
    "every cashier's. A shift with no receipts (of yours) is 404 `shift_not_found`.",
    tags=["counter"],
)
async def shift_totals(
    shift_id: Annotated[str, Path(min_length=1, max_length=40, examples=["2026-11-23-A"])],
    uow: Uow,
    principal: CanReadShift,
) -> dict[str, Any]:
    everyone = principal.has_role(Role.BILLING_SUPERVISOR)
    async with uow:
        report = await counter.shift_report(
            uow.session, shift_id, cashier=None if everyone else principal.audit_actor
        )
    return {
        "shift_id": shift_id,
        "scope": "all" if everyone else "own",
        "cashiers": [group_read(g) for g in report.groups],
        "totals": totals_read(report.totals),
    }


@router.get(
    "/counter-totals",
    response_model=DayReportRead,
    responses=READ_ERRORS,
    summary="A business day's counter totals across cashiers and shifts (supervisors)",
    tags=["counter"],
)
async def day_totals(
    uow: Uow,
    _: CanReadDay,
    day: Annotated[date, Query(description="the business day (Asia/Shanghai)", examples=["2026-11-23"])],
) -> dict[str, Any]:
    async with uow:
        report = await counter.day_report(uow.session, day)
    return {
        "day": day.isoformat(),
        "shifts": [group_read(g) for g in report.groups],
        "totals": totals_read(report.totals),
    }
