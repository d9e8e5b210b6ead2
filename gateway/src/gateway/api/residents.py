"""The resident's own accounts, under the gateway's own API (``/api/gateway/me/accounts``).

Residents only (``require(residents=True)``: staff and partners get 403), with the gateway's own access
tokens (``app.state.token_verifier``: its own published keys) and not revoked (``revoked_access_tokens``).
The resident is the token's ``sub``; the phone blind index behind it was recorded at sign-in.

Binding by account number + the holder's name (户号 + 户主姓名): an unknown account, a closed one and a
wrong name get the same 404 ``account_not_found`` (no enumeration); wrong pairs are limited per resident
per UTC day (``account_binding_daily_failures``, then 429 ``rate_limited`` with ``Retry-After``). A new
binding is in the resident's access tokens from the next refresh on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from gateway.adapters.orm import RevokedAccessToken
from gateway.service_layer import residents
from utilis_shared.auth import Principal, require
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Forbidden, Unauthorized, problem_responses

router = APIRouter(prefix="/api/gateway/me", tags=["resident accounts"])


class BindByHolder(BaseModel):
    account_no: str = Field(min_length=1, max_length=40, examples=["10000000017"], description="户号")
    holder_name: str = Field(min_length=1, max_length=100, examples=["张三"], description="户主姓名")


class BoundAccount(BaseModel):
    account_no: str
    source: str = Field(
        description="customer: your phone is a contact of the holder; verified: bound by account number"
        " and holder name; manual: bound by an operator"
    )
    bound_at: datetime
    removable: bool = Field(description="whether DELETE /api/gateway/me/accounts/{account_no} may unbind it")


class BoundAccounts(BaseModel):
    account_nos: list[str] = Field(description="what your access token carries after the next refresh")
    accounts: list[BoundAccount]


def _uow(request: Request) -> UnitOfWork:
    return UnitOfWork(request.app.state.session_factory, request.app.state.settings)


async def resident(
    request: Request, principal: Annotated[Principal, Depends(require(residents=True))]
) -> Principal:
    """A resident signed in themselves (not staff acting for them: an assisted-service token names an
    account, not the resident's phone) whose token is not revoked (RFC 7009 revocation by ``jti``)."""
    if principal.actor is not None:
        raise Forbidden("Staff acting for a resident cannot change the resident's own bindings.")
    async with _uow(request) as uow:
        if principal.token_id and await uow.session.get(RevokedAccessToken, principal.token_id):
            raise Unauthorized("The access token has been revoked.", code="invalid_token")
    return principal


Resident = Annotated[Principal, Depends(resident)]


async def _phone_index(uow: UnitOfWork, principal: Principal) -> str:
    bidx = await residents.resident_phone_index(uow, principal.subject)
    if bidx is None:  # a token from before sign-ins were recorded: sign in again
        raise Unauthorized("Sign in again to manage your accounts.", code="invalid_token")
    return bidx


async def _listing(uow: UnitOfWork, phone_bidx: str) -> BoundAccounts:
    rows = await residents.list_bindings(uow, phone_bidx)
    return BoundAccounts(
        account_nos=[r.account_no for r in rows],
        accounts=[
            BoundAccount(account_no=r.account_no, source=r.source, bound_at=r.bound_at, removable=r.removable)
            for r in rows
        ],
    )


@router.get(
    "/accounts",
    summary="The accounts you may act on",
    response_model=BoundAccounts,
    responses=problem_responses(401, 403),
)
async def list_accounts(request: Request, principal: Resident, response: Response) -> BoundAccounts:
    response.headers["Cache-Control"] = "no-store"
    async with _uow(request) as uow:
        return await _listing(uow, await _phone_index(uow, principal))


@router.post(
    "/accounts",
    status_code=201,
    summary="Bind an account by its number and the holder's name (户号 + 户主姓名)",
    response_model=BoundAccounts,
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def bind_account(
    request: Request, principal: Resident, body: BindByHolder, response: Response
) -> BoundAccounts:
    state = request.app.state
    attempts = residents.BindingAttempts(
        state.redis,
        prefix=state.settings.redis_prefix,
        daily_limit=state.settings.account_binding_daily_failures,
    )
    response.headers["Cache-Control"] = "no-store"
    async with _uow(request) as uow:
        phone_bidx = await _phone_index(uow, principal)
        reserved = await attempts.reserve(principal.subject)
        try:
            await residents.bind_verified(uow, phone_bidx, body.account_no, body.holder_name)
        except residents.AccountNotMatched:
            raise  # the attempt stays counted
        except BaseException:
            await attempts.give_back(reserved)
            raise
        await uow.commit()
        await attempts.give_back(reserved)
    async with _uow(request) as uow:
        return await _listing(uow, phone_bidx)


@router.delete(
    "/accounts/{account_no}",
    status_code=204,
    summary="Unbind an account you bound yourself (or an operator bound for you)",
    responses=problem_responses(401, 403, 404, 409),
)
async def unbind_account(request: Request, principal: Resident, account_no: str) -> Response:
    async with _uow(request) as uow:
        await residents.unbind(uow, await _phone_index(uow, principal), account_no)
        await uow.commit()
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
