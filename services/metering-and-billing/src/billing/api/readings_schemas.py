"""Request and response models of meter readings and heating telemetry. Readings and volumes are decimal
strings (never floats); temperatures are °C decimal strings; instants RFC 3339 with offset."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

AccountNo = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{6,20}$", examples=["20000000017"])]
Serial = Annotated[str, Field(pattern=r"^[0-9A-Za-z\-]{4,40}$", examples=["GM2024-0012345"])]
RegisterValue = Annotated[Decimal, Field(ge=0, lt=Decimal("1e11"), decimal_places=3, examples=["1234.567"])]
Temperature = Annotated[Decimal, Field(ge=-100, le=999, decimal_places=2, examples=["38.5"])]
ReadingStatus = Literal["accepted", "pending_review", "rejected"]


class ReadingCreate(BaseModel):
    """A meter reader's reading (抄表员; source ``manual``) or a resident's own (自报; source
    ``self_reported``, ``photo_ref`` required). The source and who entered it come from the token."""

    model_config = ConfigDict(extra="forbid")

    meter_serial: Serial | None = Field(None, description="default: the account's one installed meter")
    read_at: AwareDatetime = Field(examples=["2026-11-30T09:30:00+08:00"])
    value: RegisterValue
    photo_ref: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="the stored photo of the register (residents: required)",
    )
    external_id: str | None = Field(None, min_length=1, max_length=200, description="the sender's own id")


class ReadingFlagRead(BaseModel):
    code: str = Field(examples=["value_decreased"])
    needs_review: bool
    message_zh: str = Field(examples=["本次读数 980 小于上次读数 1200，且不符合翻表或换表特征，疑似抄错。"])
    message_en: str


class TrueUpRead(BaseModel):
    estimate_reading_ids: list[uuid.UUID]
    actual_consumption: Decimal
    estimated_consumption: Decimal
    correction: Decimal = Field(description="actual − estimated (register units): > 0 debit, < 0 credit")
    correction_volume: Decimal = Field(description="the correction × multiplier: what the next bill uses")
    direction: Literal["debit", "credit", "none"]
    description_zh: str = Field(examples=["估抄多退少补：实际用量 80，已按估抄计费 50，补收 30。"])


class ReadingRead(BaseModel):
    id: uuid.UUID
    account_no: str
    meter_serial: str
    read_at: dt.datetime
    value: Decimal
    source: Literal["manual", "remote_batch", "iot_gateway", "self_reported", "estimated", "installation"]
    source_name_zh: str = Field(examples=["人工抄表"])
    entered_by: str
    photo_ref: str | None
    external_id: str | None
    status: ReadingStatus
    flags: list[ReadingFlagRead]
    kind: str | None = Field(
        description="how the volume was found: base, normal, rollover, replacement, estimate, true_up, "
        "reviewed (pending readings: the domain's kind, or null)"
    )
    consumption: Decimal | None = Field(description="register units since the previous billable reading")
    volume: Decimal | None = Field(
        description="billable volume since the previous billable reading (× multiplier)"
    )
    previous_reading_id: uuid.UUID | None
    estimate: dict[str, Any] | None = Field(
        description="estimates: base_reading_id, method, daily_rate, days"
    )
    true_up: TrueUpRead | None = None
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    review_note: str | None
    created_at: dt.datetime


class ReadingList(BaseModel):
    items: list[ReadingRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class BatchReading(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(
        min_length=1, max_length=200, description="unique per reading: re-sends dedupe on it"
    )
    account_no: AccountNo | None = None
    meter_serial: Serial | None = None
    read_at: AwareDatetime
    value: RegisterValue

    @model_validator(mode="after")
    def _names_the_meter(self) -> Self:
        if self.account_no is None and self.meter_serial is None:
            raise ValueError("give account_no or meter_serial (or both)")
        return self


class BatchCreate(BaseModel):
    """A remote-meter head end's upload (远传抄表): up to ``readings_batch_max`` (5,000) readings, one
    transaction."""

    model_config = ConfigDict(extra="forbid")

    batch_id: str | None = Field(None, max_length=100, description="the sender's batch reference, echoed")
    readings: list[BatchReading] = Field(min_length=1, max_length=20_000)


class BatchItemResult(BaseModel):
    index: int
    external_id: str | None
    result: Literal["accepted", "flagged", "rejected", "duplicate"]
    reading_id: uuid.UUID | None = None
    status: ReadingStatus | None = None
    flags: list[str] = Field(default_factory=list, description="flag codes")
    code: str | None = Field(None, description="why rejected", examples=["meter_not_found"])
    message: str | None = None


class BatchRead(BaseModel):
    batch_id: str | None
    counts: dict[str, int] = Field(examples=[{"accepted": 4990, "flagged": 8, "rejected": 2, "duplicate": 0}])
    items: list[BatchItemResult]


class ReadingApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=500, examples=["已电话核实，用户春节返乡"])
    consumption: RegisterValue | None = Field(
        None,
        description="register units since the previous billable reading; required when the domain cannot "
        "determine it (value decreased, unrecorded meter change)",
    )


class ReadingReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, examples=["照片读数与上报不符"])


class EstimateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    read_at: AwareDatetime | None = Field(None, description="default: now")


class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_kind: Literal["premise", "substation"]
    site_id: str = Field(min_length=1, max_length=80, examples=["HRB-NG-012"])
    measured_at: AwareDatetime
    supply_c: Temperature | None = None
    return_c: Temperature | None = None
    device_id: str = Field("", max_length=80)


class SamplesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: list[SampleIn] = Field(min_length=1, max_length=20_000)


class SampleResultRead(BaseModel):
    index: int
    result: Literal["accepted", "duplicate", "rejected"]
    code: str | None = Field(None, examples=["implausible_temperature"])
    message: str | None = None


class SamplesRead(BaseModel):
    counts: dict[str, int]
    items: list[SampleResultRead]


class SiteConfigure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, examples=["阳光小区换热站"])
    min_return_c: Temperature | None = Field(None, description="null: the service default (45 °C)")
    substation_id: str | None = Field(None, min_length=1, max_length=80, description="premises only")


class SiteRead(BaseModel):
    site_kind: str
    site_id: str
    name: str
    min_return_c: Decimal | None
    substation_id: str | None


class HeatingSiteRead(BaseModel):
    site_kind: str
    site_id: str
    name: str
    supply_c: Decimal | None
    supply_at: dt.datetime | None
    return_c: Decimal | None
    return_at: dt.datetime | None
    difference_c: Decimal | None
    min_return_c: Decimal
    status: Literal["ok", "below_minimum", "stale", "no_data"]
    below_minimum: bool | None
    age_seconds: int | None
    needs_inspection: bool
    sentence_zh: str = Field(examples=["您家的回水温度为 38°C，低于 45°C 的标准，我们将安排检查。"])
    sentence_en: str
    detail_zh: str


class HeatingTelemetryRead(BaseModel):
    account_no: str
    status: Literal["ok", "below_minimum", "stale", "no_data"]
    below_minimum: bool | None
    sentence_zh: str = Field(description="what the agent reads out (the premise's, else its substation's)")
    sentence_en: str
    detail_zh: str
    premise: HeatingSiteRead | None
    substation: HeatingSiteRead | None
