"""The customer API's stable error codes (documented in the README), as problem types."""

from __future__ import annotations

from utilis_shared.errors import Conflict, NotFound, Problem, UnprocessableEntity


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class AccountNotFound(NotFound):
    code = "account_not_found"


class PremiseNotFound(NotFound):
    code = "premise_not_found"


class MeterNotFound(NotFound):
    code = "meter_not_found"


class DuplicateFlagNotFound(NotFound):
    code = "duplicate_flag_not_found"


def invalid_field(field: str, code: str, message: str) -> Problem:
    return UnprocessableEntity(
        message, code=code, errors=[{"field": field, "message": message, "type": code}]
    )


def conflict(code: str, message: str, **extra: object) -> Problem:
    return Conflict(message, code=code, **extra)
