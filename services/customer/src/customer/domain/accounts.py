"""Accounts (户号) and their lifecycle: pure rules, no I/O.

States and the actions that move between them::

    active --suspend--> suspended --resume--> active
    active | suspended --close--> closed          (final reading + no known outstanding balance)
    active | suspended --transfer--> same state, new holder (过户)

Account numbers the platform issues are 11 digits: a utility digit (1 heating, 2 gas, 3 electricity),
a 9-digit sequence and a Luhn check digit, so a digit misheard on the phone is caught before a lookup.
Numbers migrated from a legacy system keep their own format (6 to 20 letters and digits).
"""

from __future__ import annotations

import re
from enum import StrEnum


class Utility(StrEnum):
    HEATING = "heating"
    GAS = "gas"
    ELECTRICITY = "electricity"


UTILITY_DIGIT = {Utility.HEATING: "1", Utility.GAS: "2", Utility.ELECTRICITY: "3"}


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # e.g. heating 报停: pays a share of the basic charge
    CLOSED = "closed"  # 销户


class LifecycleError(ValueError):
    """An action the account's state does not allow; ``code`` is the stable API error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


ACCOUNT_NO_RE = re.compile(r"^[0-9A-Z]{6,20}$")


def luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def issue_account_no(utility: Utility, sequence: int) -> str:
    if not 0 < sequence < 10**9:
        raise ValueError("account sequence out of range")
    body = f"{UTILITY_DIGIT[utility]}{sequence:09d}"
    return body + luhn_check_digit(body)


def is_valid_issued_account_no(account_no: str) -> bool:
    return (
        bool(re.fullmatch(r"[123]\d{10}", account_no)) and luhn_check_digit(account_no[:-1]) == account_no[-1]
    )


def check_suspend(status: AccountStatus) -> None:
    if status is not AccountStatus.ACTIVE:
        raise LifecycleError(
            f"Only an active account can be suspended (it is {status}).", "account_not_active"
        )


def check_resume(status: AccountStatus) -> None:
    if status is not AccountStatus.SUSPENDED:
        raise LifecycleError(
            f"Only a suspended account can be resumed (it is {status}).", "account_not_suspended"
        )


def check_transfer(status: AccountStatus, outstanding_fen: int | None, *, same_holder: bool) -> None:
    if status is AccountStatus.CLOSED:
        raise LifecycleError("A closed account cannot be transferred.", "account_closed")
    if same_holder:
        raise LifecycleError("The account already belongs to this customer.", "transfer_to_same_customer")
    if outstanding_fen is not None and outstanding_fen > 0:
        raise LifecycleError(
            "The account has an outstanding balance; settle it before the transfer (过户前需结清欠费).",
            "outstanding_balance",
        )


def check_close(status: AccountStatus, outstanding_fen: int | None) -> None:
    if status is AccountStatus.CLOSED:
        raise LifecycleError("The account is already closed.", "account_closed")
    if outstanding_fen is not None and outstanding_fen > 0:
        raise LifecycleError(
            "The account has an outstanding balance; settle it before closing (销户前需结清欠费).",
            "outstanding_balance",
        )


def check_can_change(status: AccountStatus) -> None:
    if status is AccountStatus.CLOSED:
        raise LifecycleError("A closed account cannot be changed.", "account_closed")
