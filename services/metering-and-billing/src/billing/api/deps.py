"""Request-scoped dependencies: the unit of work and the access policy table."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from billing.service_layer.errors import AccountNotFound
from utilis_shared.auth import Principal, Role, require
from utilis_shared.db import UnitOfWork


def get_uow(request: Request) -> UnitOfWork:
    return UnitOfWork(request.app.state.session_factory, request.app.state.settings)


Uow = Annotated[UnitOfWork, Depends(get_uow)]

# The access policy of every route family, in one place. Admin passes every role check.
TARIFF_READERS = (Role.BILLING_CLERK, Role.AGENT, Role.ANALYST)
TARIFF_PUBLISHERS = (Role.BILLING_CLERK,)

CanReadTariffs = Annotated[Principal, Depends(require(roles=TARIFF_READERS))]
CanPublishTariffs = Annotated[Principal, Depends(require(roles=TARIFF_PUBLISHERS))]
# Agents explain bills with a quote; residents may price their own usage (their own accounts only).
CanQuote = Annotated[Principal, Depends(require(roles=TARIFF_READERS, residents=True))]


def ensure_account_access(principal: Principal, account_no: str) -> None:
    """Object-level check. A resident asking about someone else's account learns nothing: 404."""
    if not principal.can_access_account(account_no):
        raise AccountNotFound(f"No account {account_no}.")
