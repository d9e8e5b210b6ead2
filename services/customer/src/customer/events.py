"""The events the customer service emits (topic ``customer.events``) and their payload schemas.

Account-scoped events are keyed by account number; customer-scoped ones by customer id. Personal data
never travels in clear: phones and ID numbers appear masked; a consumer that must reach the customer
(notifications) gets the phone as ciphertext (``phone_enc``, same key ring as this service).
The JSON Schemas are written to ``services/customer/events/`` by ``customer events-schemas``.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from pydantic import BaseModel

from utilis_shared.events import EventCatalog

catalog = EventCatalog("customer")


class ContactRef(BaseModel):
    kind: str
    label: str | None
    phone_masked: str
    phone_enc: str
    is_primary: bool


class PremiseRef(BaseModel):
    premise_id: uuid.UUID
    district: str
    community: str
    building: str
    unit: str
    room: str
    address: str
    heated_area_m2: Decimal | None
    latitude: Decimal | None
    longitude: Decimal | None


class MeterRef(BaseModel):
    meter_id: uuid.UUID
    serial_no: str
    kind: str
    multiplier: Decimal
    reading_mode: str
    installed_on: date
    initial_reading: Decimal


@catalog.register("customer.customer.registered")
class CustomerRegistered(BaseModel):
    customer_id: uuid.UUID
    customer_no: str
    kind: str
    name: str
    id_type: str | None
    id_number_masked: str | None
    contacts: list[ContactRef]
    tags: list[str]


@catalog.register("customer.customer.updated")
class CustomerUpdated(BaseModel):
    customer_id: uuid.UUID
    customer_no: str
    changed_fields: list[str]
    name: str
    contacts: list[ContactRef]
    tags: list[str]


@catalog.register("customer.customer.merged")
class CustomersMerged(BaseModel):
    customer_id: uuid.UUID  # the survivor
    merged_customer_id: uuid.UUID
    moved_account_nos: list[str]


@catalog.register("customer.account.opened")
class AccountOpened(BaseModel):
    account_no: str
    customer_id: uuid.UUID
    customer_no: str
    utility: str
    customer_class: str
    household_size: int
    opened_on: date
    premise: PremiseRef
    meters: list[MeterRef]
    contacts: list[ContactRef]


@catalog.register("customer.account.transferred")
class AccountTransferred(BaseModel):
    account_no: str
    from_customer_id: uuid.UUID
    to_customer_id: uuid.UUID
    to_customer_no: str
    effective_on: date
    reason: str | None
    document_refs: list[str]
    contacts: list[ContactRef]


@catalog.register("customer.account.suspended")
class AccountSuspended(BaseModel):
    account_no: str
    utility: str
    suspended_since: date
    reason: str


@catalog.register("customer.account.resumed")
class AccountResumed(BaseModel):
    account_no: str
    utility: str
    resumed_on: date


@catalog.register("customer.account.closed")
class AccountClosed(BaseModel):
    account_no: str
    utility: str
    closed_on: date
    final_reading: Decimal | None
    reason: str | None


@catalog.register("customer.account.updated")
class AccountUpdated(BaseModel):
    account_no: str
    changed_fields: list[str]
    customer_class: str
    household_size: int


@catalog.register("customer.premise.updated")
class PremiseUpdated(BaseModel):
    account_nos: list[str]
    premise: PremiseRef
    changed_fields: list[str]


@catalog.register("customer.meter.installed")
class MeterInstalled(BaseModel):
    account_no: str
    meter: MeterRef


@catalog.register("customer.meter.replaced")
class MeterReplaced(BaseModel):
    account_no: str
    old_meter_id: uuid.UUID
    old_serial_no: str
    removed_on: date
    final_reading: Decimal
    new_meter: MeterRef
