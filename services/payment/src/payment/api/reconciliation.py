"""HTTP routes of reconciliation (对账): import a provider's daily statement and reconcile it, the runs and
their totals per channel, the cases and their resolution. Staff only: billing clerks (and supervisors) run
and resolve, analysts read.

The statement file is the raw request body (``Content-Type: text/csv``; any type is read as bytes) with
``provider`` and ``day`` as query parameters: no multipart, so a plain ``curl --data-binary @file`` works
and the bytes hashed are exactly the file's.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from payment import metrics as payment_metrics
from payment.adapters.orm import ReconciliationCase, ReconciliationRun, StatementImport
from payment.api.schemas import Money, money
from payment.service_layer import reconciliation as rec
from utilis_shared.auth import Principal, Role, require
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import UnprocessableEntity, problem_responses
from utilis_shared.timeutil import utcnow
from utilis_shared.web import Uow

router = APIRouter(prefix="/v1")
TAGS: list[str | Any] = ["reconciliation"]
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)


CanReconcile = Annotated[Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR)))]
CanReadReconciliation = Annotated[
    Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR, Role.ANALYST)))
]
Limit = Annotated[int, Query(ge=1, le=rec.MAX_LIMIT, description=f"at most {rec.MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]
ProviderQuery = Annotated[
    str, Query(min_length=1, max_length=40, description="wechat, alipay or bank:<code>", examples=["wechat"])
]


# ---------------------------------------------------------------------------------------------- models
class SideTotals(BaseModel):
    payments_count: int
    payments: Money
    refunds_count: int
    refunds: Money
    fees: Money | None = Field(None, description="the provider's fees (the statement side only)")
    net: Money


class ChannelTotals(BaseModel):
    channel: str = Field(examples=["wechat"])
    day: date
    statement: SideTotals = Field(description="what the provider's statement says")
    recorded: SideTotals = Field(description="what succeeded here on the day")


class StatementImportRead(BaseModel):
    id: uuid.UUID
    sha256: str
    size_bytes: int
    line_count: int
    imported_by: str
    imported_at: str


class CaseCounts(BaseModel):
    open: int
    resolved: int
    dismissed: int


class FollowingRerun(BaseModel):
    day: date
    run_id: uuid.UUID
    cases_count: int


class RunRead(BaseModel):
    id: uuid.UUID
    provider: str
    day: date
    status: Literal["current", "superseded"]
    superseded_by: uuid.UUID | None
    carried_from: uuid.UUID | None = Field(description="the previous day's run whose cut-over was carried")
    lines_count: int
    matched_count: int
    cases_count: int
    balanced: bool
    totals: ChannelTotals
    pending_cutover: list[str] = Field(description="orders of the day's last minutes expected tomorrow")
    run_by: str
    created_at: str
    statement_import: StatementImportRead | None = None
    case_counts: CaseCounts | None = None
    replayed: bool = Field(False, description="true: this file was imported before; nothing new was stored")
    following_reruns: list[FollowingRerun] = Field(
        default_factory=list,
        description="on an import: the following days reconciled again because what this day carries "
        "over changed (each from its own stored file), in day order",
    )


class RunPage(BaseModel):
    items: list[RunRead]
    next_cursor: str | None


class DailyTotals(BaseModel):
    day: date
    channels: list[ChannelTotals]


class CaseRead(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    provider: str
    day: date
    kind: Literal[
        "missing_here",
        "missing_at_provider",
        "amount_differs",
        "settled_twice",
        "not_settled",
        "status_differs",
    ]
    against: Literal["provider", "billing"]
    subject: Literal["payment", "refund"]
    order_no: str | None
    provider_txn_id: str | None
    refund_no: str | None
    expected: Money | None = Field(description="what this service recorded (null: no record here)")
    actual: Money | None = Field(description="what the provider or billing says (null: no record there)")
    raw_line_no: int | None
    detail_zh: str = Field(examples=["金额不一致：本系统 123.45 元，渠道 123.40 元"])
    status: Literal["open", "resolved", "dismissed"]
    resolution_note: str | None
    resolved_by: str | None
    resolved_at: str | None
    created_at: str


class CasePage(BaseModel):
    items: list[CaseRead]
    next_cursor: str | None


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Literal["resolved", "dismissed"] = Field(
        description="resolved: explained and put right; dismissed: not a real mismatch"
    )
    note: str = Field(min_length=1, max_length=2000, examples=["渠道次日补单，已与微信支付核实"])


# ------------------------------------------------------------------------------------------ presenters
def _money(fen: int | None) -> dict[str, Any] | None:
    return None if fen is None else money(fen)


def _side(count: int, fen: int, rcount: int, rfen: int, fees: int | None) -> dict[str, Any]:
    return {
        "payments_count": count,
        "payments": _money(fen),
        "refunds_count": rcount,
        "refunds": _money(rfen),
        "fees": _money(fees),
        "net": _money(fen - rfen),
    }


def totals_read(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "channel": run.provider,
        "day": run.day.isoformat(),
        "statement": _side(
            run.statement_payments_count,
            run.statement_payments_fen,
            run.statement_refunds_count,
            run.statement_refunds_fen,
            run.statement_fees_fen,
        ),
        "recorded": _side(
            run.recorded_payments_count,
            run.recorded_payments_fen,
            run.recorded_refunds_count,
            run.recorded_refunds_fen,
            None,
        ),
    }


def run_read(
    run: ReconciliationRun,
    imported: StatementImport | None = None,
    counts: dict[str, int] | None = None,
    *,
    replayed: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(run.id),
        "provider": run.provider,
        "day": run.day.isoformat(),
        "status": run.status,
        "superseded_by": str(run.superseded_by) if run.superseded_by else None,
        "carried_from": str(run.carried_from) if run.carried_from else None,
        "lines_count": run.lines_count,
        "matched_count": run.matched_count,
        "cases_count": run.cases_count,
        "balanced": run.cases_count == 0,
        "totals": totals_read(run),
        "pending_cutover": [p["order_no"] for p in run.carry.get("payments", [])],
        "run_by": run.run_by,
        "created_at": run.created_at.isoformat(),
        "statement_import": None,
        "case_counts": counts,
        "replayed": replayed,
        "following_reruns": [],
    }
    if imported is not None:
        body["statement_import"] = {
            "id": str(imported.id),
            "sha256": imported.sha256,
            "size_bytes": imported.size_bytes,
            "line_count": imported.line_count,
            "imported_by": imported.imported_by,
            "imported_at": imported.created_at.isoformat(),
        }
    return body


async def import_read(uow: UnitOfWork, result: rec.ImportResult) -> dict[str, Any]:
    """The answer to an import (the API's and the CLI's): its run, the file, the case counts, the
    following days re-run."""
    run, imported = await rec.get_run(uow.session, result.run.id)
    body = run_read(run, imported, await rec.case_counts(uow.session, run.id), replayed=not result.created)
    body["following_reruns"] = [
        {"day": r.day.isoformat(), "run_id": str(r.id), "cases_count": r.cases_count} for r in result.reruns
    ]
    return body


def case_read(case: ReconciliationCase) -> dict[str, Any]:
    return {
        "id": str(case.id),
        "run_id": str(case.run_id),
        "provider": case.provider,
        "day": case.day.isoformat(),
        "kind": case.kind,
        "against": case.against,
        "subject": case.subject,
        "order_no": case.order_no,
        "provider_txn_id": case.provider_txn_id,
        "refund_no": case.refund_no,
        "expected": _money(case.expected_fen),
        "actual": _money(case.actual_fen),
        "raw_line_no": case.raw_line_no,
        "detail_zh": case.detail_zh,
        "status": case.status,
        "resolution_note": case.resolution_note,
        "resolved_by": case.resolved_by,
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "created_at": case.created_at.isoformat(),
    }


# -------------------------------------------------------------------------------------------------- runs
@router.post(
    "/reconciliations",
    status_code=201,
    response_model=RunRead,
    responses={
        200: {"description": "The same file was imported before: its run, nothing new stored"},
        **WRITE_ERRORS,
    },
    summary="Import a provider's daily statement file (对账单) and reconcile the day",
    description="The body is the statement file as the provider delivered it (`Content-Type: text/csv`); "
    "`provider` (`wechat`, `alipay`, `bank:<code>`) and `day` (Asia/Shanghai, a day that is over) are "
    "query parameters. A malformed file is 422 `statement_rejected` listing every error in `errors` "
    "(nothing stored). The same bytes again answer 200 with the run they produced (`replayed`: true); a "
    "different file for the same provider and day supersedes the earlier run (201), whose open cases are "
    "dismissed. A new run changes what the day carries over past midnight, so the following days that "
    "have a run are reconciled again from their own files (`following_reruns`). `Idempotency-Key` is "
    "honoured as everywhere.",
    tags=TAGS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def create_reconciliation(
    request: Request,
    provider: ProviderQuery,
    day: Annotated[date, Query(description="the statement's business day", examples=["2026-11-22"])],
    uow: Uow,
    principal: CanReconcile,
    key: IdempotencyKey = None,
) -> JSONResponse:
    data = await request.body()
    if not data.strip():
        raise UnprocessableEntity(
            "The request body must be the statement file; it is empty.", code="statement_empty"
        )
    rec.check_request(provider, day, utcnow())
    claim = claim_for(
        request,
        principal.subject,
        key,
        {"provider": provider, "day": day.isoformat(), "sha256": hashlib.sha256(data).hexdigest()},
    )

    async def command(u: UnitOfWork) -> tuple[bool, dict[str, Any]]:
        result = await rec.import_statement(u, provider, day, data, principal.audit_actor)
        return result.created, await import_read(u, result)

    result = await execute(uow, command, lambda r: r[1], status=lambda r: 201 if r[0] else 200, claim=claim)
    return respond(payment_metrics.observed(uow, result))


@router.get(
    "/reconciliations",
    response_model=RunPage,
    responses=READ_ERRORS,
    summary="Reconciliation runs, newest first (superseded ones too), by provider and day",
    tags=TAGS,
)
async def list_reconciliations(
    uow: Uow,
    _: CanReadReconciliation,
    provider: Annotated[str | None, Query(max_length=40, examples=["wechat"])] = None,
    day: Annotated[date | None, Query(examples=["2026-11-22"])] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    async with uow:
        page = await rec.list_runs(uow.session, provider=provider, day=day, limit=limit, cursor=cursor)
    return {"items": [run_read(r) for r in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/reconciliations/{run_id}",
    response_model=RunRead,
    responses=READ_ERRORS,
    summary="A reconciliation run: its statement file, the day's totals for its channel, its cases by status",
    tags=TAGS,
)
async def get_reconciliation(run_id: uuid.UUID, uow: Uow, _: CanReadReconciliation) -> dict[str, Any]:
    async with uow:
        run, imported = await rec.get_run(uow.session, run_id)
        counts = await rec.case_counts(uow.session, run_id)
    return run_read(run, imported, counts)


@router.get(
    "/reconciliation-totals",
    response_model=DailyTotals,
    responses=READ_ERRORS,
    summary="A day's totals per channel (from each channel's current run): the statements beside the records",
    tags=TAGS,
)
async def get_daily_totals(
    uow: Uow, _: CanReadReconciliation, day: Annotated[date, Query(examples=["2026-11-22"])]
) -> dict[str, Any]:
    async with uow:
        runs = await rec.daily_totals(uow.session, day)
    return {"day": day.isoformat(), "channels": [totals_read(r) for r in runs]}


# ------------------------------------------------------------------------------------------------- cases
@router.get(
    "/reconciliation-cases",
    response_model=CasePage,
    responses=READ_ERRORS,
    summary="Reconciliation cases, oldest first (a work queue), filtered",
    tags=TAGS,
)
async def list_reconciliation_cases(
    uow: Uow,
    _: CanReadReconciliation,
    status: Literal["open", "resolved", "dismissed"] | None = None,
    provider: Annotated[str | None, Query(max_length=40)] = None,
    day: date | None = None,
    run_id: uuid.UUID | None = None,
    kind: Literal[
        "missing_here",
        "missing_at_provider",
        "amount_differs",
        "settled_twice",
        "not_settled",
        "status_differs",
    ]
    | None = None,
    against: Literal["provider", "billing"] | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    async with uow:
        page = await rec.list_cases(
            uow.session,
            status=status,
            provider=provider,
            day=day,
            run_id=run_id,
            kind=kind,
            against=against,
            limit=limit,
            cursor=cursor,
        )
    return {"items": [case_read(c) for c in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/reconciliation-cases/{case_id}",
    response_model=CaseRead,
    responses=READ_ERRORS,
    summary="One reconciliation case",
    tags=TAGS,
)
async def get_reconciliation_case(case_id: uuid.UUID, uow: Uow, _: CanReadReconciliation) -> dict[str, Any]:
    async with uow:
        case = await rec.get_case(uow.session, case_id)
    return case_read(case)


@router.post(
    "/reconciliation-cases/{case_id}/resolution",
    response_model=CaseRead,
    responses=WRITE_ERRORS,
    summary="Resolve or dismiss an open case, with a note",
    description="409 `case_not_open` when it was resolved or dismissed already (or dismissed because a "
    "later statement file superseded its run).",
    tags=TAGS,
)
async def resolve_reconciliation_case(
    request: Request,
    case_id: Annotated[uuid.UUID, Path()],
    body: Resolution,
    uow: Uow,
    principal: CanReconcile,
    key: IdempotencyKey = None,
) -> JSONResponse:
    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))

    async def command(u: UnitOfWork) -> Any:
        return await rec.resolve_case(u, case_id, body.resolution, body.note, principal.audit_actor)

    return respond(await execute(uow, command, case_read, claim=claim))
