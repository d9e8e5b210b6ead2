"""HTTP routes of the customer service (mounted by the gateway under ``/api/customer``).

Writes run through ``utilis_shared.commands.execute`` (one transaction, optional Idempotency-Key); routes
never commit. Staff reads of personal data are audited.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from customer.adapters import repository
from customer.adapters.orm import AuditEntry, DuplicateFlag
from customer.api import schemas as s
from customer.api.deps import (
    PII_REVEAL_ROLES,
    CanAudit,
    CanLookUpAccount,
    CanManageMeters,
    CanMerge,
    CanRead,
    CanReadAccount,
    CanRegister,
    Cipher,
    Uow,
    ensure_account_access,
)
from customer.api.presenters import account_read, customer_read, dump
from customer.service_layer import accounts, audit, customers, queries
from customer.service_layer.errors import AccountNotFound, CustomerNotFound
from utilis_shared.auth import Principal
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Forbidden, Problem, problem_responses

router = APIRouter(prefix="/v1")
IdemKey = IdempotencyKey
AccountNoPath = Annotated[
    str, Path(pattern=r"^[0-9A-Z]{6,20}$", description="户号, e.g. 10000000017", examples=["10000000017"])
]

WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)


# --------------------------------------------------------------------------------------------- customers


@router.post(
    "/customers",
    status_code=201,
    response_model=s.CustomerRead,
    responses=WRITE_ERRORS,
    summary="Register a customer (person or organisation)",
    tags=["customers"],
)
async def register_customer(
    request: Request,
    body: s.CustomerCreate,
    uow: Uow,
    cipher: Cipher,
    principal: CanRegister,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    result = await execute(
        uow,
        lambda u: customers.register_customer(u, actor=principal, cipher=cipher, data=body),
        lambda c: dump(customer_read(c)),
        status=201,
        claim=claim,
    )
    return respond(result)


@router.get(
    "/customers",
    response_model=s.Page[s.CustomerSummary],
    responses=READ_ERRORS,
    summary="Search customers by account number, phone, ID number, name or address",
    tags=["customers"],
)
async def search_customers(
    uow: Uow,
    cipher: Cipher,
    principal: CanRead,
    account_no: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{6,20}$")] = None,
    phone: Annotated[str | None, Query(min_length=5, max_length=20)] = None,
    id_number: Annotated[str | None, Query(min_length=5, max_length=30)] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    address: Annotated[
        str | None, Query(min_length=2, max_length=100, description="any fragment of the address")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    filters = queries.SearchFilters(
        account_no=account_no, phone=phone, id_number=id_number, name=name, address=address
    )
    if cursor is not None:
        try:
            queries.decode_cursor(cursor)
        except ValueError as exc:
            raise Problem(
                "The cursor is not one this API returned.", status=400, code="invalid_cursor"
            ) from exc

    async def command(u: UnitOfWork) -> dict[str, Any]:
        items, next_cursor = await queries.search_customers(
            u.session, cipher, filters, cursor=cursor, limit=limit
        )
        audit.record(
            u, principal, "customer.searched", "customer", "-", filters=filters.used, results=len(items)
        )
        return {"items": items, "next_cursor": next_cursor}

    result = await execute(
        uow, command, lambda page: s.Page[s.CustomerSummary].model_validate(page).model_dump(mode="json")
    )
    return result.body


async def _read_customer(
    u: UnitOfWork, principal: Principal, customer_id: uuid.UUID, reveal: bool, cipher: Cipher
) -> s.CustomerRead:
    customer = await repository.get_customer(u.session, customer_id)
    if customer is None:
        raise CustomerNotFound("No customer with this id.")
    if reveal and not principal.has_role(*PII_REVEAL_ROLES):
        raise Forbidden("Your role may not see unmasked personal data.", code="pii_reveal_forbidden")
    audit.record(
        u, principal, "customer.pii_revealed" if reveal else "customer.viewed", "customer", customer.id
    )
    return customer_read(customer, reveal_with=cipher if reveal else None)


@router.get(
    "/customers/{customer_id}",
    response_model=s.CustomerRead,
    responses=READ_ERRORS,
    summary="One customer; `reveal=true` shows ID and phone numbers in full (audited)",
    tags=["customers"],
)
async def get_customer(
    customer_id: uuid.UUID, uow: Uow, cipher: Cipher, principal: CanRead, reveal: bool = False
) -> dict[str, Any]:
    result = await execute(uow, lambda u: _read_customer(u, principal, customer_id, reveal, cipher), dump)
    return result.body


@router.patch(
    "/customers/{customer_id}",
    response_model=s.CustomerRead,
    responses=WRITE_ERRORS,
    summary="Change a customer's name, contacts or tags",
    tags=["customers"],
)
async def update_customer(
    customer_id: uuid.UUID, body: s.CustomerUpdate, uow: Uow, cipher: Cipher, principal: CanRegister
) -> dict[str, Any]:
    result = await execute(
        uow,
        lambda u: customers.update_customer(
            u, actor=principal, cipher=cipher, customer_id=customer_id, data=body
        ),
        lambda c: dump(customer_read(c)),
    )
    return result.body


def _present_view(view: dict[str, Any]) -> dict[str, Any]:
    # Validated and serialised once, by the route's response model.
    return view


async def _customer_view(u: UnitOfWork, customer_id: uuid.UUID, principal: Principal) -> dict[str, Any]:
    """Customer, accounts, premises, meters (one statement) and what other services reported (local
    projections, one statement): no call to another service. A resident sees only the accounts their
    token names."""
    document = await queries.customer_document(u.session, customer_id)
    if document is None:
        raise CustomerNotFound("No customer with this id.")
    customer, accounts = document
    visible = [a for a in accounts if principal.can_access_account(a["account_no"])]
    projected = await queries.projections_for(u.session, [a["account_no"] for a in visible])
    return {
        "customer": customer,
        "accounts": [{"account": a, "services": projected[a["account_no"]]} for a in visible],
        "open_duplicate_flags": await queries.open_duplicate_count(u.session, customer_id)
        if principal.is_staff
        else 0,
        "generated_at": queries.generated_at(),
    }


@router.get(
    "/customers/{customer_id}/view",
    response_model=s.CustomerView,
    responses=READ_ERRORS,
    summary="The 360° view: customer, accounts, premises, meters, bills, payments, work orders",
    tags=["customers"],
)
async def customer_view(customer_id: uuid.UUID, uow: Uow, principal: CanRead) -> dict[str, Any]:
    async def command(u: UnitOfWork) -> dict[str, Any]:
        audit.record(u, principal, "customer.viewed", "customer", customer_id, view="360")
        return await _customer_view(u, customer_id, principal)

    return (await execute(uow, command, _present_view)).body


@router.post(
    "/customers/{customer_id}/merges",
    response_model=s.CustomerRead,
    responses=WRITE_ERRORS,
    summary="Merge a duplicate customer record into this one (admin, audited)",
    tags=["duplicates"],
)
async def merge_customer(
    request: Request,
    customer_id: uuid.UUID,
    body: s.MergeCreate,
    uow: Uow,
    principal: CanMerge,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork):
        await accounts.merge_customers(
            u, actor=principal, target_id=customer_id, source_id=body.source_customer_id
        )
        return await repository.get_customer(u.session, customer_id)

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, lambda c: dump(customer_read(c)), claim=claim))


@router.get(
    "/customers/{customer_id}/audit",
    response_model=s.Page[s.AuditEntryRead],
    responses=READ_ERRORS,
    summary="The audit trail of a customer and its accounts (admin)",
    tags=["audit"],
)
async def customer_audit(
    customer_id: uuid.UUID,
    uow: Uow,
    principal: CanAudit,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    async with uow:
        customer = await repository.get_customer_with_accounts(uow.session, customer_id)
        if customer is None:
            raise CustomerNotFound("No customer with this id.")
        ids = [str(customer_id), *(a.account_no for a in customer.accounts)]
        rows = (
            (
                await uow.session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.entity_id.in_(ids))
                    .order_by(AuditEntry.occurred_at.desc())
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    return {
        "items": [s.AuditEntryRead.model_validate(r).model_dump(mode="json") for r in rows],
        "next_cursor": None,
    }


# --------------------------------------------------------------------------------------------- accounts


@router.post(
    "/accounts",
    status_code=201,
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Open an account (开户) for a new or existing customer at a premise",
    tags=["accounts"],
)
async def open_account(
    request: Request,
    body: s.AccountOpen,
    uow: Uow,
    cipher: Cipher,
    principal: CanRegister,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    result = await execute(
        uow,
        lambda u: accounts.open_account(u, actor=principal, cipher=cipher, data=body),
        lambda a: dump(account_read(a)),
        status=201,
        claim=claim,
    )
    return respond(result)


@router.get(
    "/accounts/{account_no}",
    response_model=s.AccountRead,
    responses=READ_ERRORS,
    summary="One account with its premise and meters",
    tags=["accounts"],
)
async def get_account(account_no: AccountNoPath, uow: Uow, principal: CanLookUpAccount) -> dict[str, Any]:
    ensure_account_access(principal, account_no)
    async with uow:
        account = await repository.get_account(uow.session, account_no)
    if account is None:
        raise AccountNotFound(f"No account {account_no}.")
    return dump(account_read(account))


@router.get(
    "/accounts/{account_no}/view",
    response_model=s.CustomerView,
    responses=READ_ERRORS,
    summary="The 360° view from one account (residents: their own accounts only)",
    tags=["accounts"],
)
async def account_view(account_no: AccountNoPath, uow: Uow, principal: CanReadAccount) -> dict[str, Any]:
    ensure_account_access(principal, account_no)

    async def command(u: UnitOfWork) -> dict[str, Any]:
        holder = await repository.holder_of(u.session, account_no)
        if holder is None:
            raise AccountNotFound(f"No account {account_no}.")
        if principal.is_staff or principal.actor is not None:
            audit.record(
                u, principal, "customer.viewed", "customer", holder, view="360", account_no=account_no
            )
        return await _customer_view(u, holder, principal)

    return (await execute(uow, command, _present_view)).body


def _account_command(request: Request, principal: Principal, uow: UnitOfWork, key: str | None, body: Any, fn):
    claim = claim_for(request, principal.subject, key, body.model_dump(mode="json"))
    return execute(uow, fn, lambda a: dump(account_read(a)), claim=claim)


@router.patch(
    "/accounts/{account_no}",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Change an account's tariff class or household size",
    tags=["accounts"],
)
async def update_account(
    account_no: AccountNoPath, body: s.AccountUpdate, uow: Uow, principal: CanRegister
) -> dict[str, Any]:
    result = await execute(
        uow,
        lambda u: accounts.update_account(u, actor=principal, account_no=account_no, data=body),
        lambda a: dump(account_read(a)),
    )
    return result.body


@router.post(
    "/accounts/{account_no}/transfers",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Transfer ownership (过户) to another customer",
    tags=["accounts"],
)
async def transfer_account(
    request: Request,
    account_no: AccountNoPath,
    body: s.TransferCreate,
    uow: Uow,
    cipher: Cipher,
    principal: CanRegister,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    return respond(
        await _account_command(
            request,
            principal,
            uow,
            idempotency_key,
            body,
            lambda u: accounts.transfer_account(
                u, actor=principal, cipher=cipher, account_no=account_no, data=body
            ),
        )
    )


@router.post(
    "/accounts/{account_no}/suspension",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Suspend service (报停)",
    tags=["accounts"],
)
async def suspend_account(
    request: Request,
    account_no: AccountNoPath,
    body: s.SuspensionCreate,
    uow: Uow,
    principal: CanRegister,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    return respond(
        await _account_command(
            request,
            principal,
            uow,
            idempotency_key,
            body,
            lambda u: accounts.suspend_account(u, actor=principal, account_no=account_no, data=body),
        )
    )


@router.post(
    "/accounts/{account_no}/resumption",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Resume a suspended account",
    tags=["accounts"],
)
async def resume_account(
    request: Request,
    account_no: AccountNoPath,
    body: s.ResumptionCreate,
    uow: Uow,
    principal: CanRegister,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    return respond(
        await _account_command(
            request,
            principal,
            uow,
            idempotency_key,
            body,
            lambda u: accounts.resume_account(u, actor=principal, account_no=account_no, data=body),
        )
    )


@router.post(
    "/accounts/{account_no}/closure",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Close an account (销户): needs the final reading and no known outstanding balance",
    tags=["accounts"],
)
async def close_account(
    request: Request,
    account_no: AccountNoPath,
    body: s.ClosureCreate,
    uow: Uow,
    principal: CanRegister,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    return respond(
        await _account_command(
            request,
            principal,
            uow,
            idempotency_key,
            body,
            lambda u: accounts.close_account(u, actor=principal, account_no=account_no, data=body),
        )
    )


@router.post(
    "/accounts/{account_no}/meters",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Install a meter on an account",
    tags=["meters"],
)
async def install_meter(
    request: Request,
    account_no: AccountNoPath,
    body: s.MeterIn,
    uow: Uow,
    principal: CanManageMeters,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    return respond(
        await _account_command(
            request,
            principal,
            uow,
            idempotency_key,
            body,
            lambda u: accounts.install_meter(u, actor=principal, account_no=account_no, data=body),
        )
    )


@router.post(
    "/accounts/{account_no}/meters/{serial_no}/replacement",
    response_model=s.AccountRead,
    responses=WRITE_ERRORS,
    summary="Replace a meter (final reading of the old one)",
    tags=["meters"],
)
async def replace_meter(
    request: Request,
    account_no: AccountNoPath,
    serial_no: Annotated[str, Path(pattern=r"^[0-9A-Za-z\-]{4,40}$")],
    body: s.MeterReplacementCreate,
    uow: Uow,
    principal: CanManageMeters,
    idempotency_key: IdemKey = None,
) -> JSONResponse:
    return respond(
        await _account_command(
            request,
            principal,
            uow,
            idempotency_key,
            body,
            lambda u: accounts.replace_meter(
                u, actor=principal, account_no=account_no, serial_no=serial_no, data=body
            ),
        )
    )


@router.patch(
    "/premises/{premise_id}",
    response_model=s.PremiseRead,
    responses=WRITE_ERRORS,
    summary="Correct a premise's heated area, property certificate or coordinates",
    tags=["premises"],
)
async def update_premise(
    premise_id: uuid.UUID, body: s.PremiseUpdate, uow: Uow, principal: CanRegister
) -> dict[str, Any]:
    result = await execute(
        uow,
        lambda u: accounts.update_premise(u, actor=principal, premise_id=premise_id, data=body),
        lambda p: s.PremiseRead.model_validate(p).model_dump(mode="json"),
    )
    return result.body


# --------------------------------------------------------------------------------------------- duplicates


@router.get(
    "/duplicates",
    response_model=s.Page[s.DuplicateFlagRead],
    responses=READ_ERRORS,
    summary="Open probable-duplicate flags (same phone + same property certificate)",
    tags=["duplicates"],
)
async def list_duplicates(
    uow: Uow,
    principal: CanMerge,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    try:
        after = queries.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise Problem("The cursor is not one this API returned.", status=400, code="invalid_cursor") from exc
    stmt = select(DuplicateFlag).where(DuplicateFlag.status == "open")
    if after is not None:
        stmt = stmt.where(DuplicateFlag.id > after)
    async with uow:
        rows = (await uow.session.execute(stmt.order_by(DuplicateFlag.id).limit(limit + 1))).scalars().all()
    items = [s.DuplicateFlagRead.model_validate(r).model_dump(mode="json") for r in rows[:limit]]
    return {
        "items": items,
        "next_cursor": queries.encode_cursor(rows[limit - 1].id) if len(rows) > limit else None,
    }


@router.post(
    "/duplicates/{flag_id}/dismissal",
    response_model=s.DuplicateFlagRead,
    responses=WRITE_ERRORS,
    summary="Dismiss a duplicate flag: the two records are different customers",
    tags=["duplicates"],
)
async def dismiss_duplicate(flag_id: uuid.UUID, uow: Uow, principal: CanMerge) -> dict[str, Any]:
    result = await execute(
        uow,
        lambda u: accounts.dismiss_duplicate(u, actor=principal, flag_id=flag_id),
        lambda f: s.DuplicateFlagRead.model_validate(f).model_dump(mode="json"),
    )
    return result.body
