"""HTTP routes of the payment service (mounted by the gateway under ``/api/payment``; provider callbacks
under ``/callbacks/...`` without OAuth2, authenticated here by each provider's signature).

Writes run through ``utilis_shared.commands.execute`` (one transaction, optional Idempotency-Key); routes
never commit.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from payment import metrics as payment_metrics
from payment.adapters.orm import PaymentOrder, RefundCase
from payment.api.deps import (
    CanApproveRefunds,
    CanPay,
    CanReadPayments,
    CanReadRefundCases,
    CanRequestRefunds,
    CanResolveRefundCases,
    CanTakeCash,
    Uow,
    ensure_account_access,
)
from payment.api.schemas import Money, money
from payment.domain.orders import Purpose
from payment.domain.refund_cases import Resolution
from payment.service_layer import counter, orders, refund_cases, refund_requests, refunds
from utilis_shared.auth import Role
from utilis_shared.commands import CommandResult, IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Forbidden, problem_responses
from utilis_shared.timeutil import utcnow

router = APIRouter(prefix="/v1")
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)
OrderNoPath = Annotated[str, Path(pattern=r"^P[0-9]{18}$", examples=["P202611230000001234"])]


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_no: str = Field(pattern=r"^[0-9]{6,20}$", examples=["31000000017"])
    purpose: Purpose = Field(description="bill (one bill), dues (all the account owes), prepaid (a top-up)")
    bill_no: str | None = Field(None, pattern=r"^[0-9A-Z-]{4,40}$", examples=["2026S-31000000017"])
    amount_fen: int = Field(gt=0, le=10_000_000_00, examples=[266710])
    channel: str = Field(
        pattern=r"^(wechat|alipay|counter|bank:[a-z0-9]{2,20})$", examples=["wechat", "bank:icbc"]
    )

    @model_validator(mode="after")
    def _bill_orders_name_the_bill(self) -> OrderCreate:
        if self.purpose is Purpose.BILL and not self.bill_no:
            raise ValueError("a bill order names its bill_no")
        return self


class OrderRead(BaseModel):
    order_no: str
    account_no: str
    purpose: str
    bill_no: str | None
    amount: Money
    refunded: Money
    channel: str
    status: Literal["created", "pending", "succeeded", "failed", "closed", "refunded"]
    expires_at: str
    paid_at: str | None
    pay_request: dict[str, Any] | None = None


class CounterReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shift_id: str = Field(min_length=1, max_length=40, examples=["2026-11-23-A"])
    method: Literal["cash", "pos"] | None = Field(
        None, description="cash or pos (the shift report's split); omitted: recorded as unspecified"
    )
    pos_reference: str | None = Field(
        None, min_length=1, max_length=64, description="the POS terminal's reference (method pos)"
    )

    @model_validator(mode="after")
    def _pos_payments_name_the_terminal_reference(self) -> CounterReceipt:
        if self.method == "pos" and not self.pos_reference:
            raise ValueError("a POS payment names the terminal's reference (pos_reference)")
        return self


def order_read(order: PaymentOrder, pay_request: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "order_no": order.order_no,
        "account_no": order.account_no,
        "purpose": order.purpose,
        "bill_no": order.bill_no,
        "amount": money(order.amount_fen),
        "refunded": money(order.refunded_fen),
        "channel": order.channel,
        "status": order.status,
        "expires_at": order.expires_at.isoformat(),
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
        "pay_request": pay_request,
    }


@router.post(
    "/payment-orders",
    status_code=201,
    response_model=OrderRead,
    responses=WRITE_ERRORS,
    summary="Create a payment order for a bill, for everything the account owes, or a prepaid top-up",
    description="A bill or dues order may not exceed what billing last reported the account owes (422 "
    "`amount_exceeds_dues`); only a prepaid order pays more. Send an `Idempotency-Key`: a retry gets the "
    "same order. The answer carries what the app needs to start paying at the provider (`pay_request`).",
    tags=["payment orders"],
)
async def create_order(
    request: Request, body: OrderCreate, uow: Uow, principal: CanPay, key: IdempotencyKey = None
) -> JSONResponse:
    ensure_account_access(principal, body.account_no)
    state = request.app.state
    data = orders.NewOrder(
        account_no=body.account_no,
        purpose=body.purpose,
        amount_fen=body.amount_fen,
        channel=body.channel,
        bill_no=body.bill_no,
    )
    ttl = timedelta(seconds=state.settings.order_ttl_seconds)

    async def command(u: UnitOfWork) -> tuple[PaymentOrder, dict[str, Any] | None]:
        now = utcnow()
        order = await orders.create_order(u, principal=principal, data=data, now=now, ttl=ttl)
        return order, state.channels.pay_request(order, now=now)

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(uow, command, lambda r: order_read(*r), status=201, claim=claim)
    return respond(payment_metrics.observed(uow, result))


@router.get(
    "/payment-orders/{order_no}",
    response_model=OrderRead,
    responses=READ_ERRORS,
    summary="A payment order and its status",
    tags=["payment orders"],
)
async def get_order(order_no: OrderNoPath, uow: Uow, principal: CanReadPayments) -> dict[str, Any]:
    async with uow:
        order = await orders.get_order(uow.session, order_no)
    try:
        ensure_account_access(principal, order.account_no)
    except orders.AccountNotFound as exc:
        raise orders.OrderNotFound(f"No payment order {order_no}.") from exc
    return order_read(order)


@router.post(
    "/payment-orders/{order_no}/cancellation",
    response_model=OrderRead,
    responses=WRITE_ERRORS,
    summary="Cancel a pending order (a payment that still arrives opens a refund case)",
    tags=["payment orders"],
)
async def cancel_order(order_no: OrderNoPath, uow: Uow, principal: CanPay) -> JSONResponse:
    async def command(u: UnitOfWork) -> PaymentOrder:
        order = await orders.get_order(u.session, order_no, lock=True)
        try:
            ensure_account_access(principal, order.account_no)
        except orders.AccountNotFound as exc:
            raise orders.OrderNotFound(f"No payment order {order_no}.") from exc
        return await orders.close_order(u, order_no=order_no, reason="cancelled", now=utcnow())

    return respond(payment_metrics.observed(uow, await execute(uow, command, order_read)))


@router.post(
    "/payment-orders/{order_no}/counter-receipt",
    response_model=OrderRead,
    responses=WRITE_ERRORS,
    summary="The cashier confirms cash or POS at the service counter: the order succeeds",
    description="`method` (cash or pos, with the terminal's `pos_reference`) is what the shift report "
    "(`GET /counter-shifts/{shift_id}/totals`) splits by; the receipt is recorded with the order's success.",
    tags=["payment orders"],
)
async def counter_receipt(
    request: Request,
    order_no: OrderNoPath,
    body: CounterReceipt,
    uow: Uow,
    principal: CanTakeCash,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork) -> PaymentOrder:
        now = utcnow()
        order = await orders.pay_at_counter(
            u, order_no=order_no, cashier=principal.audit_actor, shift_id=body.shift_id, now=now
        )
        # the shift report's row, in the same transaction
        await counter.record_receipt(
            u, order=order, method=body.method, pos_reference=body.pos_reference, now=now
        )
        return order

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    return respond(payment_metrics.observed(uow, await execute(uow, command, order_read, claim=claim)))


# ---------------------------------------------------------------------------------- refunds, invoices
class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_fen: int = Field(gt=0, examples=[5000])
    reason: str = Field(min_length=2, max_length=500, examples=["重复缴费，退还一笔"])


class RefundDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    note: str = Field("", max_length=500)


class RefundRead(BaseModel):
    refund_no: str
    order_no: str
    account_no: str
    amount: Money
    reason: str
    status: Literal["requested", "submitted", "succeeded", "rejected", "failed"]
    requested_by: str
    approved_by: str | None
    sent_at: str | None = Field(None, description="when the provider accepted the refund request")
    failure_code: str | None = Field(None, description="the provider's refusal code (status failed)")


def refund_read(refund) -> dict[str, Any]:
    return {
        "refund_no": refund.refund_no,
        "order_no": refund.order_no,
        "account_no": refund.account_no,
        "amount": money(refund.amount_fen),
        "reason": refund.reason,
        "status": refund.status,
        "requested_by": refund.requested_by,
        "approved_by": refund.approved_by,
        "sent_at": refund.sent_at.isoformat() if refund.sent_at else None,
        "failure_code": refund.failure_code,
    }


@router.post(
    "/payment-orders/{order_no}/refunds",
    status_code=201,
    response_model=RefundRead,
    responses=WRITE_ERRORS,
    summary="Request a refund of (part of) a succeeded payment (a billing_supervisor approves it)",
    tags=["refunds"],
)
async def request_refund(
    request: Request,
    order_no: OrderNoPath,
    body: RefundCreate,
    uow: Uow,
    principal: CanRequestRefunds,
    key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork):
        return await refunds.request_refund(
            u,
            order_no=order_no,
            amount_fen=body.amount_fen,
            reason=body.reason,
            requested_by=principal.audit_actor,
        )

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, refund_read, status=201, claim=claim))


@router.post(
    "/refunds/{refund_no}/decision",
    response_model=RefundRead,
    responses=WRITE_ERRORS,
    summary="Approve or reject a refund request (not by its requester); a counter refund succeeds at once",
    description="An approved online refund is `submitted` and its request sent to the provider right after "
    "the approval commits (`sent_at` once the provider accepted it; retried by the scheduler otherwise with "
    "the same refund number); the provider's refund notice completes it. A refund the provider refuses is "
    "`failed` with the provider's `failure_code`.",
    tags=["refunds"],
)
async def decide_refund(
    request: Request,
    refund_no: Annotated[str, Path(pattern=r"^R[0-9]{20}$")],
    body: RefundDecision,
    uow: Uow,
    principal: CanApproveRefunds,
) -> JSONResponse:
    async def command(u: UnitOfWork):
        return await refunds.decide_refund(
            u,
            refund_no=refund_no,
            approve=body.approve,
            decided_by=principal.audit_actor,
            note=body.note,
            now=utcnow(),
        )

    result = payment_metrics.observed(uow, await execute(uow, command, refund_read))
    if result.body["status"] == "submitted":
        state = request.app.state
        outcome = await refund_requests.send_refund(
            state.session_factory,
            state.settings,
            state.channels,
            state.provider_http,
            refund_no=refund_no,
            now=utcnow(),
        )
        if outcome != "skipped":
            async with uow:
                refreshed = await refunds.get_refund(uow.session, refund_no)
            result = CommandResult(status=result.status, body=refund_read(refreshed))
    return respond(result)


class InvoiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title_kind: Literal["personal", "company"]
    title: str = Field(min_length=1, max_length=200, examples=["王秀英"])
    tax_no: str | None = Field(None, pattern=r"^[0-9A-Z]{15,20}$", examples=["91230103MA1B2C3D4E"])
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200, examples=["wang@example.cn"])

    @model_validator(mode="after")
    def _companies_give_their_tax_no(self) -> InvoiceCreate:
        if self.title_kind == "company" and not self.tax_no:
            raise ValueError("a company invoice needs the company's tax_no (统一社会信用代码)")
        return self


@router.post(
    "/payment-orders/{order_no}/invoice-requests",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Ask for an e-invoice (电子发票) for a succeeded payment",
    tags=["payment orders"],
)
async def request_invoice(
    order_no: OrderNoPath, body: InvoiceCreate, uow: Uow, principal: CanPay
) -> JSONResponse:
    async def command(u: UnitOfWork):
        order = await orders.get_order(u.session, order_no)
        try:
            ensure_account_access(principal, order.account_no)
        except orders.AccountNotFound as exc:
            raise orders.OrderNotFound(f"No payment order {order_no}.") from exc
        return await refunds.request_invoice(
            u,
            order_no=order_no,
            title_kind=body.title_kind,
            title=body.title,
            tax_no=body.tax_no,
            email=body.email,
            requested_by=principal.audit_actor,
        )

    def present(row) -> dict[str, Any]:
        return {
            "order_no": row.order_no,
            "amount": money(row.amount_fen),
            "title_kind": row.title_kind,
            "title": row.title,
            "status": row.status,
        }

    return respond(await execute(uow, command, present, status=201))


# ---------------------------------------------------------------------------------------- refund cases
class RefundCaseResolutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Resolution = Field(
        description="refund: pay the money back through the provider (a billing_supervisor other than you "
        "approves the refund); top_up: apply it to the account's prepaid balance at once; dismiss (a "
        "billing_supervisor only, the reason in `note`): neither, e.g. the provider reversed it itself"
    )
    note: str = Field(min_length=2, max_length=500, examples=["订单关闭后用户仍完成支付，经电话核实转为预存"])


class RefundCaseRead(BaseModel):
    case_id: uuid.UUID
    order_no: str
    account_no: str
    provider: str
    provider_txn_id: str
    amount: Money
    reason: str = Field(description="order_closed, order_failed or amount_mismatch")
    status: Literal["open", "refunding", "refunded", "applied", "dismissed"]
    paid_at: str | None
    note: str | None
    refund_no: str | None = Field(description="the refund paying the money back (refund resolution)")
    applied_order_no: str | None = Field(description="the prepaid order made of it (top_up resolution)")
    resolved_by: str | None
    resolved_at: str | None
    opened_at: str


class RefundCasePage(BaseModel):
    items: list[RefundCaseRead]
    next_cursor: str | None


def refund_case_read(case: RefundCase, account_no: str) -> dict[str, Any]:
    return {
        "case_id": str(case.id),
        "order_no": case.order_no,
        "account_no": account_no,
        "provider": case.provider,
        "provider_txn_id": case.provider_txn_id,
        "amount": money(case.amount_fen),
        "reason": case.reason,
        "status": case.status,
        "paid_at": case.paid_at.isoformat() if case.paid_at else None,
        "note": case.resolution,
        "refund_no": case.refund_no,
        "applied_order_no": case.applied_order_no,
        "resolved_by": case.resolved_by,
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "opened_at": case.created_at.isoformat(),
    }


@router.get(
    "/refund-cases",
    response_model=RefundCasePage,
    responses=READ_ERRORS,
    summary="Refund cases (money no open order could take), oldest first; filter by status",
    tags=["refund cases"],
)
async def list_refund_cases(
    uow: Uow,
    principal: CanReadRefundCases,
    status: Literal["open", "refunding", "refunded", "applied", "dismissed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=refund_cases.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    async with uow:
        page = await refund_cases.list_cases(uow.session, status=status, limit=limit, cursor=cursor)
    return {"items": [refund_case_read(c, a) for c, a in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/refund-cases/{case_id}",
    response_model=RefundCaseRead,
    responses=READ_ERRORS,
    summary="One refund case and how it was resolved",
    tags=["refund cases"],
)
async def get_refund_case(case_id: uuid.UUID, uow: Uow, principal: CanReadRefundCases) -> dict[str, Any]:
    async with uow:
        case = await refund_cases.get_case(uow.session, case_id)
        order = await orders.get_order(uow.session, case.order_no)
    return refund_case_read(case, order.account_no)


@router.post(
    "/refund-cases/{case_id}/resolution",
    response_model=RefundCaseRead,
    responses=WRITE_ERRORS,
    summary="Resolve an open refund case: refund the money (four eyes) or apply it as a prepaid top-up",
    description="`refund` requests a refund of the case's whole amount (`refunding`; it is approved with "
    "`POST /refunds/{refund_no}/decision` by a billing_supervisor who is not you, then the provider refunds "
    "and the case is `refunded`; a rejected refund reopens the case). `top_up` records a succeeded prepaid "
    "order of the amount for the order's account (`applied`): billing settles it into the prepaid balance. "
    "`dismiss` (`dismissed`: a billing_supervisor only, else 403 `refund_case_dismissal_not_authorized`) "
    "leaves the money neither refunded nor applied, with the reason in `note`. "
    "Send an `Idempotency-Key`: a retry gets the same answer. A case no longer open is 409 "
    "`refund_case_not_open`.",
    tags=["refund cases"],
)
async def resolve_refund_case(
    request: Request,
    case_id: uuid.UUID,
    body: RefundCaseResolutionCreate,
    uow: Uow,
    principal: CanResolveRefundCases,
    key: IdempotencyKey = None,
) -> JSONResponse:
    if body.resolution is Resolution.DISMISS and not principal.has_role(Role.BILLING_SUPERVISOR):
        raise Forbidden(
            "Only a billing supervisor may dismiss a refund case.",
            code="refund_case_dismissal_not_authorized",
        )

    async def command(u: UnitOfWork) -> tuple[RefundCase, str]:
        case = await refund_cases.resolve(
            u,
            case_id=case_id,
            resolution=body.resolution,
            note=body.note,
            by=principal.audit_actor,
            now=utcnow(),
        )
        order = await orders.get_order(u.session, case.order_no)
        return case, order.account_no

    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    result = await execute(uow, command, lambda r: refund_case_read(*r), claim=claim)
    return respond(payment_metrics.observed(uow, result))


# ------------------------------------------------------------------- bank withholding, counter reports
from payment.api import counter as counter_routes  # noqa: E402
from payment.api import withholding as withholding_routes  # noqa: E402

router.include_router(withholding_routes.router)
router.include_router(counter_routes.router)
