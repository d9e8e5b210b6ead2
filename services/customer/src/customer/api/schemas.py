"""Request and response models of the customer API (``XCreate`` / ``XUpdate`` / ``XRead``).

Responses carry personal data masked (``138****5678``, ``110***********002X``) unless a staff role asked
to reveal it, which is audited.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from customer.domain.accounts import AccountStatus, Utility
from customer.domain.identity import IdType
from customer.domain.tags import CustomerTag

T = TypeVar("T")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
AddressPart = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PhoneStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=20)]
AccountNo = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{6,20}$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------
# Requests


class ContactIn(StrictModel):
    phone: PhoneStr = Field(examples=["13845671234"])
    label: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = Field(
        default=None, examples=["本人"]
    )
    is_primary: bool = False


class CustomerCreate(StrictModel):
    kind: Literal["person", "organisation"] = "person"
    name: Name = Field(examples=["王秀英"])
    id_type: IdType = IdType.RESIDENT_ID
    id_number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=30)] = Field(
        examples=["230103195803150028"]
    )
    contacts: list[ContactIn] = Field(min_length=1, max_length=5)
    tags: list[CustomerTag] = Field(default_factory=list, max_length=10)


class CustomerUpdate(StrictModel):
    name: Name | None = None
    contacts: list[ContactIn] | None = Field(default=None, min_length=1, max_length=5)
    tags: list[CustomerTag] | None = Field(default=None, max_length=10)


class PremiseIn(StrictModel):
    district: AddressPart = Field(examples=["南岗区"])
    community: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        examples=["学府四道街小区"]
    )
    building: Short = Field(examples=["12"])
    unit: Short = Field(examples=["3"])
    room: Short = Field(examples=["502"])
    heated_area_m2: Decimal | None = Field(
        default=None, gt=0, lt=100000, decimal_places=2, examples=["89.50"]
    )
    property_cert_no: Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)] | None = Field(
        default=None, examples=["黑(2019)哈尔滨市不动产权第0123456号"]
    )
    latitude: Decimal | None = Field(default=None, ge=-90, le=90, decimal_places=6)
    longitude: Decimal | None = Field(default=None, ge=-180, le=180, decimal_places=6)


class PremiseUpdate(StrictModel):
    heated_area_m2: Decimal | None = Field(default=None, gt=0, lt=100000, decimal_places=2)
    property_cert_no: Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)] | None = None
    latitude: Decimal | None = Field(default=None, ge=-90, le=90, decimal_places=6)
    longitude: Decimal | None = Field(default=None, ge=-180, le=180, decimal_places=6)


class MeterIn(StrictModel):
    serial_no: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z\-]{4,40}$")] = (
        Field(examples=["HM2024-0012345"])
    )
    kind: Literal["heat", "gas", "electricity"]
    multiplier: Decimal = Field(default=Decimal("1"), gt=0, le=10000, decimal_places=3)
    reading_mode: Literal["remote", "manual"] = "manual"
    installed_on: date
    initial_reading: Decimal = Field(default=Decimal("0"), ge=0, lt=Decimal("1e11"), decimal_places=3)


class AccountOpen(StrictModel):
    customer_id: uuid.UUID | None = Field(
        default=None, description="An existing customer, or give `customer`."
    )
    customer: CustomerCreate | None = Field(default=None, description="Register the holder in the same step.")
    premise: PremiseIn
    utility: Utility
    customer_class: Literal["residential", "non_residential"] = "residential"
    household_size: int = Field(default=3, ge=1, le=20)
    opened_on: date | None = Field(
        default=None, description="Business date (Asia/Shanghai); today if absent."
    )
    meters: list[MeterIn] = Field(default_factory=list, max_length=3)

    @model_validator(mode="after")
    def _one_holder(self) -> AccountOpen:
        if (self.customer_id is None) == (self.customer is None):
            raise ValueError("give exactly one of customer_id and customer")
        return self


class AccountUpdate(StrictModel):
    customer_class: Literal["residential", "non_residential"] | None = None
    household_size: int | None = Field(default=None, ge=1, le=20)


class TransferCreate(StrictModel):
    to_customer_id: uuid.UUID | None = None
    to_customer: CustomerCreate | None = None
    effective_on: date | None = None
    reason: Reason | None = Field(default=None, examples=["房屋买卖"])
    document_refs: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1,
        max_length=10,
        description="References of the documents seen (deed, ID copies).",
        examples=[["dms://transfer/2026/000123"]],
    )

    @model_validator(mode="after")
    def _one_holder(self) -> TransferCreate:
        if (self.to_customer_id is None) == (self.to_customer is None):
            raise ValueError("give exactly one of to_customer_id and to_customer")
        return self


class SuspensionCreate(StrictModel):
    reason: Reason = Field(examples=["长期无人居住，申请报停"])
    since: date | None = None


class ResumptionCreate(StrictModel):
    on: date | None = None


class ClosureCreate(StrictModel):
    final_reading: Decimal | None = Field(default=None, ge=0, lt=Decimal("1e11"), decimal_places=3)
    reason: Reason | None = None
    closed_on: date | None = None


class MeterReplacementCreate(StrictModel):
    removed_on: date
    final_reading: Decimal = Field(ge=0, lt=Decimal("1e11"), decimal_places=3)
    new_meter: MeterIn


class MergeCreate(StrictModel):
    source_customer_id: uuid.UUID = Field(description="The duplicate that is merged into this customer.")


class DuplicateResolution(StrictModel):
    status: Literal["dismissed"]


# ---------------------------------------------------------------------------------------------------
# Responses


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ContactRead(ReadModel):
    id: uuid.UUID
    kind: str
    label: str | None
    phone: str = Field(description="Masked unless revealed.", examples=["138****1234"])
    is_primary: bool


class CustomerRead(ReadModel):
    id: uuid.UUID
    customer_no: str = Field(examples=["C000000001"])
    kind: str
    name: str
    id_type: str | None
    id_number: str | None = Field(description="Masked unless revealed.", examples=["230***********0028"])
    status: str
    merged_into_id: uuid.UUID | None
    contacts: list[ContactRead]
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


class PremiseRead(ReadModel):
    id: uuid.UUID
    district: str
    community: str
    building: str
    unit: str
    room: str
    address: str = Field(examples=["南岗区学府四道街小区12栋3单元502室"])
    heated_area_m2: Decimal | None
    property_cert_no: str | None
    latitude: Decimal | None
    longitude: Decimal | None


class MeterRead(ReadModel):
    id: uuid.UUID
    serial_no: str
    kind: str
    multiplier: Decimal
    reading_mode: str
    installed_on: date
    initial_reading: Decimal
    removed_on: date | None
    final_reading: Decimal | None
    replaced_by_id: uuid.UUID | None
    status: str


class AccountRead(ReadModel):
    account_no: str = Field(examples=["10000000017"])
    utility: Utility
    status: AccountStatus
    status_reason: str | None
    customer_id: uuid.UUID
    customer_class: str
    household_size: int
    opened_on: date
    suspended_since: date | None
    closed_on: date | None
    premise: PremiseRead
    meters: list[MeterRead]
    version: int


class CustomerSummary(BaseModel):
    id: uuid.UUID
    customer_no: str
    kind: str
    name: str
    id_number: str | None
    phone: str | None
    status: str
    account_nos: list[str]
    addresses: list[str]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Money(BaseModel):
    amount_fen: int
    currency: Literal["CNY"] = "CNY"


class AccountServices(BaseModel):
    """What other services reported about this account (local projections of their events)."""

    balance: dict[str, Any] | None = Field(description="Latest receivable/prepaid balance from billing.")
    latest_bills: list[dict[str, Any]]
    recent_payments: list[dict[str, Any]]
    open_work_orders: list[dict[str, Any]]
    last_inspection: dict[str, Any] | None
    as_of: datetime | None = Field(description="Time of the newest event reflected here.")


class AccountView(BaseModel):
    account: AccountRead
    services: AccountServices


class CustomerView(BaseModel):
    customer: CustomerRead
    accounts: list[AccountView]
    open_duplicate_flags: int
    generated_at: datetime


class DuplicateFlagRead(ReadModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    duplicate_of_id: uuid.UUID
    reason: str
    status: str
    created_at: datetime


class AuditEntryRead(ReadModel):
    id: uuid.UUID
    occurred_at: datetime
    actor: str
    actor_kind: str
    on_behalf_of: str | None
    channel: str | None
    action: str
    entity_type: str
    entity_id: str
    changes: dict[str, Any]
    request_id: str | None
