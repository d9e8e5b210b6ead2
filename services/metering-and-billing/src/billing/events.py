"""The events the metering-and-billing service emits (topic ``billing.events``) and their payload schemas.

Service ``metering-and-billing``, event types ``billing.*`` (the agreed exception, docs/adding-a-service.md).
Tariff events are keyed by the plan code; account-scoped events (bills, balances: later) by account number.
The JSON Schemas are written to ``services/metering-and-billing/events/`` by
``metering-and-billing events-schemas``; a unit test fails when they drift.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel

from utilis_shared.events import EventCatalog

catalog = EventCatalog("metering-and-billing", type_prefix="billing")


@catalog.register("billing.tariff.published")
class TariffPublished(BaseModel):
    """A tariff plan version was published. ``plan`` is the plan document of this version (the domain's
    ``TariffPlan`` with exactly this one version). When it supersedes a version, that version's new
    ``effective_to`` (the day before this one's ``effective_from``) is in ``closed_version``."""

    code: str
    version: int
    name: str
    utility: str
    customer_class: str
    effective_from: date
    effective_to: date | None
    closed_version: int | None
    closed_version_effective_to: date | None
    published_by: str
    plan: dict[str, Any]
