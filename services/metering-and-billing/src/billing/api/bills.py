"""HTTP routes of billing runs, bills, credit/debit notes, late-fee waivers and the residents' lookups.

Lookups (``/accounts/{no}/balance``, ``/bills``, ``/usage-history``) are the collection peak's hot path: they
answer from the account's cached statement (``adapters/cache.py``) and compute the late fee at read time.
If Redis is unreachable they answer from the database (slower, never wrong).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic_core import from_json, to_json
from redis.exceptions import RedisError
from sqlalchemy import text

from billing.adapters.cache import NEGATIVE
from billing.adapters.orm import BillingRun, LateFeeWaiverRow
from billing.api import schemas as s
from billing.api.deps import (
    CanApproveWaivers,
    CanIssueNotes,
    CanLookUp,
    CanReadReminders,
    CanReadRuns,
    CanRunBilling,
    Uow,
    ensure_account_access,
)
from billing.service_layer import billing_runs, lookups, notes, receivables, reminders
from billing.service_layer.errors import AccountNotFound, invalid_field
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import problem_responses
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)
AccountPath = Annotated[str, Path(pattern=r"^[0-9]{6,20}$", examples=["31000000017"])]
BillNoPath = Annotated[str, Path(pattern=r"^[0-9A-Z-]{4,40}$", examples=["2026S-31000000017"])]


def money(fen: int) -> dict[str, Any]:
    return {"amount_fen": fen, "currency": "CNY"}


# ------------------------------------------------------------------------------------ billing runs
def run_read(run: BillingRun) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "cycle": run.cycle,
        "tariff_plan_code": run.tariff_plan_code,
        "utility": run.utility,
        "customer_class": run.customer_class,
        "period_start": run.period_start.isoformat(),
        "period_end": run.period_end.isoformat(),
        "issue_date": run.issue_date.isoformat(),
        "due_date": run.due_date.isoformat(),
        "selection": run.selection,
        "status": run.status,
        "cursor": run.cursor,
        "accounts_seen": run.accounts_seen,
        "bills_issued": run.bills_issued,
        "billed": money(run.billed_fen),
        "skipped": run.skipped,
        "requested_by": run.requested_by,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "created_at": run.created_at.isoformat() if run.created_at else utcnow().isoformat(),
    }


@router.post(
    "/billing-runs",
    status_code=202,
    response_model=s.BillingRunRead,
    responses=WRITE_ERRORS,
    summary="Request a billing run for a cycle, a tariff plan and a selection of accounts",
    description="The scheduler process picks it up; follow it with GET /v1/billing-runs/{id}. Re-running a "
    "cycle bills only accounts without a bill for it.",
    tags=["billing runs"],
)
async def create_billing_run(
    request: Request, body: s.BillingRunCreate, uow: Uow, principal: CanRunBilling, key: IdempotencyKey = None
) -> JSONResponse:
    data = billing_runs.RunRequest(
        cycle=body.cycle,
        tariff_plan_code=body.tariff_plan_code,
        period_start=body.period_start,
        period_end=body.period_end,
        issue_date=body.issue_date,
        due_date=body.due_date,
        selection=body.selection.model_dump(exclude_none=True),
    )

    async def command(u: UnitOfWork) -> BillingRun:
        return await billing_runs.create_run(u, request=data, requested_by=principal.audit_actor)

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, run_read, status=202, claim=claim))


@router.get(
    "/billing-runs/{run_id}",
    response_model=s.BillingRunRead,
    responses=READ_ERRORS,
    summary="A billing run's progress and summary",
    tags=["billing runs"],
)
async def get_billing_run(run_id: uuid.UUID, uow: Uow, principal: CanReadRuns) -> dict[str, Any]:
    async with uow:
        return run_read(await billing_runs.get_run(uow.session, run_id))


# ------------------------------------------------------------------------------------------- notes
def note_read(note) -> dict[str, Any]:
    return {
        "bill_no": note.bill_no,
        "kind": note.kind,
        "original_bill_no": note.original_bill_no,
        "account_no": note.account_no,
        "issue_date": note.issue_date.isoformat(),
        "due_date": note.due_date.isoformat(),
        "total": money(note.total_fen),
        "reason": note.reason,
    }


@router.post(
    "/bills/{bill_no}/credit-notes",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Issue a credit note on a bill (the bill stays as issued; the note reduces what it owes)",
    tags=["bills"],
)
async def create_credit_note(
    request: Request,
    bill_no: BillNoPath,
    body: s.NoteCreate,
    uow: Uow,
    principal: CanIssueNotes,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork):
        return await notes.issue_credit_note(
            u,
            bill_no=bill_no,
            amount_fen=body.amount_fen,
            reason=body.reason,
            issued_by=principal.audit_actor,
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(uow, command, note_read, status=201, claim=claim)
    await _invalidate(request, [result.body["account_no"]])
    return respond(result)


@router.post(
    "/bills/{bill_no}/debit-notes",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Issue a debit note on a bill: a new amount owed with its own due date",
    tags=["bills"],
)
async def create_debit_note(
    request: Request,
    bill_no: BillNoPath,
    body: s.NoteCreate,
    uow: Uow,
    principal: CanIssueNotes,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork):
        return await notes.issue_debit_note(
            u,
            bill_no=bill_no,
            amount_fen=body.amount_fen,
            reason=body.reason,
            issued_by=principal.audit_actor,
            due_date=body.due_date,
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(uow, command, note_read, status=201, claim=claim)
    await _invalidate(request, [result.body["account_no"]])
    return respond(result)


def waiver_read(row: LateFeeWaiverRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "bill_no": row.bill_no,
        "account_no": row.account_no,
        "at": row.at.isoformat(),
        "amount": money(row.amount_fen),
        "late_fee_before": money(row.late_fee_before_fen),
        "late_fee_after": money(row.late_fee_after_fen),
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "reason": row.reason,
    }


@router.post(
    "/bills/{bill_no}/late-fee-waivers",
    status_code=201,
    response_model=s.WaiverRead,
    responses=WRITE_ERRORS,
    summary="Waive a bill's late fee (billing_supervisor approves; audited)",
    tags=["bills"],
)
async def create_waiver(
    request: Request,
    bill_no: BillNoPath,
    body: s.WaiverCreate,
    uow: Uow,
    principal: CanApproveWaivers,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork) -> LateFeeWaiverRow:
        return await receivables.waive_late_fee(
            u,
            bill_no=bill_no,
            requested_by=body.requested_by,
            approved_by=principal.audit_actor,
            approver_roles=sorted(principal.roles),
            reason=body.reason,
            amount_fen=body.amount_fen,
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(uow, command, waiver_read, status=201, claim=claim)
    await _invalidate(request, [result.body["account_no"]])
    return respond(result)


async def _invalidate(request: Request, account_nos: list[str]) -> None:
    try:
        await request.app.state.lookup_cache.invalidate(account_nos)
    except RedisError:  # the TTL backstop bounds the staleness; the write itself is committed
        log.warning("cache invalidation failed", extra={"accounts": len(account_nos)})


# ----------------------------------------------------------------------------------------- lookups
async def statement(request: Request, account_no: str) -> dict[str, Any]:
    state = request.app.state
    try:
        raw = await state.lookup_cache.statement(account_no, state.statement_loader)
    except RedisError:
        log.warning("lookup cache unavailable; reading the database")
        document = await state.statement_loader(account_no)
        raw = NEGATIVE if document is None else to_json(document)
    document = from_json(raw)
    if not document.get("known"):
        raise AccountNotFound(f"No account {account_no}.")
    return document


def _json(body: dict[str, Any]) -> Response:
    return Response(to_json(body), media_type="application/json")


@router.get(
    "/accounts/{account_no}/balance",
    response_model=s.BalanceRead,
    responses=READ_ERRORS,
    summary="What the account owes now (late fee accrued to the second) and its prepaid balance",
    tags=["lookups"],
)
async def get_balance(request: Request, account_no: AccountPath, principal: CanLookUp) -> Response:
    ensure_account_access(principal, account_no)
    due = lookups.amount_due(await statement(request, account_no), utcnow())
    return _json(
        {
            "account_no": account_no,
            "as_of": due["as_of"].isoformat(),
            "amount_due": money(due["amount_due_fen"]),
            "principal_due": money(due["principal_due_fen"]),
            "late_fee": money(due["late_fee_fen"]),
            "prepaid_balance": money(due["prepaid_fen"]),
            "open_bills": [
                {
                    "bill_no": b["bill_no"],
                    "kind": b["kind"],
                    "due_date": b["due_date"],
                    "overdue": b["overdue"],
                    "principal_due": money(b["principal_due_fen"]),
                    "late_fee": money(b["late_fee_fen"]),
                    "amount_due": money(b["amount_due_fen"]),
                }
                for b in due["open_bills"]
            ],
        }
    )


def header_read(h: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in h.items() if k != "total_fen"}
    out["total"] = money(h["total_fen"])
    return out


def _cursor(h: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{h['issue_date']}|{h['bill_no']}".encode()).decode()


@router.get(
    "/accounts/{account_no}/bills",
    response_model=s.BillList,
    responses=READ_ERRORS,
    summary="The account's bills and notes, newest first (cursor pages)",
    tags=["lookups"],
)
async def list_bills(
    request: Request,
    account_no: AccountPath,
    uow: Uow,
    principal: CanLookUp,
    limit: Annotated[int, Query(ge=1, le=100)] = 12,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    ensure_account_access(principal, account_no)
    if cursor is None and limit <= lookups.RECENT_BILLS:
        headers = (await statement(request, account_no))["bills"]
        page = headers[:limit]
        more = len(headers) > limit
    else:
        page, more = await _bills_page(uow, account_no, limit, cursor)
    return _json(
        {"items": [header_read(h) for h in page], "next_cursor": _cursor(page[-1]) if more and page else None}
    )


async def _bills_page(uow: UnitOfWork, account_no: str, limit: int, cursor: str | None):
    after = None
    if cursor is not None:
        try:
            issue_date, bill_no = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
            dt.date.fromisoformat(issue_date)
            after = (issue_date, bill_no)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid_field("cursor", "invalid_cursor", "The cursor is not one this API gave.") from exc
    async with uow:
        known = (
            await uow.session.execute(
                text("SELECT 1 FROM billing_accounts WHERE account_no = :no"), {"no": account_no}
            )
        ).first()
        if known is None:
            raise AccountNotFound(f"No account {account_no}.")
        rows = (
            await uow.session.execute(
                text(
                    "SELECT b.bill_no, b.kind, b.cycle, b.original_bill_no, b.period_start, b.period_end, "
                    "b.issue_date, b.due_date, b.total_fen, b.volume, b.estimated, r.status, r.settled_at "
                    "FROM bills b LEFT JOIN receivables r ON r.bill_no = b.bill_no WHERE b.account_no = :no "
                    "AND (CAST(:after_date AS date) IS NULL OR (b.issue_date, b.bill_no) < "
                    "(CAST(:after_date AS date), :after_no)) ORDER BY b.issue_date DESC, b.bill_no DESC "
                    "LIMIT :limit"
                ),
                {
                    "no": account_no,
                    "after_date": dt.date.fromisoformat(after[0]) if after else None,
                    "after_no": after[1] if after else "",
                    "limit": limit + 1,
                },
            )
        ).all()
    headers = [lookups.bill_header(r) for r in rows]
    return headers[:limit], len(headers) > limit


@router.get(
    "/accounts/{account_no}/bills/{bill_no}",
    response_model=s.BillDetail,
    responses=READ_ERRORS,
    summary="One bill or note: lines (tier breakdown), what is paid, its postings",
    tags=["lookups"],
)
async def get_bill(account_no: AccountPath, bill_no: BillNoPath, uow: Uow, principal: CanLookUp) -> Response:
    ensure_account_access(principal, account_no)
    async with uow:
        detail = await lookups.bill_detail(uow.session, account_no, bill_no)
    if detail is None:
        raise receivables.BillNotFound(f"No bill {bill_no} on account {account_no}.")
    body = header_read(detail)
    body["lines"] = [
        {**{k: v for k, v in line.items() if k != "amount_fen"}, "amount": money(line["amount_fen"])}
        for line in detail["lines"]
    ]
    body["principal_paid"] = money(body.pop("principal_paid_fen"))
    body["late_fee_credited"] = money(body.pop("late_fee_credited_fen"))
    body["postings"] = [
        {
            "ref": p["ref"],
            "kind": p["kind"],
            "at": p["at"],
            "principal": money(p["principal_fen"]),
            "late_fee": money(p["late_fee_fen"]),
        }
        for p in detail["postings"]
    ]
    body.pop("late_fee_policy", None)
    return _json(body)


@router.get(
    "/accounts/{account_no}/usage-history",
    response_model=s.UsageHistory,
    responses=READ_ERRORS,
    summary="Usage and amount of the last 12 billed periods (for the app's chart)",
    tags=["lookups"],
)
async def usage_history(request: Request, account_no: AccountPath, principal: CanLookUp) -> Response:
    ensure_account_access(principal, account_no)
    usage = (await statement(request, account_no))["usage"]
    return _json(
        {
            "account_no": account_no,
            "periods": [
                {**{k: v for k, v in u.items() if k != "total_fen"}, "total": money(u["total_fen"])}
                for u in usage
            ],
        }
    )


@router.get(
    "/accounts/{account_no}/reminders",
    responses=READ_ERRORS,
    summary="The payment reminders recorded against the account (sent, skipped, failed), newest first",
    tags=["lookups"],
)
async def list_reminders(
    account_no: AccountPath,
    uow: Uow,
    principal: CanReadReminders,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    async with uow:
        page = await reminders.reminders_of(uow.session, account_no, limit, cursor=cursor)
    return {
        "items": [
            {
                "id": str(r.id),
                "bill_no": r.bill_no,
                "step_code": r.step_code,
                "kind": r.kind,
                "status": r.status,
                "channel": r.channel,
                "text": r.text,
                "fire_at": r.fire_at.isoformat(),
                "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                "attempts": r.attempts,
            }
            for r in page.items
        ],
        "next_cursor": page.next_cursor,
    }
