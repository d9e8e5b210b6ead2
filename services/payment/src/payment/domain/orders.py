"""Payment orders: what a payer intends to pay, and the state machine every channel drives. Pure rules.

States::

    created ──► pending ──► succeeded ──► refunded (refunds add up to the amount)
       │           ├──────► failed
       └───────────┴──────► closed  (cancelled by the payer, or expired unpaid)

- An order is ``created`` with its amount and channel, and becomes ``pending`` once the channel accepted it
  (the payer is at the provider's page, the bank has the request). Counter payments go straight from
  ``pending`` to ``succeeded``.
- ``succeeded``, ``failed`` and ``closed`` are final for the payment itself; a succeeded order can then be
  refunded, in parts, up to its amount (``refunded`` once fully refunded).
- A provider's success for an order that is already ``closed`` (the payer paid after the order expired)
  is not applied to the order: it opens a **refund case** (the money came in; a person decides).
- Applying the same provider outcome twice is not a transition: the caller dedupes by the provider's
  transaction id before it gets here, and :func:`apply_outcome` answers ``duplicate`` for a repeat.

Purposes: ``bill`` (one bill), ``dues`` (everything the account owes) and ``prepaid`` (a declared top-up).
Billing settles every payment oldest bill first, late fee first; the purpose decides what the payer may
pay, not where billing applies it: a bill or dues order may not exceed what the account owes (see
:func:`max_payable`); only a ``prepaid`` order may pay more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"
    REFUNDED = "refunded"


class Purpose(StrEnum):
    BILL = "bill"
    DUES = "dues"
    PREPAID = "prepaid"


FINAL = frozenset({OrderStatus.FAILED, OrderStatus.CLOSED, OrderStatus.REFUNDED})

_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.PENDING, OrderStatus.CLOSED}),
    OrderStatus.PENDING: frozenset({OrderStatus.SUCCEEDED, OrderStatus.FAILED, OrderStatus.CLOSED}),
    OrderStatus.SUCCEEDED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.FAILED: frozenset(),
    OrderStatus.CLOSED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"an order {current.value} cannot become {target.value}")
        self.current, self.target = current, target


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in _ALLOWED[current]:
        raise InvalidTransition(current, target)


class Outcome(StrEnum):
    """What a provider's verified notice does to an order."""

    APPLIED = "applied"  # the order moved (succeeded / failed / closed)
    DUPLICATE = "duplicate"  # the order is already where the notice would take it
    REFUND_CASE = "refund_case"  # money for an order that is closed or failed: a person decides
    AMOUNT_MISMATCH = "amount_mismatch"  # the provider confirms another amount: never applied
    CONFLICT = "conflict"  # e.g. a failure notice for an order already succeeded: recorded, not applied


def apply_outcome(
    current: OrderStatus, order_amount_fen: int, *, notice_status: str, notice_amount_fen: int
) -> tuple[Outcome, OrderStatus]:
    """The outcome of a provider's (verified) notice on an order, and the order's status after it. A
    refund notice is not a payment outcome: recorded as a conflict here (refunds are their own flow)."""
    if notice_status not in ("succeeded", "failed", "closed"):
        return Outcome.CONFLICT, current
    if notice_status == "succeeded":
        if notice_amount_fen != order_amount_fen:
            return Outcome.AMOUNT_MISMATCH, current
        if current in (OrderStatus.SUCCEEDED, OrderStatus.REFUNDED):
            return Outcome.DUPLICATE, current
        if current in (OrderStatus.CLOSED, OrderStatus.FAILED):
            return Outcome.REFUND_CASE, current
        return Outcome.APPLIED, OrderStatus.SUCCEEDED
    target = OrderStatus.FAILED if notice_status == "failed" else OrderStatus.CLOSED
    if current is target:
        return Outcome.DUPLICATE, current
    if current in (OrderStatus.CREATED, OrderStatus.PENDING):
        return Outcome.APPLIED, target
    return Outcome.CONFLICT, current


@dataclass(frozen=True)
class Dues:
    """What billing last reported an account owes (``billing.balance.changed``)."""

    owed_fen: int  # principal still owed on open bills
    late_fee_fen: int  # late fee accrued at ``as_of``
    as_of: datetime


#: The highest late-fee rate any utility configures (DOMAIN: 0.05 %–0.1 % a day): the bound of what may have
#: accrued since billing's last report.
MAX_DAILY_LATE_FEE_RATE = Decimal("0.001")


def max_payable(dues: Dues, now: datetime) -> int:
    """The most a bill or dues order may be for at ``now``: the principal owed, the late fee billing
    reported, and at most what the highest configured rate accrues on that principal since the report
    (rounded up). Billing puts any excess of a real payment into the prepaid balance; this bound keeps a
    payer from paying more than they owe without declaring a top-up."""
    seconds = max(0, int((now - dues.as_of).total_seconds()))
    accrual = math.ceil(Decimal(dues.owed_fen) * MAX_DAILY_LATE_FEE_RATE * seconds / 86_400)
    return dues.owed_fen + dues.late_fee_fen + min(accrual, dues.owed_fen)
