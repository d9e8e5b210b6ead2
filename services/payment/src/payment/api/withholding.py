"""HTTP routes of bank withholding (代扣): an account's mandates, the batch of a bank and business day (its
request file for the bank), and the bank's result file. Included by ``api/routes.py`` under ``/v1``.

Mandates are signed and revoked by front-office staff (agent, billing_clerk); a resident reads their own.
Batches are run by billing staff (billing_clerk, billing_supervisor), read by analysts too. Bank account
numbers leave only masked (``622202*********0123``). Files are raw bodies (``text/csv``), no multipart,
so the bytes hashed are exactly the file's.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from payment import metrics as payment_metrics
from payment.adapters.orm_withholding import WithholdingBatch, WithholdingItem, WithholdingMandate
from payment.api.deps import ensure_account_access
from payment.api.schemas import Money, money
from payment.domain import withholding as rules
from payment.service_layer import withholding as svc
from utilis_shared.auth import Principal, Role, require
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import UnprocessableEntity, problem_responses
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import business_date_of, utcnow
from utilis_shared.web import Uow

router = APIRouter()
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)

CanManageMandates = Annotated[Principal, Depends(require(roles=(Role.AGENT, Role.BILLING_CLERK)))]
CanReadMandates = Annotated[
    Principal, Depends(require(roles=(Role.AGENT, Role.BILLING_CLERK), residents=True))
]
CanRunWithholding = Annotated[
    Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR)))
]
CanReadWithholding = Annotated[
    Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR, Role.ANALYST)))
]
AccountNoPath = Annotated[str, Path(pattern=r"^[0-9]{6,20}$", examples=["31000000017"])]
BatchNoPath = Annotated[str, Path(pattern=r"^W[0-9]{8}[A-Z0-9]{2,20}$", examples=["W20261124ICBC"])]
BankCode = Annotated[str, Field(pattern=r"^[a-z0-9]{2,20}$", examples=["icbc"])]


def get_cipher(request: Request) -> PiiCipher:
    state = request.app.state
    cipher = getattr(state, "pii_cipher", None)
    if cipher is None:
        cipher = state.pii_cipher = PiiCipher.from_settings(state.settings)
    return cipher


Cipher = Annotated[PiiCipher, Depends(get_cipher)]


# ------------------------------------------------------------------------------------------- mandates
class MandateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bank_code: BankCode
    bank_account_no: str = Field(
        min_length=12,
        max_length=40,
        description="the bank account (card) number as signed; stored encrypted, answered masked",
        examples=["6222 0212 3456 7890 123"],
    )
    agreement_no: str | None = Field(None, max_length=40, description="the bank's agreement no (协议号)")
    signed_on: date | None = Field(None, description="the day it was signed (Asia/Shanghai); default today")


class MandateRevocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=2, max_length=500, examples=["用户申请解约，改为微信缴费"])


class MandateRead(BaseModel):
    mandate_id: uuid.UUID
    account_no: str
    bank_code: str
    bank_account_masked: str = Field(examples=["622202*********0123"])
    agreement_no: str | None
    signed_on: date
    status: Literal["active", "revoked"]
    created_by: str
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None
    created_at: str


class MandateList(BaseModel):
    items: list[MandateRead]


def mandate_read(m: WithholdingMandate) -> dict[str, Any]:
    return {
        "mandate_id": str(m.id),
        "account_no": m.account_no,
        "bank_code": m.bank_code,
        "bank_account_masked": m.bank_account_masked,
        "agreement_no": m.agreement_no,
        "signed_on": m.signed_on.isoformat(),
        "status": m.status,
        "created_by": m.created_by,
        "revoked_at": m.revoked_at.isoformat() if m.revoked_at else None,
        "revoked_by": m.revoked_by,
        "revoke_reason": m.revoke_reason,
        "created_at": m.created_at.isoformat(),
    }


@router.post(
    "/accounts/{account_no}/withholding-mandates",
    status_code=201,
    response_model=MandateRead,
    responses={200: {"description": "The same mandate was already active: it, unchanged"}, **WRITE_ERRORS},
    summary="Record an account's signed withholding mandate (代扣协议) with a bank",
    description="The bank account number is stored encrypted and answered masked. One active mandate per "
    "account: the same bank and number again answer 200 with the existing mandate; another is 409 "
    "`withholding_mandate_exists` (revoke it first). A bank without a withholding agreement is 422 "
    "`unknown_bank`; a number that is not 12 to 30 digits 422 `invalid_bank_account`. `Idempotency-Key` "
    "honoured.",
    tags=["withholding"],
)
async def sign_mandate(
    request: Request,
    account_no: AccountNoPath,
    body: MandateCreate,
    uow: Uow,
    principal: CanManageMandates,
    cipher: Cipher,
    key: IdempotencyKey = None,
) -> JSONResponse:
    now = utcnow()
    signed_on = body.signed_on or business_date_of(now)
    if signed_on > business_date_of(now):
        raise UnprocessableEntity("A mandate cannot be signed in the future.", code="validation_failed")
    settings = request.app.state.settings

    async def command(u: UnitOfWork) -> tuple[Any, bool]:
        return await svc.sign_mandate(
            u,
            cipher=cipher,
            banks=settings.withholding_banks,
            account_no=account_no,
            bank_code=body.bank_code,
            bank_account_no=body.bank_account_no,
            agreement_no=body.agreement_no,
            signed_on=signed_on,
            by=principal.audit_actor,
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(
        uow, command, lambda r: mandate_read(r[0]), status=lambda r: 201 if r[1] else 200, claim=claim
    )
    return respond(result)


@router.get(
    "/accounts/{account_no}/withholding-mandates",
    response_model=MandateList,
    responses=READ_ERRORS,
    summary="An account's withholding mandates, newest first (bank account numbers masked)",
    tags=["withholding"],
)
async def list_mandates(account_no: AccountNoPath, uow: Uow, principal: CanReadMandates) -> dict[str, Any]:
    ensure_account_access(principal, account_no)
    async with uow:
        rows = await svc.list_mandates(uow.session, account_no)
    return {"items": [mandate_read(m) for m in rows]}


@router.post(
    "/withholding-mandates/{mandate_id}/revocation",
    response_model=MandateRead,
    responses=WRITE_ERRORS,
    summary="Revoke an active withholding mandate (lines already sent to the bank stay)",
    tags=["withholding"],
)
async def revoke_mandate(
    request: Request,
    mandate_id: uuid.UUID,
    body: MandateRevocation,
    uow: Uow,
    principal: CanManageMandates,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork) -> Any:
        mandate = await svc.get_mandate(u.session, mandate_id, lock=True)
        return await svc.revoke_mandate(
            u, mandate=mandate, reason=body.reason, by=principal.audit_actor, now=utcnow()
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, mandate_read, claim=claim))


# -------------------------------------------------------------------------------------------- batches
class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bank_code: BankCode
    day: date = Field(description="the business day the bank debits (Asia/Shanghai)", examples=["2026-11-24"])


class BatchRead(BaseModel):
    batch_no: str = Field(examples=["W20261124ICBC"])
    bank_code: str
    day: date
    merchant_no: str
    status: Literal["requested", "completed"]
    item_count: int
    total: Money
    request_sha256: str
    requested_at: str
    created_by: str
    request_handed_over_at: str | None = Field(
        description="when the scheduler wrote the request file into the exchange directory (null: not yet, "
        "or files are exchanged by staff)"
    )
    result_sha256: str | None
    processed_at: str | None = Field(description="the bank's processing time (its result file)")
    result_applied_at: str | None
    result_applied_by: str | None
    succeeded_count: int
    succeeded: Money
    failed_count: int
    failed: Money
    created: bool | None = Field(None, description="POST only: false when the bank and day had this batch")


class ResultRead(BaseModel):
    batch: BatchRead
    replayed: bool = Field(description="true: this file was applied before; nothing changed")
    outcomes: dict[str, int] = Field(
        description="lines by what applying them did: applied, duplicate, refund_case, conflict",
        examples=[{"applied": 3}],
    )


class ItemRead(BaseModel):
    seq: int
    order_no: str
    account_no: str
    bank_account_masked: str
    amount: Money
    status: Literal["pending", "succeeded", "failed"]
    bank_serial_no: str | None
    failure_code: str | None = Field(examples=["INSUFFICIENT_FUNDS"])
    failure_text: str | None = Field(examples=["银行账户余额不足，代扣未成功"])
    outcome: str | None
    result_line: int | None


class ItemPage(BaseModel):
    items: list[ItemRead]
    next_cursor: str | None


def batch_read(b: WithholdingBatch, *, created: bool | None = None) -> dict[str, Any]:
    def iso(value) -> str | None:
        return value.isoformat() if value else None

    return {
        "batch_no": b.batch_no,
        "bank_code": b.bank_code,
        "day": b.business_day.isoformat(),
        "merchant_no": b.merchant_no,
        "status": b.status,
        "item_count": b.item_count,
        "total": money(b.total_fen),
        "request_sha256": b.request_sha256,
        "requested_at": b.requested_at.isoformat(),
        "created_by": b.created_by,
        "request_handed_over_at": iso(b.request_handed_over_at),
        "result_sha256": b.result_sha256,
        "processed_at": iso(b.processed_at),
        "result_applied_at": iso(b.result_applied_at),
        "result_applied_by": b.result_applied_by,
        "succeeded_count": b.succeeded_count,
        "succeeded": money(b.succeeded_fen),
        "failed_count": b.failed_count,
        "failed": money(b.failed_fen),
        "created": created,
    }


def item_read(i: WithholdingItem) -> dict[str, Any]:
    return {
        "seq": i.seq,
        "order_no": i.order_no,
        "account_no": i.account_no,
        "bank_account_masked": i.bank_account_masked,
        "amount": money(i.amount_fen),
        "status": i.status,
        "bank_serial_no": i.bank_serial_no,
        "failure_code": i.failure_code,
        "failure_text": rules.failure_text(i.failure_code) if i.failure_code else None,
        "outcome": i.outcome,
        "result_line": i.result_line,
    }


@router.post(
    "/withholding-batches",
    status_code=201,
    response_model=BatchRead,
    responses={200: {"description": "The bank and day already had a batch: it, unchanged"}, **WRITE_ERRORS},
    summary="Make the withholding batch of a bank for a business day (one pending order per account)",
    description="Every account with an active mandate at the bank that owes something (billing's last "
    "report, late fee included) and has no withholding order still pending gets one `dues` order of that "
    "amount (channel `withholding`). The same bank and day again answer 200 with the same batch (never a "
    "second one). Fetch the bank's file with `GET /withholding-batches/{batch_no}/request-file`. A day "
    "already over is 422 `withholding_day_past`; nothing to withhold 422 `withholding_batch_empty`.",
    tags=["withholding"],
)
async def create_batch(
    request: Request, body: BatchCreate, uow: Uow, principal: CanRunWithholding, key: IdempotencyKey = None
) -> JSONResponse:
    settings = request.app.state.settings

    async def command(u: UnitOfWork) -> Any:
        return await svc.create_batch(
            u,
            banks=settings.withholding_banks,
            bank_code=body.bank_code,
            day=body.day,
            by=principal.audit_actor,
            now=utcnow(),
            result_ttl=timedelta(days=settings.withholding_result_days),
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(
        uow,
        command,
        lambda r: batch_read(r.batch, created=r.created),
        status=lambda r: 201 if r.created else 200,
        claim=claim,
    )
    return respond(payment_metrics.observed(uow, result))


@router.get(
    "/withholding-batches/{batch_no}",
    response_model=BatchRead,
    responses=READ_ERRORS,
    summary="A withholding batch: its totals, and the bank's result once applied",
    tags=["withholding"],
)
async def get_batch(batch_no: BatchNoPath, uow: Uow, _: CanReadWithholding) -> dict[str, Any]:
    async with uow:
        batch = await svc.get_batch(uow.session, batch_no)
    return batch_read(batch)


@router.get(
    "/withholding-batches/{batch_no}/request-file",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the request file"}, **READ_ERRORS},
    summary="The batch's request file for the bank (UTF-8 CSV; masked bank accounts only)",
    tags=["withholding"],
)
async def get_request_file(batch_no: BatchNoPath, uow: Uow, _: CanRunWithholding) -> Response:
    async with uow:
        batch = await svc.get_batch(uow.session, batch_no, with_files=True)
    return Response(
        batch.request_file,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{batch.batch_no}.csv"',
            "X-Content-SHA256": batch.request_sha256,
        },
    )


@router.get(
    "/withholding-batches/{batch_no}/items",
    response_model=ItemPage,
    responses=READ_ERRORS,
    summary="A batch's lines in file order (cursor), optionally by status; failures with the bank's reason",
    tags=["withholding"],
)
async def list_items(
    batch_no: BatchNoPath,
    uow: Uow,
    _: CanReadWithholding,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=svc.MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    async with uow:
        batch = await svc.get_batch(uow.session, batch_no)
        page = await svc.list_items(uow.session, batch, status=status, limit=limit, cursor=cursor)
    return {"items": [item_read(i) for i in page.items], "next_cursor": page.next_cursor}


@router.post(
    "/withholding-batches/{batch_no}/result-file",
    response_model=ResultRead,
    responses=WRITE_ERRORS,
    summary="Apply the bank's result file to its batch (each success settled once; failures with reasons)",
    description="The body is the bank's result file as delivered (`text/csv`). It is checked whole against "
    "the batch first: a line naming an order not in the batch, an amount that differs, a missing or "
    "repeated line, wrong totals, or a bank serial that already paid another order refuse the file (422 "
    "`withholding_result_rejected`, every line's error in `errors`, nothing applied). Then, in one "
    "transaction, each success is applied as a verified notice (`payment.payment.succeeded`: billing "
    "settles it) and each failure fails its order with the bank's reason code. The same file again is "
    "200 with `replayed: true` and changes nothing; another file after a result was applied is 409 "
    "`withholding_result_already_applied`.",
    tags=["withholding"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def apply_result(
    request: Request, batch_no: BatchNoPath, uow: Uow, principal: CanRunWithholding
) -> JSONResponse:
    data = await request.body()
    if not data.strip():
        raise UnprocessableEntity(
            "The request body must be the bank's result file; it is empty.", code="withholding_file_empty"
        )
    async with uow:
        result = await svc.apply_result(
            uow, batch_no=batch_no, data=data, by=principal.audit_actor, now=utcnow()
        )
        body = {
            "batch": batch_read(result.batch),
            "replayed": not result.applied,
            "outcomes": result.outcomes,
        }
        await uow.commit()
    payment_metrics.observe_committed(uow.committed_events)
    return JSONResponse(body)
