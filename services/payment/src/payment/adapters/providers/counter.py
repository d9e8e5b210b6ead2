"""Counter cash / POS payments taken by staff at the service counter: no provider, no signature. The
cashier's identity and the shift are the audit trail; shift totals are what the cashier hands over.

Rules (decisions):

* A :class:`CounterReceipt` is one confirmed payment: a positive integer amount of fen, ``cash`` or ``pos``
  (a POS payment carries the terminal's reference: it is what the acquirer's statement shows), an aware
  ``received_at``, the ``cashier_id`` (the staff member's audit identity) and the ``shift_id``.
* The receipt number is the dedupe key (``provider_txn_id``) of the notice it becomes
  (:meth:`CounterReceipt.to_notice`, provider ``counter``, no nonce, no signed timestamp).
* :func:`shift_totals` groups receipts by shift: count and sums (cash, POS, total) of the valid receipts;
  voided receipts are counted and summed apart (never in the hand-over total). A receipt number given twice
  is refused (``ValueError``): a receipt is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from payment.adapters.providers.base import CallbackNotice, require_aware

CounterMethod = Literal["cash", "pos"]


@dataclass(frozen=True)
class CounterReceipt:
    receipt_no: str
    order_no: str
    amount_fen: int
    method: CounterMethod
    cashier_id: str
    shift_id: str
    received_at: datetime
    pos_reference: str | None = None
    voided: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int) or self.amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        if self.method not in ("cash", "pos"):
            raise ValueError("method is cash or pos")
        if self.method == "pos" and not self.pos_reference:
            raise ValueError("a POS receipt needs the terminal's reference")
        for name in ("receipt_no", "order_no", "cashier_id", "shift_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        object.__setattr__(self, "received_at", require_aware(self.received_at))

    def to_notice(self) -> CallbackNotice:
        if self.voided:
            raise ValueError("a voided receipt pays nothing")
        return CallbackNotice(
            provider="counter",
            provider_txn_id=self.receipt_no,
            order_no=self.order_no,
            amount_fen=self.amount_fen,
            status="succeeded",
            paid_at=self.received_at,
            nonce=None,
            timestamp=None,
            raw={
                "receipt_no": self.receipt_no,
                "method": self.method,
                "cashier_id": self.cashier_id,
                "shift_id": self.shift_id,
                "pos_reference": self.pos_reference,
            },
        )


@dataclass(frozen=True)
class ShiftTotals:
    shift_id: str
    cashier_ids: tuple[str, ...]
    count: int
    cash_fen: int
    pos_fen: int
    total_fen: int
    voided_count: int
    voided_fen: int
    first_at: datetime | None
    last_at: datetime | None


def shift_totals(receipts: Iterable[CounterReceipt]) -> dict[str, ShiftTotals]:
    """Totals per shift (see the module docstring), keyed by ``shift_id``."""
    seen: set[str] = set()
    by_shift: dict[str, list[CounterReceipt]] = {}
    for receipt in receipts:
        if receipt.receipt_no in seen:
            raise ValueError(f"receipt {receipt.receipt_no} given twice")
        seen.add(receipt.receipt_no)
        by_shift.setdefault(receipt.shift_id, []).append(receipt)
    out = {}
    for shift_id, items in sorted(by_shift.items()):
        valid = [r for r in items if not r.voided]
        voided = [r for r in items if r.voided]
        cash = sum(r.amount_fen for r in valid if r.method == "cash")
        pos = sum(r.amount_fen for r in valid if r.method == "pos")
        times = [r.received_at for r in valid]
        out[shift_id] = ShiftTotals(
            shift_id=shift_id,
            cashier_ids=tuple(sorted({r.cashier_id for r in items})),
            count=len(valid),
            cash_fen=cash,
            pos_fen=pos,
            total_fen=cash + pos,
            voided_count=len(voided),
            voided_fen=sum(r.amount_fen for r in voided),
            first_at=min(times, default=None),
            last_at=max(times, default=None),
        )
    return out
