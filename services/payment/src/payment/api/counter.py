"""HTTP routes of the service counter's shift report (交班报表), included by ``api/routes.py`` under ``/v1``:
a cashier's totals for a shift (counts and fen by method: cash, POS), the cashier's hand-over of the shift
(交班: the cash counted against the receipts), and a supervisor's view of every cashier and shift of a
business day (Asia/Shanghai) with their hand-overs."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from payment.adapters.orm_withholding import CounterHandover
from payment.api.deps import CanTakeCash
from payment.api.schemas import Money, money
from payment.service_layer import counter
from utilis_shared.auth import Principal, Role, require
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import problem_responses
from utilis_shared.timeutil import utcnow
from utilis_shared.web import Uow

router = APIRouter()
READ_ERRORS = problem_responses(401, 403, 404, 422)
WRITE_ERRORS = problem_responses(400, 401, 403, 409, 422)
ShiftPath = Annotated[str, Path(min_length=1, max_length=40, examples=["2026-11-23-A"])]

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


class HandoverCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    counted_cash_fen: int = Field(ge=0, le=10**12, description="the cash in the drawer, counted, in fen")
    note: str = Field("", max_length=500, examples=["零钱备用金 200 元已留存"])


class HandoverRead(BaseModel):
    handover_id: str
    shift_id: str
    cashier: str
    business_day: date
    handed_over_at: str
    receipts_count: int
    cash: Money = Field(description="cash the shift's receipts say was taken")
    pos: Money
    unspecified: Money
    counted_cash: Money
    difference: Money = Field(
        description="counted minus the receipts' cash: negative is short, positive over"
    )
    note: str


class CashierShiftRead(BaseModel):
    cashier: str
    shift_id: str = Field(examples=["2026-11-23-A"])
    business_days: list[date]
    totals: TotalsRead
    handover: HandoverRead | None = Field(None, description="the shift's hand-over (day report only)")


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


def handover_read(h: CounterHandover) -> dict[str, Any]:
    return {
        "handover_id": str(h.id),
        "shift_id": h.shift_id,
        "cashier": h.cashier,
        "business_day": h.business_day.isoformat(),
        "handed_over_at": h.handed_over_at.isoformat(),
        "receipts_count": h.receipts_count,
        "cash": money(h.cash_fen),
        "pos": money(h.pos_fen),
        "unspecified": money(h.unspecified_fen),
        "counted_cash": money(h.counted_cash_fen),
        "difference": money(h.difference_fen),
        "note": h.note,
    }


@router.post(
    "/counter-shifts/{shift_id}/hand-over",
    response_model=HandoverRead,
    status_code=201,
    responses=WRITE_ERRORS,
    summary="The cashier hands the shift over (交班): the cash counted against the receipts",
    description="Once per cashier and shift (409 `shift_handed_over` after); the shift then takes no more "
    "of this cashier's receipts. `difference` is counted minus the receipts' cash. Send an "
    "`Idempotency-Key`: a retry gets the same hand-over.",
    tags=["counter"],
)
async def hand_over(
    request: Request,
    shift_id: ShiftPath,
    body: HandoverCreate,
    uow: Uow,
    principal: CanTakeCash,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork) -> CounterHandover:
        return await counter.hand_over(
            u,
            shift_id=shift_id,
            cashier=principal.audit_actor,
            counted_cash_fen=body.counted_cash_fen,
            note=body.note,
            now=utcnow(),
        )

    claim = claim_for(request, principal.subject, key, {"shift_id": shift_id, **body.model_dump(mode="json")})
    return respond(await execute(uow, command, handover_read, status=201, claim=claim))


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
    shift_id: ShiftPath,
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
        handed = await counter.handovers(uow.session, [(g.shift_id, g.cashier) for g in report.groups])
    shifts = []
    for g in report.groups:
        h = handed.get((g.shift_id, g.cashier))
        shifts.append({**group_read(g), "handover": handover_read(h) if h else None})
    return {"day": day.isoformat(), "shifts": shifts, "totals": totals_read(report.totals)}
