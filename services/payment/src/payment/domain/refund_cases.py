"""Refund cases: money a provider confirmed that no open order can take (a success for an order already
closed or failed, or a confirmed amount that differs from the order's). Pure rules.

States::

    open ──► refunding ──► refunded   (the provider's verified refund notice)
      │          └───────► open       (the refund was rejected by the approver, or refused by the provider)
      └────► applied                  (the money became a prepaid top-up of the order's account)

- **Refund** (money leaves): a billing clerk or supervisor asks for it; it is a refund request of the
  existing flow (``service_layer/refunds.py``) for the case's whole amount, approved by a
  ``billing_supervisor`` who is not the requester (four eyes), then sent to the provider, and completed by
  the provider's refund notice. Billing never settled this money, so nothing is reversed there.
- **Top-up** (the money stays with the utility): a billing clerk or supervisor applies it; a ``prepaid``
  order of the case's amount, already ``succeeded`` with the provider's transaction id and success time, is
  recorded for the order's account, and its ``payment.payment.succeeded`` is what billing settles into the
  prepaid balance, as for any top-up. Nothing leaves, so one person decides.
"""

from __future__ import annotations

from enum import StrEnum


class CaseStatus(StrEnum):
    OPEN = "open"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    APPLIED = "applied"
    DISMISSED = "dismissed"


class Resolution(StrEnum):
    REFUND = "refund"  # pay the money back to the payer through the provider
    TOP_UP = "top_up"  # apply it to the account's prepaid balance
    DISMISS = "dismiss"  # nothing to do here (e.g. the provider reversed it itself): a supervisor's call


_ALLOWED: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.REFUNDING, CaseStatus.APPLIED, CaseStatus.DISMISSED}),
    CaseStatus.REFUNDING: frozenset({CaseStatus.REFUNDED, CaseStatus.OPEN}),
    CaseStatus.REFUNDED: frozenset(),
    CaseStatus.APPLIED: frozenset(),
    CaseStatus.DISMISSED: frozenset(),
}


def can_move(current: CaseStatus, target: CaseStatus) -> bool:
    return target in _ALLOWED[current]


def target_of(resolution: Resolution) -> CaseStatus:
    """Where a resolution takes an open case."""
    return {
        Resolution.REFUND: CaseStatus.REFUNDING,
        Resolution.TOP_UP: CaseStatus.APPLIED,
        Resolution.DISMISS: CaseStatus.DISMISSED,
    }[resolution]
