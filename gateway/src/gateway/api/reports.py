"""Reports the gateway can answer from what passes through it: self-service usage per channel
(``/api/gateway/reports/channel-usage``), for analysts and administrators, and for the regulator's
system with the ``reports:read`` scope."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from gateway.service_layer.channel_usage import usage_report
from utilis_shared.auth import Principal, Role, require
from utilis_shared.errors import UnprocessableEntity, problem_responses
from utilis_shared.timeutil import business_today

router = APIRouter(prefix="/api/gateway/reports", tags=["reports"])
CanReadReports = Annotated[Principal, Depends(require(roles=(Role.ANALYST,), scopes=("reports:read",)))]
MAX_DAYS = 366


@router.get(
    "/channel-usage",
    summary="Requests per channel (self-service usage) between two business dates, inclusive",
    responses=problem_responses(401, 403, 422),
)
async def channel_usage(
    request: Request,
    principal: CanReadReports,
    start: Annotated[date | None, Query(alias="from", description="default: the 1st of this month")] = None,
    end: Annotated[date | None, Query(alias="to", description="default: today (Asia/Shanghai)")] = None,
) -> dict[str, Any]:
    today = business_today()
    start = start or today.replace(day=1)
    end = end or today
    if end < start:
        raise UnprocessableEntity("`to` is before `from`.", code="invalid_period")
    if end - start > timedelta(days=MAX_DAYS):
        raise UnprocessableEntity(f"A report covers at most {MAX_DAYS} days.", code="invalid_period")
    await request.app.state.channel_usage.flush()  # this process's latest counts are in the report too
    async with request.app.state.session_factory() as session:
        return await usage_report(session, start, end)
