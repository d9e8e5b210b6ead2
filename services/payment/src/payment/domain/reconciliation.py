"""Reconciliation (对账): one provider's daily statement ↔ the payments and refunds recorded here ↔ the
settlements billing reported. Every mismatch becomes one :class:`Case`. Pure rules: no I/O, no clock.

Conventions (decisions, documented here once):

* **Money** is integer fen; statement lines and refunds carry magnitudes (a refund of 2 yuan is 200).
  ``expected_fen`` in a case is what *this service* recorded, ``actual_fen`` what the other side (the
  provider, or billing) says; ``None`` means that side has no record at all.
* **The day** is an Asia/Shanghai business day ``[day 00:00, day+1 00:00)``. A payment belongs to the day
  of its ``succeeded_at`` (which must be the provider's own success time from its notice or query, not
  the time our callback arrived); a refund to the day of its ``refunded_at``.
* **Inputs.** ``statement``: the provider's parsed lines (:mod:`payment.domain.statements`), all of that
  provider. ``payments``: every payment fact the service holds that may be concerned: at least every
  payment of this provider that succeeded within the day widened by the cut-over on both sides, plus every
  order the statement names (by txn id or order number) whatever its status, so that a line can be told
  apart from a missing one. ``settlements``: what billing recorded (``billing.settlement.recorded``) for
  those payments, whenever applied; ``payment_id`` is the order number; a fact stands for ``count``
  settlements of ``amount_fen`` each (a payment settled twice is ``count=2`` or two facts; both add up).
  ``refunds``: the refunds recorded here for those payments. Facts are refused (``ValueError``) if two
  share an order number, a provider txn id or a refund number, or if a statement line is another
  provider's. Run reconciliation once billing's consumer has caught up, or recent payments show as
  ``not_settled``.
* **Matching payments.** A statement payment line matches the payment with its provider txn id; failing
  that (we never learnt the txn id, e.g. the callback never came) the payment with its order number, if
  that payment is not matched yet. Txn-id matches are made first for all lines, then order-number matches
  in statement order, so the result does not depend on the order of the lines. A payment matches at most
  one line.
* **Matching refunds.** A refund line matches the refund here with its refund number (Alipay's
  退款批次号/请求号); failing that (WeChat's file carries none) an unmatched refund of the same order (the
  line's order number, or the order whose txn id the line carries), preferring one of the same amount,
  then one that succeeded here, then the earliest, then the lowest refund number.
* **Cases, exactly one per mismatch** (a matched pair is one mismatch however many of its fields differ;
  the detail names them all):

  ==================== ========= =================================================================
  kind                 against   when
  ==================== ========= =================================================================
  missing_here         provider  a statement line matches nothing here
  missing_at_provider  provider  a payment (refund) that succeeded here on the day is on no line
  status_differs       provider  a line matches a payment that did not succeed here (pending, failed,
                                 closed …) or a refund that did not succeed here; or the matched
                                 payment's txn id (refund's number) here differs from the line's
  amount_differs       provider  a matched pair's amounts differ
  not_settled          billing   a payment that succeeded here on the day has no settlement
  settled_twice        billing   it has two or more (``actual_fen`` = the total settled)
  amount_differs       billing   it has one, of another amount
  status_differs       billing   billing settled a payment that did not succeed here
  missing_here         billing   billing settled a payment id unknown here
  ==================== ========= =================================================================

  Billing cases are raised on the payment's own day only (a payment is checked against billing once,
  whichever statement lists it). Cases are sorted by (against, order number, payment before refund,
  kind, refund number, line), so the same facts give the same list whatever their input order.
* **Cut-over (跨日).** A provider may book a payment that succeeded here at 23:59:59 on the next day's
  statement. A payment (or refund) that succeeded here within the last ``cutover`` of the day (default
  :data:`DEFAULT_CUTOVER`, 10 minutes; ``0`` turns the rule off) and is on no line of the day's statement
  is not a case: it is returned in ``pending_cutover`` (``pending_cutover_refunds``) and must be passed to
  the next day's reconciliation in ``carried`` (:attr:`Reconciliation.carry`). There it is expected on that
  day's statement like the day's own payments, and if that statement lacks it too it becomes a
  ``missing_at_provider`` case then (it is never carried twice). The other way round, a statement line
  that matches a payment dated *after* the day (our clock says tomorrow, the provider booked it today) is
  matched without a case and listed in ``matched_ahead``; the next day does not expect it again.
* **Totals** per channel (the provider) for the day: the statement's (counts and fen of payment and refund
  lines, the sum of fees) beside what was recorded here as succeeded on the day (no fees here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from payment.domain.orders import OrderStatus
from payment.domain.statements import StatementKind, StatementLine, fen_to_yuan
from utilis_shared.timeutil import BUSINESS_TZ

#: The default cut-over window: payments of the day's last 10 minutes may be on the next day's statement.
DEFAULT_CUTOVER = timedelta(minutes=10)

#: Statuses of a payment that succeeded here (a refunded payment succeeded first).
SUCCEEDED = frozenset({OrderStatus.SUCCEEDED, OrderStatus.REFUNDED})

_STATUS_ZH = {
    "created": "已创建",
    "pending": "支付中",
    "succeeded": "支付成功",
    "failed": "支付失败",
    "closed": "已关闭",
    "refunded": "已退款",
}


class CaseKind(StrEnum):
    MISSING_HERE = "missing_here"
    MISSING_AT_PROVIDER = "missing_at_provider"
    AMOUNT_DIFFERS = "amount_differs"
    SETTLED_TWICE = "settled_twice"
    NOT_SETTLED = "not_settled"
    STATUS_DIFFERS = "status_differs"


class Against(StrEnum):
    """Which side disagrees with this service: the provider's statement, or billing's settlements."""

    PROVIDER = "provider"
    BILLING = "billing"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_KIND_RANK = {k: i for i, k in enumerate(CaseKind)}
_AGAINST_RANK = {Against.PROVIDER: 0, Against.BILLING: 1}
_SUBJECT_RANK = {StatementKind.PAYMENT: 0, StatementKind.REFUND: 1}


def _aware_utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _positive_fen(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer amount of fen, got {value!r}")


# -------------------------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class PaymentFact:
    """A payment order as this service recorded it. ``succeeded_at`` (the provider's success time) is
    required when the status is succeeded or refunded."""

    order_no: str
    provider_txn_id: str | None
    amount_fen: int
    status: OrderStatus
    channel: str
    succeeded_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", OrderStatus(self.status))
        _positive_fen(self.amount_fen, "amount_fen")
        object.__setattr__(self, "succeeded_at", _aware_utc(self.succeeded_at, "succeeded_at"))
        if self.status in SUCCEEDED and self.succeeded_at is None:
            raise ValueError(f"payment {self.order_no} is {self.status.value} but has no succeeded_at")

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCEEDED


@dataclass(frozen=True)
class RefundFact:
    """A refund recorded here: ``amount_fen`` refunded of payment ``order_no``; ``refunded_at`` (the
    provider's time) is required once it succeeded."""

    refund_no: str
    order_no: str
    amount_fen: int
    refunded_at: datetime | None
    status: RefundStatus = RefundStatus.SUCCEEDED

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RefundStatus(self.status))
        _positive_fen(self.amount_fen, "amount_fen")
        object.__setattr__(self, "refunded_at", _aware_utc(self.refunded_at, "refunded_at"))
        if self.status is RefundStatus.SUCCEEDED and self.refunded_at is None:
            raise ValueError(f"refund {self.refund_no} succeeded but has no refunded_at")


@dataclass(frozen=True)
class SettlementFact:
    """``count`` settlements of ``amount_fen`` each that billing recorded for ``payment_id`` (= order no)."""

    payment_id: str
    amount_fen: int
    count: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int) or self.amount_fen < 0:
            raise ValueError(f"amount_fen must be a non-negative integer, got {self.amount_fen!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count must be a positive integer, got {self.count!r}")


# ------------------------------------------------------------------------------------------- output
@dataclass(frozen=True)
class Case:
    """One mismatch to resolve. ``expected_fen``: what this service recorded; ``actual_fen``: what the
    provider (``against=provider``) or billing (``against=billing``) says; ``None``: no record there."""

    kind: CaseKind
    order_no: str | None
    provider_txn_id: str | None
    expected_fen: int | None
    actual_fen: int | None
    detail_zh: str
    against: Against = Against.PROVIDER
    subject: StatementKind = StatementKind.PAYMENT
    refund_no: str | None = None
    raw_line_no: int | None = None  # the statement line, when there is one


@dataclass(frozen=True)
class Match:
    """A statement line and what it matched here (an order, and for a refund line the refund)."""

    raw_line_no: int
    subject: StatementKind
    order_no: str
    refund_no: str | None = None


@dataclass(frozen=True)
class Totals:
    payments_count: int = 0
    payments_fen: int = 0
    refunds_count: int = 0
    refunds_fen: int = 0
    fees_fen: int = 0

    @property
    def net_fen(self) -> int:
        return self.payments_fen - self.refunds_fen

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.payments_count + other.payments_count,
            self.payments_fen + other.payments_fen,
            self.refunds_count + other.refunds_count,
            self.refunds_fen + other.refunds_fen,
            self.fees_fen + other.fees_fen,
        )


@dataclass(frozen=True)
class ChannelTotals:
    """A channel's day: the provider's statement beside what was recorded here as succeeded that day."""

    channel: str
    day: date
    statement: Totals
    recorded: Totals


@dataclass(frozen=True)
class CarryOver:
    """What one day's reconciliation hands to the next (see the cut-over rule)."""

    day: date
    payments: tuple[PaymentFact, ...] = ()
    refunds: tuple[RefundFact, ...] = ()
    matched_ahead: frozenset[str] = frozenset()  # order numbers
    matched_ahead_refunds: frozenset[str] = frozenset()  # refund numbers


@dataclass(frozen=True)
class Reconciliation:
    provider: str
    day: date
    cases: tuple[Case, ...]
    matches: tuple[Match, ...]
    totals: ChannelTotals
    pending_cutover: tuple[PaymentFact, ...] = ()
    pending_cutover_refunds: tuple[RefundFact, ...] = ()
    matched_ahead: frozenset[str] = field(default_factory=frozenset)
    matched_ahead_refunds: frozenset[str] = field(default_factory=frozenset)

    @property
    def balanced(self) -> bool:
        return not self.cases

    @property
    def carry(self) -> CarryOver:
        """Pass as ``carried`` to the next day's :func:`reconcile`."""
        return CarryOver(
            self.day,
            self.pending_cutover,
            self.pending_cutover_refunds,
            self.matched_ahead,
            self.matched_ahead_refunds,
        )


class ReconciliationInputError(ValueError):
    """The facts given to :func:`reconcile` contradict themselves."""


# ------------------------------------------------------------------------------------------ helpers
def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants ``[start, end)`` of an Asia/Shanghai business day."""
    start = datetime.combine(day, time(0), tzinfo=BUSINESS_TZ).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=BUSINESS_TZ).astimezone(UTC)
    return start, end


def _yuan(fen: int) -> str:
    return f"{fen_to_yuan(fen)} 元"


def _local(instant: datetime | None) -> str:
    return instant.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S") if instant else "—"


def _unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ReconciliationInputError(f"two facts share the {what} {value}")
        seen.add(value)


class _Cases:
    def __init__(self) -> None:
        self.items: list[Case] = []

    def add(self, kind: CaseKind, **kw: object) -> None:
        self.items.append(Case(kind=kind, **kw))  # type: ignore[arg-type]

    def sorted(self) -> tuple[Case, ...]:
        return tuple(
            sorted(
                self.items,
                key=lambda c: (
                    _AGAINST_RANK[c.against],
                    c.order_no or "",
                    _SUBJECT_RANK[c.subject],
                    _KIND_RANK[c.kind],
                    c.refund_no or "",
                    c.raw_line_no or 0,
                    c.provider_txn_id or "",
                ),
            )
        )


# ---------------------------------------------------------------------------------------- reconcile
def reconcile(
    *,
    provider: str,
    day: date,
    statement: Sequence[StatementLine],
    payments: Sequence[PaymentFact],
    settlements: Sequence[SettlementFact],
    refunds: Sequence[RefundFact] = (),
    carried: CarryOver | None = None,
    cutover: timedelta = DEFAULT_CUTOVER,
) -> Reconciliation:
    """Reconcile ``provider``'s statement of business ``day`` (rules in the module docstring)."""
    if not (timedelta(0) <= cutover < timedelta(days=1)):
        raise ReconciliationInputError("cutover must be at least 0 and under a day")
    if carried is not None and carried.day != day - timedelta(days=1):
        raise ReconciliationInputError(f"the carry-over is from {carried.day}, not from the day before {day}")
    carried = carried or CarryOver(day - timedelta(days=1))
    for line in statement:
        if line.provider != provider:
            raise ReconciliationInputError(
                f"statement line {line.raw_line_no} is {line.provider}'s, not {provider}'s"
            )
    _unique((p.order_no for p in payments), "order number")
    _unique((r.refund_no for r in refunds), "refund number")
    start, end = day_bounds(day)
    cut = end - cutover

    def on_day(instant: datetime | None) -> bool:
        return instant is not None and start <= instant < end

    # The pool: yesterday's carried facts, overridden by today's (fresher) facts of the same order.
    pool: dict[str, PaymentFact] = {p.order_no: p for p in carried.payments}
    pool.update((p.order_no, p) for p in payments)
    by_txn: dict[str, PaymentFact] = {}
    for p in pool.values():
        if p.provider_txn_id is not None:
            if p.provider_txn_id in by_txn:
                raise ReconciliationInputError(f"two payments share the provider txn id {p.provider_txn_id}")
            by_txn[p.provider_txn_id] = p
    carried_orders = {p.order_no for p in carried.payments}

    cases = _Cases()
    matches: list[Match] = []
    matched_ahead: set[str] = set()

    # ---------------------------------------------------------------- statement ↔ payments
    pay_lines = [x for x in statement if x.kind is StatementKind.PAYMENT]
    paired: dict[int, PaymentFact] = {}  # index in pay_lines → payment
    taken: set[str] = set()
    for i, line in enumerate(pay_lines):
        p = by_txn.get(line.provider_txn_id)
        if p is not None and p.order_no not in taken:
            paired[i] = p
            taken.add(p.order_no)
    for i, line in enumerate(pay_lines):
        if i in paired:
            continue
        p = pool.get(line.order_no)
        if p is not None and p.order_no not in taken:
            paired[i] = p
            taken.add(p.order_no)
    for i, line in enumerate(pay_lines):
        p = paired.get(i)
        common = {"provider_txn_id": line.provider_txn_id, "raw_line_no": line.raw_line_no}
        if p is None:
            cases.add(
                CaseKind.MISSING_HERE,
                order_no=line.order_no,
                expected_fen=None,
                actual_fen=line.amount_fen,
                detail_zh=f"渠道对账单有此笔支付（{_yuan(line.amount_fen)}，{_local(line.occurred_at)}），"
                f"本系统无对应订单",
                **common,
            )
            continue
        matches.append(Match(line.raw_line_no, StatementKind.PAYMENT, p.order_no))
        if p.succeeded and p.succeeded_at is not None and p.succeeded_at >= end:
            matched_ahead.add(p.order_no)
        amount_note = (
            f"；金额亦不一致：本系统 {_yuan(p.amount_fen)}，渠道 {_yuan(line.amount_fen)}"
            if p.amount_fen != line.amount_fen
            else ""
        )
        base = {"order_no": p.order_no, "expected_fen": p.amount_fen, "actual_fen": line.amount_fen, **common}
        if not p.succeeded:
            cases.add(
                CaseKind.STATUS_DIFFERS,
                detail_zh=f"渠道显示已支付，本系统订单状态为{_STATUS_ZH[p.status.value]}（{p.status.value}）"
                f"{amount_note}",
                **base,
            )
        elif p.provider_txn_id is not None and p.provider_txn_id != line.provider_txn_id:
            cases.add(
                CaseKind.STATUS_DIFFERS,
                detail_zh=f"交易号不一致：本系统 {p.provider_txn_id}，"
                f"渠道 {line.provider_txn_id}{amount_note}",
                **base,
            )
        elif p.amount_fen != line.amount_fen:
            cases.add(
                CaseKind.AMOUNT_DIFFERS,
                detail_zh=f"金额不一致：本系统 {_yuan(p.amount_fen)}，渠道 {_yuan(line.amount_fen)}",
                **base,
            )

    pending: list[PaymentFact] = []
    for p in sorted(pool.values(), key=lambda p: p.order_no):
        if p.order_no in taken:
            continue
        was_carried = p.order_no in carried_orders
        own_day = p.succeeded and on_day(p.succeeded_at) and p.order_no not in carried.matched_ahead
        if not (own_day or (was_carried and p.succeeded)):
            continue
        if own_day and not was_carried and p.succeeded_at is not None and p.succeeded_at >= cut:
            pending.append(p)
            continue
        note = "（前一日跨日结转，次日对账单仍无）" if was_carried else ""
        cases.add(
            CaseKind.MISSING_AT_PROVIDER,
            order_no=p.order_no,
            provider_txn_id=p.provider_txn_id,
            expected_fen=p.amount_fen,
            actual_fen=None,
            detail_zh=f"本系统已支付成功（{_yuan(p.amount_fen)}，{_local(p.succeeded_at)}），渠道对账单无此笔{note}",
        )

    # ---------------------------------------------------------------- statement ↔ refunds
    rpool: dict[str, RefundFact] = {r.refund_no: r for r in carried.refunds}
    rpool.update((r.refund_no, r) for r in refunds)
    carried_refunds = {r.refund_no for r in carried.refunds}
    refund_lines = [x for x in statement if x.kind is StatementKind.REFUND]
    rpaired: dict[int, RefundFact] = {}
    rtaken: set[str] = set()
    for i, line in enumerate(refund_lines):
        r = rpool.get(line.refund_no) if line.refund_no else None
        if r is not None and r.refund_no not in rtaken:
            rpaired[i] = r
            rtaken.add(r.refund_no)
    by_order: dict[str, list[RefundFact]] = {}
    for r in rpool.values():
        by_order.setdefault(r.order_no, []).append(r)
    for i, line in enumerate(refund_lines):
        if i in rpaired:
            continue
        order_no = line.order_no
        if order_no not in by_order and line.provider_txn_id in by_txn:
            order_no = by_txn[line.provider_txn_id].order_no
        candidates = [r for r in by_order.get(order_no, []) if r.refund_no not in rtaken]
        if candidates:
            r = min(
                candidates,
                key=lambda r, line=line: (
                    r.amount_fen != line.amount_fen,
                    r.status is not RefundStatus.SUCCEEDED,
                    r.refunded_at or datetime.max.replace(tzinfo=UTC),
                    r.refund_no,
                ),
            )
            rpaired[i] = r
            rtaken.add(r.refund_no)
    matched_ahead_refunds: set[str] = set()
    for i, line in enumerate(refund_lines):
        r = rpaired.get(i)
        common = {
            "provider_txn_id": line.provider_txn_id,
            "raw_line_no": line.raw_line_no,
            "subject": StatementKind.REFUND,
        }
        if r is None:
            cases.add(
                CaseKind.MISSING_HERE,
                order_no=line.order_no,
                expected_fen=None,
                actual_fen=line.amount_fen,
                refund_no=line.refund_no,
                detail_zh=f"渠道对账单有此笔退款（{_yuan(line.amount_fen)}，{_local(line.occurred_at)}），"
                f"本系统无对应退款",
                **common,
            )
            continue
        matches.append(Match(line.raw_line_no, StatementKind.REFUND, r.order_no, r.refund_no))
        if r.refunded_at is not None and r.refunded_at >= end and r.status is RefundStatus.SUCCEEDED:
            matched_ahead_refunds.add(r.refund_no)
        amount_note = (
            f"；金额亦不一致：本系统 {_yuan(r.amount_fen)}，渠道 {_yuan(line.amount_fen)}"
            if r.amount_fen != line.amount_fen
            else ""
        )
        base = {
            "order_no": r.order_no,
            "refund_no": r.refund_no,
            "expected_fen": r.amount_fen,
            "actual_fen": line.amount_fen,
            **common,
        }
        if r.status is not RefundStatus.SUCCEEDED:
            cases.add(
                CaseKind.STATUS_DIFFERS,
                detail_zh=f"渠道显示已退款，本系统退款状态为 {r.status.value}{amount_note}",
                **base,
            )
        elif line.refund_no is not None and line.refund_no != r.refund_no:
            cases.add(
                CaseKind.STATUS_DIFFERS,
                detail_zh=f"退款单号不一致：本系统 {r.refund_no}，渠道 {line.refund_no}{amount_note}",
                **base,
            )
        elif r.amount_fen != line.amount_fen:
            cases.add(
                CaseKind.AMOUNT_DIFFERS,
                detail_zh=f"退款金额不一致：本系统 {_yuan(r.amount_fen)}，渠道 {_yuan(line.amount_fen)}",
                **base,
            )

    pending_refunds: list[RefundFact] = []
    for r in sorted(rpool.values(), key=lambda r: r.refund_no):
        if r.refund_no in rtaken or r.status is not RefundStatus.SUCCEEDED:
            continue
        was_carried = r.refund_no in carried_refunds
        own_day = on_day(r.refunded_at) and r.refund_no not in carried.matched_ahead_refunds
        if not (own_day or was_carried):
            continue
        if own_day and not was_carried and r.refunded_at is not None and r.refunded_at >= cut:
            pending_refunds.append(r)
            continue
        note = "（前一日跨日结转，次日对账单仍无）" if was_carried else ""
        cases.add(
            CaseKind.MISSING_AT_PROVIDER,
            order_no=r.order_no,
            provider_txn_id=pool[r.order_no].provider_txn_id if r.order_no in pool else None,
            expected_fen=r.amount_fen,
            actual_fen=None,
            refund_no=r.refund_no,
            subject=StatementKind.REFUND,
            detail_zh=f"本系统已退款（{_yuan(r.amount_fen)}，{_local(r.refunded_at)}），渠道对账单无此笔退款{note}",
        )

    # ---------------------------------------------------------------- payments ↔ billing
    settled: dict[str, tuple[int, int]] = {}
    for s in settlements:
        count, fen = settled.get(s.payment_id, (0, 0))
        settled[s.payment_id] = (count + s.count, fen + s.amount_fen * s.count)
    todays = [p for p in payments if p.succeeded and on_day(p.succeeded_at)]
    for p in todays:
        count, fen = settled.get(p.order_no, (0, 0))
        base = {"order_no": p.order_no, "provider_txn_id": p.provider_txn_id, "against": Against.BILLING}
        if count == 0:
            cases.add(
                CaseKind.NOT_SETTLED,
                expected_fen=p.amount_fen,
                actual_fen=None,
                detail_zh=f"本系统已支付成功（{_yuan(p.amount_fen)}），计费服务未核销",
                **base,
            )
        elif count > 1:
            cases.add(
                CaseKind.SETTLED_TWICE,
                expected_fen=p.amount_fen,
                actual_fen=fen,
                detail_zh=f"计费服务核销了 {count} 次，共 {_yuan(fen)}（应为一次 {_yuan(p.amount_fen)}）",
                **base,
            )
        elif fen != p.amount_fen:
            cases.add(
                CaseKind.AMOUNT_DIFFERS,
                expected_fen=p.amount_fen,
                actual_fen=fen,
                detail_zh=f"核销金额不一致：本系统 {_yuan(p.amount_fen)}，计费服务 {_yuan(fen)}",
                **base,
            )
    for payment_id in sorted(settled):
        count, fen = settled[payment_id]
        p = pool.get(payment_id)
        if p is None:
            cases.add(
                CaseKind.MISSING_HERE,
                order_no=payment_id,
                provider_txn_id=None,
                expected_fen=None,
                actual_fen=fen,
                against=Against.BILLING,
                detail_zh=f"计费服务核销了本系统无记录的支付 {payment_id}（{count} 次，共 {_yuan(fen)}）",
            )
        elif not p.succeeded:
            cases.add(
                CaseKind.STATUS_DIFFERS,
                order_no=payment_id,
                provider_txn_id=p.provider_txn_id,
                expected_fen=p.amount_fen,
                actual_fen=fen,
                against=Against.BILLING,
                detail_zh=f"计费服务已核销（{count} 次，共 {_yuan(fen)}），本系统订单状态为"
                f"{_STATUS_ZH[p.status.value]}（{p.status.value}）",
            )

    # ---------------------------------------------------------------- totals
    statement_totals = Totals(
        payments_count=len(pay_lines),
        payments_fen=sum(x.amount_fen for x in pay_lines),
        refunds_count=len(refund_lines),
        refunds_fen=sum(x.amount_fen for x in refund_lines),
        fees_fen=sum(x.fee_fen or 0 for x in statement),
    )
    todays_refunds = [r for r in refunds if r.status is RefundStatus.SUCCEEDED and on_day(r.refunded_at)]
    recorded_totals = Totals(
        payments_count=len(todays),
        payments_fen=sum(p.amount_fen for p in todays),
        refunds_count=len(todays_refunds),
        refunds_fen=sum(r.amount_fen for r in todays_refunds),
    )
    return Reconciliation(
        provider=provider,
        day=day,
        cases=cases.sorted(),
        matches=tuple(sorted(matches, key=lambda m: m.raw_line_no)),
        totals=ChannelTotals(provider, day, statement_totals, recorded_totals),
        pending_cutover=tuple(pending),
        pending_cutover_refunds=tuple(pending_refunds),
        matched_ahead=frozenset(matched_ahead),
        matched_ahead_refunds=frozenset(matched_ahead_refunds),
    )


def daily_totals(reconciliations: Iterable[Reconciliation]) -> tuple[ChannelTotals, ...]:
    """The day's totals, one row per channel (provider), sorted by channel. All reconciliations must be of
    the same day and of different providers."""
    rows = [r.totals for r in reconciliations]
    if len({r.day for r in rows}) > 1:
        raise ReconciliationInputError("daily totals mix several days")
    _unique((r.channel for r in rows), "channel")
    return tuple(sorted(rows, key=lambda r: r.channel))
