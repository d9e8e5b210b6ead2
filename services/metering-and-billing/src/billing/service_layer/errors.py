"""The metering-and-billing API's stable error codes (documented in the README), as problem types."""

from __future__ import annotations

from typing import Any

from utilis_shared.errors import Conflict, NotFound, Problem, UnprocessableEntity


class TariffPlanNotFound(NotFound):
    code = "tariff_plan_not_found"


class AccountNotFound(NotFound):
    code = "account_not_found"


def invalid_field(field: str, code: str, message: str, **extra: Any) -> Problem:
    return UnprocessableEntity(
        message, code=code, errors=[{"field": field, "message": message, "type": code}], **extra
    )


def conflict(code: str, message: str, **extra: Any) -> Problem:
    return Conflict(message, code=code, **extra)
