"""Request-scoped dependencies: the unit of work and the access policy table."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from billing.service_layer.errors import AccountNotFound
from utilis_shared.auth import Principal, Role, require
from utilis_shared.web import Uow as Uow  # re-exported: routes take every dependency from here

# The access policy of every route family, in one place. Admin passes every role check.
TARIFF_READERS = (Role.BILLING_CLERK, Role.AGENT, Role.ANALYST)
TARIFF_PUBLISHERS = (Role.BILLING_CLERK,)

CanReadTariffs = Annotated[Principal, Depends(require(roles=TARIFF_READERS))]
CanPublishTariffs = Annotated[Principal, Depends(require(roles=TARIFF_PUBLISHERS))]
# Agents explain bills with a quote; residents may price their own usage (their own accounts only).
CanQuote = Annotated[Principal, Depends(require(roles=TARIFF_READERS, residents=True))]


# Billing runs, notes, waivers and lookups.
CanRunBilling = Annotated[Principal, Depends(require(roles=(Role.BILLING_CLERK,)))]
CanReadRuns = Annotated[Principal, Depends(require(roles=(Role.BILLING_CLERK, Role.ANALYST)))]
CanIssueNotes = Annotated[Principal, Depends(require(roles=(Role.BILLING_CLERK,)))]
CanApproveWaivers = Annotated[Principal, Depends(require(roles=(Role.BILLING_SUPERVISOR,)))]
CanReadReminders = Annotated[Principal, Depends(require(roles=(Role.AGENT, Role.BILLING_CLERK)))]
# Residents see their own accounts; agents explain bills on the phone; clerks and analysts read them;
# banks (scope bills:read) look up what an account owes before collecting.
BILLS_READ_SCOPE = "bills:read"
CanLookUp = Annotated[
    Principal,
    Depends(
        require(
            roles=(Role.AGENT, Role.BILLING_CLERK, Role.ANALYST), scopes=(BILLS_READ_SCOPE,), residents=True
        )
    ),
]


def ensure_account_access(principal: Principal, account_no: str) -> None:
    """Object-level check. A resident asking about someone else's account learns nothing: 404."""
    if principal.kind == "partner":
        return  # admitted by scope at the route, for any account (a bank collecting for the utility)
    if not principal.can_access_account(account_no):
        raise AccountNotFound(f"No account {account_no}.")


# ---- readings and telemetry
# Meter readers (technicians) and billing clerks enter readings; residents report their own (with a photo).
READING_ENTRY = (Role.TECHNICIAN, Role.BILLING_CLERK)
READING_REVIEWERS = (Role.BILLING_CLERK,)
READING_READERS = (Role.BILLING_CLERK, Role.AGENT, Role.TECHNICIAN, Role.ANALYST)
TELEMETRY_WRITERS = (Role.TECHNICIAN,)
TELEMETRY_READERS = (Role.AGENT, Role.TECHNICIAN, Role.BILLING_CLERK)
# Partner clients (remote-meter head ends, heating SCADA) by OAuth scope.
READINGS_WRITE_SCOPE = "readings:write"
TELEMETRY_WRITE_SCOPE = "telemetry:write"

CanEnterReading = Annotated[Principal, Depends(require(roles=READING_ENTRY, residents=True))]
CanUploadReadings = Annotated[
    Principal, Depends(require(roles=(Role.BILLING_CLERK,), scopes=(READINGS_WRITE_SCOPE,)))
]
CanReadReadings = Annotated[Principal, Depends(require(roles=READING_READERS, residents=True))]
CanReviewReadings = Annotated[Principal, Depends(require(roles=READING_REVIEWERS))]
CanUploadTelemetry = Annotated[
    Principal, Depends(require(roles=TELEMETRY_WRITERS, scopes=(TELEMETRY_WRITE_SCOPE,)))
]
CanConfigureTelemetry = Annotated[Principal, Depends(require(roles=(Role.TECHNICIAN, Role.BILLING_CLERK)))]
CanReadTelemetry = Annotated[Principal, Depends(require(roles=TELEMETRY_READERS, residents=True))]
