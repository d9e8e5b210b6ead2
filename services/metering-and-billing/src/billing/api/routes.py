"""HTTP routes of the metering-and-billing service (mounted by the gateway under ``/api/billing``).

Writes run through ``utilis_shared.commands.execute`` (one transaction, optional Idempotency-Key); routes
never commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from billing.adapters.orm import BillingAccount, TariffPlanVersion
from billing.api import schemas as s
from billing.api.deps import CanPublishTariffs, CanQuote, CanReadTariffs, Uow, ensure_account_access
from billing.domain.tariffs import TariffBill, Usage
from billing.service_layer import tariffs
from billing.service_layer.errors import AccountNotFound, invalid_field
from billing.service_layer.tariffs import NewVersion, validation_errors
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import UnprocessableEntity, problem_responses

router = APIRouter(prefix="/v1")
CodePath = Annotated[
    str,
    Path(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80, examples=["beijing-residential-gas-tiered"]),
]

WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)


def plan_read(row: TariffPlanVersion) -> dict[str, Any]:
    return s.TariffPlanRead.model_validate(row, from_attributes=True).model_dump(mode="json")


@router.get(
    "/tariff-plans",
    response_model=s.TariffPlanList,
    responses=READ_ERRORS,
    summary="List tariff plans: the version in force on a date, or the latest version of each plan",
    tags=["tariffs"],
)
async def list_tariff_plans(
    uow: Uow,
    principal: CanReadTariffs,
    utility: s.Utility | None = None,
    customer_class: s.CustomerClass | None = None,
    on: Annotated[dt.date | None, Query(description="business date (Asia/Shanghai); default: latest")] = None,
) -> dict[str, Any]:
    async def command(u: UnitOfWork) -> list[TariffPlanVersion]:
        return await tariffs.list_plans(u.session, utility=utility, customer_class=customer_class, on=on)

    result = await execute(uow, command, lambda rows: {"items": [plan_read(r) for r in rows]})
    return result.body


@router.get(
    "/tariff-plans/{code}/versions",
    response_model=s.TariffPlanList,
    responses=READ_ERRORS,
    summary="Every version of a tariff plan, oldest first",
    tags=["tariffs"],
)
async def tariff_plan_versions(code: CodePath, uow: Uow, principal: CanReadTariffs) -> dict[str, Any]:
    result = await execute(
        uow,
        lambda u: tariffs.plan_versions(u.session, code),
        lambda rows: {"items": [plan_read(r) for r in rows]},
    )
    return result.body


@router.post(
    "/tariff-plans",
    status_code=201,
    response_model=s.TariffPlanRead,
    responses=WRITE_ERRORS,
    summary="Publish a tariff plan version (a new code, or a new version superseding the latest)",
    tags=["tariffs"],
)
async def publish_tariff_plan(
    request: Request,
    body: s.TariffPlanCreate,
    uow: Uow,
    principal: CanPublishTariffs,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    document = body.model_dump(mode="json")
    data = NewVersion(
        code=body.code,
        name=body.name,
        utility=body.utility.value,
        customer_class=body.customer_class.value,
        region=body.region,
        volume_unit=body.volume_unit.value if body.volume_unit else None,
        effective_from=body.effective_from,
        effective_to=body.effective_to,
        note=body.note,
        components=document["components"],
        tier_price_adjustments=document["tier_price_adjustments"],
        expected_version=body.expected_version,
    )
    claim = claim_for(request, principal.subject, idempotency_key, document)
    result = await execute(
        uow,
        lambda u: tariffs.publish_version(u, published_by=principal.audit_actor, data=data),
        plan_read,
        status=201,
        claim=claim,
    )
    return respond(result)


@router.post(
    "/tariff-plans/{code}/quote",
    response_model=s.QuoteRead,
    responses=READ_ERRORS,
    summary="Price a period's usage under a plan: the bill lines and the total in fen (nothing is stored)",
    tags=["tariffs"],
)
async def quote_tariff_plan(
    code: CodePath, body: s.QuoteRequest, uow: Uow, principal: CanQuote
) -> dict[str, Any]:
    if body.account_no is not None:  # prices are public; an account's own data only for its holder
        ensure_account_access(principal, body.account_no)

    async def command(u: UnitOfWork) -> tuple[Any, TariffBill]:
        usage_fields = body.model_dump(exclude={"account_no"}, exclude_none=True)
        account: BillingAccount | None = None
        if body.account_no is not None:
            account = await u.session.get(BillingAccount, body.account_no)
            if account is None:
                raise AccountNotFound(f"No account {body.account_no}.")
            usage_fields.setdefault("household_members", account.household_size)
            if account.heated_area_m2 is not None:
                usage_fields.setdefault("heated_area_m2", account.heated_area_m2)
            usage_fields.setdefault("suspended", account.status == "suspended")
        try:
            usage = Usage.model_validate(usage_fields)
        except ValidationError as exc:
            raise UnprocessableEntity(
                "The usage to price is not valid.", code="invalid_usage", errors=validation_errors(exc)
            ) from exc
        rows = await tariffs.plan_versions(u.session, code)
        if account is not None and (account.utility, account.customer_class) != (
            rows[-1].utility,
            rows[-1].customer_class,
        ):
            raise invalid_field(
                "account_no",
                "plan_not_for_account",
                f"Plan {code} is for {rows[-1].utility} / {rows[-1].customer_class}, not this account's "
                f"{account.utility} / {account.customer_class}.",
            )
        return await tariffs.quote(u.session, code, usage)

    def present(result: tuple[Any, TariffBill]) -> dict[str, Any]:
        plan, bill = result
        return s.QuoteRead(
            code=plan.code,
            name=plan.name,
            utility=plan.utility.value,
            customer_class=plan.customer_class.value,
            volume_unit=plan.volume_unit.value if plan.volume_unit else None,
            account_no=body.account_no,
            period_start=bill.period_start,
            period_end=bill.period_end,
            lines=[
                s.QuoteLine(
                    kind=line.kind.value,
                    description=line.description,
                    quantity=line.quantity,
                    unit=line.unit,
                    unit_price=line.unit_price,
                    amount=s.Money(amount_fen=line.amount_fen),
                    period_start=line.period_start,
                    period_end=line.period_end,
                    plan_version=line.plan_version,
                    tier=line.tier,
                    band=line.band.value if line.band else None,
                    season=line.season,
                    share=line.share,
                    days=line.days,
                    of_days=line.of_days,
                )
                for line in bill.lines
            ],
            total=s.Money(amount_fen=bill.total_fen),
            year_to_date_volume_after=bill.year_to_date_volume_after,
        ).model_dump(mode="json")

    return (await execute(uow, command, present)).body
