"""HTTP routes of meter readings (抄表) and heating telemetry (供热温度). Writes run through
``utilis_shared.commands.execute`` (one transaction, optional Idempotency-Key); routes never commit."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from billing.adapters.orm import MeterReadingRow, ReadingTrueUp, TelemetrySite
from billing.api import readings_schemas as s
from billing.api.deps import (
    CanConfigureTelemetry,
    CanEnterReading,
    CanReadReadings,
    CanReadTelemetry,
    CanReviewReadings,
    CanUploadReadings,
    CanUploadTelemetry,
    Uow,
    ensure_account_access,
)
from billing.domain.readings import SOURCE_NAMES_ZH, ReadingSource
from billing.service_layer import readings, telemetry
from billing.service_layer.errors import invalid_field
from utilis_shared.commands import IdempotencyKey, claim_for, execute, respond
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Problem, problem_responses

router = APIRouter(prefix="/v1")

AccountPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{6,20}$", examples=["20000000017"])]
SiteIdPath = Annotated[str, Path(min_length=1, max_length=80, examples=["HRB-NG-012"])]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=120)]

WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422)
READ_ERRORS = problem_responses(400, 401, 403, 404, 422)


def reading_read(row: MeterReadingRow, true_up: ReadingTrueUp | None = None) -> dict[str, Any]:
    source = row.source
    name = "装表起码" if source == readings.INSTALLATION else SOURCE_NAMES_ZH[ReadingSource(source)]
    return s.ReadingRead(
        id=row.id,
        account_no=row.account_no,
        meter_serial=row.meter_serial,
        read_at=row.read_at,
        value=row.value,
        source=source,
        source_name_zh=name,
        entered_by=row.entered_by,
        photo_ref=row.photo_ref,
        external_id=row.external_id,
        status=row.status,
        flags=row.flags,
        kind=row.kind,
        consumption=row.consumption,
        volume=row.volume,
        previous_reading_id=row.previous_reading_id,
        estimate=row.estimate,
        true_up=s.TrueUpRead.model_validate(true_up, from_attributes=True) if true_up is not None else None,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        review_note=row.review_note,
        created_at=row.created_at or row.read_at,
    ).model_dump(mode="json")


async def _with_true_up(u: UnitOfWork, row: MeterReadingRow) -> tuple[MeterReadingRow, ReadingTrueUp | None]:
    await u.session.flush()
    await u.session.refresh(row, ["created_at"])
    return row, (await readings.true_ups_for(u.session, [row])).get(row.id)


def _present(result: tuple[MeterReadingRow, ReadingTrueUp | None]) -> dict[str, Any]:
    return reading_read(*result)


def _cursor_problem() -> Problem:
    return Problem("The cursor is not one this API returned.", status=400, code="invalid_cursor")


# --------------------------------------------------------------------------------------------------
# Readings


@router.post(
    "/accounts/{account_no}/readings",
    status_code=201,
    response_model=s.ReadingRead,
    responses=WRITE_ERRORS,
    summary="Enter a reading: a meter reader's (manual) or a resident's own (self-reported, with a photo)",
    tags=["readings"],
)
async def enter_reading(
    request: Request,
    account_no: AccountPath,
    body: s.ReadingCreate,
    uow: Uow,
    principal: CanEnterReading,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    ensure_account_access(principal, account_no)
    if principal.is_resident:
        if body.photo_ref is None:
            raise invalid_field(
                "photo_ref", "photo_ref_required", "A self-reported reading needs a photo of the register."
            )
        source = ReadingSource.SELF_REPORTED
    else:
        source = ReadingSource.MANUAL
    item = readings.NewReading(
        read_at=body.read_at.astimezone(UTC),
        value=body.value,
        source=source,
        entered_by=principal.audit_actor,
        account_no=account_no,
        meter_serial=body.meter_serial,
        photo_ref=body.photo_ref,
        external_id=body.external_id,
    )

    async def command(u: UnitOfWork) -> tuple[MeterReadingRow, ReadingTrueUp | None]:
        row, _ = await readings.record_reading(u, item)
        return await _with_true_up(u, row)

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, _present, status=201, claim=claim))


@router.get(
    "/accounts/{account_no}/readings",
    response_model=s.ReadingList,
    responses=READ_ERRORS,
    summary="An account's readings, newest first (cursor pagination)",
    tags=["readings"],
)
async def list_account_readings(
    account_no: AccountPath,
    uow: Uow,
    principal: CanReadReadings,
    status: s.ReadingStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    ensure_account_access(principal, account_no)
    try:
        after = readings.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise _cursor_problem() from exc

    async def command(u: UnitOfWork) -> dict[str, Any]:
        rows, next_cursor = await readings.list_readings(
            u.session, account_no, limit=limit, cursor=after, status=status
        )
        true_ups = await readings.true_ups_for(u.session, rows)
        return {"items": [reading_read(r, true_ups.get(r.id)) for r in rows], "next_cursor": next_cursor}

    return (await execute(uow, command, lambda body: body)).body


@router.post(
    "/readings/batches",
    response_model=s.BatchRead,
    responses=WRITE_ERRORS,
    summary="Upload remote-meter readings in bulk (one transaction; per-reading result; re-sends dedupe)",
    tags=["readings"],
)
async def upload_batch(
    request: Request,
    body: s.BatchCreate,
    uow: Uow,
    principal: CanUploadReadings,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    limit = uow.settings.readings_batch_max  # type: ignore[attr-defined]
    if len(body.readings) > limit:
        raise Problem(f"A batch holds at most {limit} readings.", status=413, code="batch_too_large")
    items = [
        readings.NewReading(
            read_at=r.read_at.astimezone(UTC),
            value=r.value,
            source=ReadingSource.REMOTE_BATCH,
            entered_by=principal.audit_actor,
            account_no=r.account_no,
            meter_serial=r.meter_serial,
            external_id=r.external_id,
        )
        for r in body.readings
    ]

    def present(results: list[readings.ItemResult]) -> dict[str, Any]:
        counts = Counter({"accepted": 0, "flagged": 0, "rejected": 0, "duplicate": 0})
        counts.update(r.outcome for r in results)
        return s.BatchRead(
            batch_id=body.batch_id,
            counts=dict(counts),
            items=[
                s.BatchItemResult(
                    index=r.index,
                    external_id=r.external_id,
                    result=r.outcome,  # type: ignore[arg-type]
                    reading_id=r.reading.id if r.reading is not None else None,
                    status=r.reading.status if r.reading is not None else None,  # type: ignore[arg-type]
                    flags=r.flags,
                    code=r.code,
                    message=r.message,
                )
                for r in sorted(results, key=lambda r: r.index)
            ],
        ).model_dump(mode="json")

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, lambda u: readings.record_readings(u, items), present, claim=claim))


@router.get(
    "/readings/review-queue",
    response_model=s.ReadingList,
    responses=READ_ERRORS,
    summary="Readings waiting for review (flagged), oldest first",
    tags=["readings"],
)
async def review_queue(
    uow: Uow,
    principal: CanReviewReadings,
    account_no: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z]{6,20}$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    try:
        after = readings.decode_queue_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise _cursor_problem() from exc

    async def command(u: UnitOfWork) -> dict[str, Any]:
        rows, next_cursor = await readings.review_queue(
            u.session, limit=limit, after=after, account_no=account_no
        )
        return {"items": [reading_read(r) for r in rows], "next_cursor": next_cursor}

    return (await execute(uow, command, lambda body: body)).body


@router.post(
    "/readings/{reading_id}/approve",
    response_model=s.ReadingRead,
    responses=WRITE_ERRORS,
    summary="Approve a flagged reading: it becomes billable (trues up estimates before it)",
    tags=["readings"],
)
async def approve_reading(
    request: Request,
    reading_id: uuid.UUID,
    uow: Uow,
    principal: CanReviewReadings,
    body: s.ReadingApprove | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    body = body or s.ReadingApprove()

    async def command(u: UnitOfWork) -> tuple[MeterReadingRow, ReadingTrueUp | None]:
        row = await readings.approve(
            u, reading_id, reviewer=principal.audit_actor, note=body.note, consumption=body.consumption
        )
        return await _with_true_up(u, row)

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, _present, claim=claim))


@router.post(
    "/readings/{reading_id}/reject",
    response_model=s.ReadingRead,
    responses=WRITE_ERRORS,
    summary="Reject a flagged reading (never billed; enter a corrected reading or issue an estimate)",
    tags=["readings"],
)
async def reject_reading(
    request: Request,
    reading_id: uuid.UUID,
    body: s.ReadingReject,
    uow: Uow,
    principal: CanReviewReadings,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def command(u: UnitOfWork) -> tuple[MeterReadingRow, ReadingTrueUp | None]:
        row = await readings.reject(u, reading_id, reviewer=principal.audit_actor, reason=body.reason)
        return row, None

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, _present, claim=claim))


@router.post(
    "/accounts/{account_no}/readings/estimates",
    status_code=201,
    response_model=s.ReadingRead,
    responses=WRITE_ERRORS,
    summary="Issue an estimated reading (估抄) from the account's history; the next actual one trues it up",
    tags=["readings"],
)
async def issue_estimate(
    request: Request,
    account_no: AccountPath,
    uow: Uow,
    principal: CanReviewReadings,
    body: s.EstimateCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    body = body or s.EstimateCreate()
    at = body.read_at.astimezone(UTC) if body.read_at is not None else None

    async def command(u: UnitOfWork) -> tuple[MeterReadingRow, ReadingTrueUp | None]:
        row = await readings.issue_estimate(u, account_no, at=at, entered_by=principal.audit_actor)
        return await _with_true_up(u, row)

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, command, _present, status=201, claim=claim))


# --------------------------------------------------------------------------------------------------
# Heating telemetry


@router.post(
    "/telemetry/samples",
    response_model=s.SamplesRead,
    responses=WRITE_ERRORS,
    summary="Upload supply/return water temperature samples in bulk (re-sent samples are kept once)",
    tags=["telemetry"],
)
async def upload_samples(
    request: Request,
    body: s.SamplesCreate,
    uow: Uow,
    principal: CanUploadTelemetry,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    limit = uow.settings.readings_batch_max  # type: ignore[attr-defined]
    if len(body.samples) > limit:
        raise Problem(f"A batch holds at most {limit} samples.", status=413, code="batch_too_large")
    samples = [
        telemetry.NewSample(
            site_kind=x.site_kind,
            site_id=x.site_id,
            measured_at=x.measured_at.astimezone(UTC),
            supply_c=x.supply_c,
            return_c=x.return_c,
            device_id=x.device_id,
        )
        for x in body.samples
    ]

    def present(results: list[telemetry.SampleResult]) -> dict[str, Any]:
        counts = Counter({"accepted": 0, "duplicate": 0, "rejected": 0})
        counts.update(r.outcome for r in results)
        return s.SamplesRead(
            counts=dict(counts),
            items=[
                s.SampleResultRead(index=r.index, result=r.outcome, code=r.code, message=r.message)  # type: ignore[arg-type]
                for r in results
            ],
        ).model_dump(mode="json")

    claim = claim_for(request, principal.subject, idempotency_key, body.model_dump(mode="json"))
    return respond(await execute(uow, lambda u: telemetry.record_samples(u, samples), present, claim=claim))


@router.put(
    "/telemetry/sites/{site_kind}/{site_id}",
    response_model=s.SiteRead,
    responses=WRITE_ERRORS,
    summary="Configure a telemetry site: name, own minimum return temperature, a premise's substation",
    tags=["telemetry"],
)
async def configure_site(
    site_kind: Literal["premise", "substation"],
    site_id: SiteIdPath,
    body: s.SiteConfigure,
    uow: Uow,
    principal: CanConfigureTelemetry,
) -> dict[str, Any]:
    if site_kind == "substation" and body.substation_id is not None:
        raise invalid_field("substation_id", "validation_failed", "Only a premise is served by a substation.")

    def present(row: TelemetrySite) -> dict[str, Any]:
        return s.SiteRead.model_validate(row, from_attributes=True).model_dump(mode="json")

    result = await execute(
        uow,
        lambda u: telemetry.configure_site(
            u,
            site_kind,
            site_id,
            name=body.name,
            min_return_c=body.min_return_c,
            substation_id=body.substation_id,
        ),
        present,
    )
    return result.body


def _site_read(view: telemetry.SiteView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    a, latest = view.assessment, view.latest
    return s.HeatingSiteRead(
        site_kind=latest.site.kind.value,
        site_id=latest.site.site_id,
        name=latest.site.name,
        supply_c=latest.supply_c,
        supply_at=latest.supply_at,
        return_c=latest.return_c,
        return_at=latest.return_at,
        difference_c=latest.difference_c,
        min_return_c=a.min_return_c,
        status=a.status.value,
        below_minimum=a.below_minimum,
        age_seconds=int(a.age.total_seconds()) if a.age is not None else None,
        needs_inspection=a.needs_inspection,
        sentence_zh=a.sentence_zh,
        sentence_en=a.sentence_en,
        detail_zh=a.detail_zh,
    ).model_dump(mode="json")


@router.get(
    "/accounts/{account_no}/heating-telemetry",
    response_model=s.HeatingTelemetryRead,
    responses=READ_ERRORS,
    summary="The latest supply/return temperatures of an account's premise (or its substation), whether "
    "the return water is under the minimum, and the sentence for the agent",
    tags=["telemetry"],
)
async def heating_telemetry(account_no: AccountPath, uow: Uow, principal: CanReadTelemetry) -> dict[str, Any]:
    ensure_account_access(principal, account_no)

    async def command(u: UnitOfWork) -> dict[str, Any]:
        view = await telemetry.heating_view(u.session, account_no, u.settings)
        primary = view.primary
        if primary is None:
            sentence = "暂未接入该户的供热温度监测数据，我们将安排核实。"
            return {
                "account_no": account_no,
                "status": "no_data",
                "below_minimum": None,
                "sentence_zh": sentence,
                "sentence_en": "No heating telemetry is connected for this account yet; we will check.",
                "detail_zh": "暂无温度数据",
                "premise": None,
                "substation": None,
            }
        a = primary.assessment
        return {
            "account_no": account_no,
            "status": a.status.value,
            "below_minimum": a.below_minimum,
            "sentence_zh": a.sentence_zh,
            "sentence_en": a.sentence_en,
            "detail_zh": a.detail_zh,
            "premise": _site_read(view.premise),
            "substation": _site_read(view.substation),
        }

    return (await execute(uow, command, lambda body: body)).body
