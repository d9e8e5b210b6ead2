"""Request-scoped dependencies: the unit of work and the access policy of every route family."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from payment.service_layer.orders import AccountNotFound
from utilis_shared.auth import Principal, Role, require
from utilis_shared.web import Uow as Uow  # re-exported: routes take every dependency from here

# Residents pay their own accounts; agents help on the phone; billing clerks are the counter's cashiers;
# partners (banks collecting for the utility) by scope.
PAYMENTS_WRITE_SCOPE = "payments:write"
PAYMENTS_READ_SCOPE = "payments:read"
CanPay = Annotated[
    Principal,
    Depends(require(roles=(Role.AGENT, Role.BILLING_CLERK), scopes=(PAYMENTS_WRITE_SCOPE,), residents=True)),
]
CanReadPayments = Annotated[
    Principal,
    Depends(
        require(
            roles=(Role.AGENT, Role.BILLING_CLERK, Role.ANALYST),
            scopes=(PAYMENTS_READ_SCOPE,),
            residents=True,
        )
    ),
]
CanTakeCash = Annotated[Principal, Depends(require(roles=(Role.BILLING_CLERK,)))]
CanRequestRefunds = Annotated[Principal, Depends(require(roles=(Role.AGENT, Role.BILLING_CLERK)))]
CanApproveRefunds = Annotated[Principal, Depends(require(roles=(Role.BILLING_SUPERVISOR,)))]
# Refund cases: billing staff resolve them (a case's refund is then approved by another supervisor).
CanResolveRefundCases = Annotated[
    Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR)))
]
CanReadRefundCases = Annotated[
    Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR, Role.ANALYST)))
]


def ensure_account_access(principal: Principal, account_no: str) -> None:
    """Object-level check: a resident asking about someone else's account learns nothing (404)."""
    if principal.kind == "partner":
        return
    if not principal.can_access_account(account_no):
        raise AccountNotFound(f"No account {account_no}.")
