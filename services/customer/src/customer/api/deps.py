"""Request-scoped dependencies: the unit of work, the PII cipher, and the access policy table."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from customer.service_layer.errors import AccountNotFound
from utilis_shared.auth import Principal, Role, require
from utilis_shared.pii import PiiCipher
from utilis_shared.web import Uow as Uow  # re-exported: routes take every dependency from here


async def get_cipher(request: Request) -> PiiCipher:
    return request.app.state.cipher


Cipher = Annotated[PiiCipher, Depends(get_cipher)]

# The access policy of every route family, in one place. Admin passes every role check.
FRONT_OFFICE = (Role.AGENT, Role.BILLING_CLERK)
READERS = (Role.AGENT, Role.BILLING_CLERK, Role.DISPATCHER)
METER_STAFF = (Role.AGENT, Role.BILLING_CLERK, Role.TECHNICIAN)
PII_REVEAL_ROLES = (Role.AGENT,)  # plus admin

CanRegister = Annotated[Principal, Depends(require(roles=FRONT_OFFICE))]
CanRead = Annotated[Principal, Depends(require(roles=READERS))]
CanReadAccount = Annotated[Principal, Depends(require(roles=READERS, residents=True))]
# Banks collecting for the utility confirm an account (status, masked holder) before taking a payment.
CanLookUpAccount = Annotated[
    Principal, Depends(require(roles=READERS, scopes=("accounts:read",), residents=True))
]
CanManageMeters = Annotated[Principal, Depends(require(roles=METER_STAFF))]
CanMerge = Annotated[Principal, Depends(require(roles=(Role.ADMIN,)))]
CanAudit = Annotated[Principal, Depends(require(roles=(Role.ADMIN,)))]


def ensure_account_access(principal: Principal, account_no: str) -> None:
    """Object-level check. A resident asking for someone else's account learns nothing: 404. Partners get
    here only through a route whose policy admitted their scope (``accounts:read``: any account)."""
    if principal.kind == "partner":
        return
    if not principal.can_access_account(account_no):
        raise AccountNotFound(f"No account {account_no}.")
