"""Bank withholding (代扣) rules. Pure: no I/O.

* **Mandate** (代扣协议): an account authorises one bank to debit one bank account. The account number is
  12 to 30 digits (spaces and dashes ignored); it is stored encrypted, indexed blind, and shown masked:
  at most the first 6 and the last 4 digits (:func:`mask_bank_account`, the form the request file
  carries: ``adapters.providers.withholding`` refuses anything else).
* **Batch** (one per bank and business day): its number is derived from both (:func:`batch_no`), so
  asking for the same bank and day again finds the same batch. It takes every account with an active
  mandate at that bank whose dues (what billing last reported owed, late fee included) are positive, that
  has no withholding order still pending (a previous batch's line the bank has not answered) and no
  payment that succeeded after billing's report (the report is stale until billing's next one: debiting
  it again would take the money twice), one ``dues`` order per account for exactly that amount
  (:func:`select_lines`).
* **Result**: the bank's reason codes for failed debits, with the text a resident is shown
  (:func:`failure_text`); unknown codes are kept as the bank sent them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

CHANNEL = "withholding"
PROVIDER_PREFIX = "withholding:"

_BANK_CODE = re.compile(r"[a-z0-9]{2,20}")
_ACCOUNT_SEPARATORS = re.compile(r"[\s\-]")
_BANK_ACCOUNT = re.compile(r"[0-9]{12,30}")

#: Reason codes of failed debits (the simulator sends the first two), and what a resident reads.
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
FAILURE_TEXT = {
    INSUFFICIENT_FUNDS: "银行账户余额不足，代扣未成功",
    ACCOUNT_CLOSED: "银行账户已销户，代扣未成功，请重新签约",
    "ACCOUNT_FROZEN": "银行账户已冻结，代扣未成功",
    "MANDATE_INVALID": "代扣协议无效，请重新签约",
}


class InvalidBankAccount(ValueError):
    pass


def provider_for(bank_code: str) -> str:
    return f"{PROVIDER_PREFIX}{bank_code}"


def api_provider(provider: str) -> str:
    """The provider whose API serves an order's refunds (and sends their notices): for a withholding debit
    its bank's direct-connect API (``withholding:<code>`` -> ``bank:<code>``); any other order, its own."""
    if provider.startswith(PROVIDER_PREFIX):
        return f"bank:{provider.removeprefix(PROVIDER_PREFIX)}"
    return provider


def is_bank_code(value: str) -> bool:
    return bool(_BANK_CODE.fullmatch(value))


def normalise_bank_account(value: str) -> str:
    """Digits only (spaces and dashes dropped); :class:`InvalidBankAccount` unless 12 to 30 digits."""
    digits = _ACCOUNT_SEPARATORS.sub("", value)
    if not _BANK_ACCOUNT.fullmatch(digits):
        raise InvalidBankAccount("a bank account number is 12 to 30 digits")
    return digits


def mask_bank_account(value: str) -> str:
    """``6222021234567890123`` -> ``622202*********0123``: the first 6 and the last 4 digits, never more
    (a 12-digit number still hides 2)."""
    digits = normalise_bank_account(value)
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def batch_no(bank_code: str, day: date) -> str:
    """``W`` + the business day + the bank code upper-cased: ``W20261124ICBC`` (stable per bank and day)."""
    if not is_bank_code(bank_code):
        raise ValueError(f"not a bank code: {bank_code!r}")
    return f"W{day:%Y%m%d}{bank_code.upper()}"


def failure_text(code: str) -> str:
    return FAILURE_TEXT.get(code, f"银行代扣未成功（{code}）")


@dataclass(frozen=True)
class Candidate:
    """An account with an active mandate at the batch's bank, and what billing last reported it owes."""

    account_no: str
    mandate_id: object
    bank_account_masked: str
    owed_fen: int
    late_fee_fen: int
    has_pending_withholding: bool
    paid_since_report: bool


@dataclass(frozen=True)
class Line:
    account_no: str
    mandate_id: object
    bank_account_masked: str
    amount_fen: int


def select_lines(candidates: Iterable[Candidate]) -> list[Line]:
    """The batch's lines, in account order: positive dues, nothing pending at a bank, nothing paid since
    billing's report."""
    lines = []
    for c in sorted(candidates, key=lambda c: c.account_no):
        amount = c.owed_fen + c.late_fee_fen
        if amount <= 0 or c.has_pending_withholding or c.paid_since_report:
            continue
        lines.append(Line(c.account_no, c.mandate_id, c.bank_account_masked, amount))
    return lines
