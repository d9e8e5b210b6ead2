"""Receivables: late fees (滞纳金), settlement of payments against bills (核销), prepaid balance (预存),
reversal of a settlement and late-fee waivers. Pure rules: no I/O, no clock, no framework.

Conventions (decisions, documented here once):

* **Money** is integer fen in every input and output. ``Decimal`` is used only inside late-fee accrual,
  which stays unrounded until a payment settles it; it is then rounded ``ROUND_HALF_UP`` to the fen.
* **Instants** are timezone-aware datetimes (normalised to UTC); naive datetimes are refused. Every instant
  is truncated to the whole second before use, so accrual is "to the second" and additive: the accrual over
  ``[t0, t2]`` is exactly the accrual over ``[t0, t1]`` plus ``[t1, t2]``.
* **Due time.** A bill is due on a business date in Asia/Shanghai and may be paid during the whole of that
  day: its due *instant* is 00:00 of the *next* business day (:func:`due_instant`), e.g. due date
  2026-11-30 → ``2026-12-01T00:00:00+08:00`` = ``2026-11-30T16:00:00Z``. A payment at that exact second
  owes no late fee; each second after it accrues.
* **Late fee** = daily rate × overdue principal × seconds / 86,400, integrated over the bill's principal
  history (a partial payment reduces the principal on which the fee accrues from its own second onwards),
  from ``due_at + grace_period`` to the payment time. Grace days are free even when the bill is paid after
  the grace period (the fee starts at the end of the grace period, never retroactively at the due time).
  The accrued fee is capped at ``cap_ratio`` × the bill's original principal (default 1: never above the
  principal) and, if configured, at ``cap_fen``.
* **Settlement** takes the open bills oldest first (due instant, then bill number); inside a bill the late
  fee comes before the principal unless ``late_fee_first=False``. What is left goes to the prepaid balance.
  The function is deterministic; idempotency (by payment id) is the service layer's job, but a payment id
  already posted on one of the bills is refused.
* **Postings are applied in time order per bill**: a payment, draw or waiver dated before a posting already
  on the bill is refused (:class:`OutOfOrderPosting`) because the fee already settled was computed on the
  history as it stood; the service layer applies late callbacks at ``max(paid_at, last posting)``.
* **Reversal** (refund, bank chargeback) removes a payment's postings from its bills, so the bills reopen
  and the late fee accrues again as if the payment had never reached them; the excess it put into the
  prepaid balance is taken back. If part of that excess was already drawn by later bills, the prepaid
  balance goes to zero (never negative) and the shortfall is returned as ``debit_fen``: the service layer
  raises it as a debit note on the account (the drawn bills stay settled; issued bills are immutable).
* **Waivers** reduce a bill's late fee already accrued (not future accrual), need an approver holding one of
  :data:`WAIVER_APPROVER_ROLES` (``billing_supervisor`` or ``admin``; a ``billing_clerk`` may request but not
  approve) who is not the requester, and return an audit record.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from enum import StrEnum

from utilis_shared.timeutil import BUSINESS_TZ, business_date_of

SECONDS_PER_DAY = 86_400
_ACCRUAL_CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN)
_ONE_SECOND = timedelta(seconds=1)

#: Roles allowed to approve a late-fee waiver. ``billing_supervisor`` is not (yet) in the shared ``Role``
#: enum; the service layer maps token roles onto this set.
WAIVER_APPROVER_ROLES: frozenset[str] = frozenset({"billing_supervisor", "admin"})


# --------------------------------------------------------------------------------------------- errors
class ReceivablesError(ValueError):
    """A receivables rule refused the operation."""


class OutOfOrderPosting(ReceivablesError):
    """A posting is dated before a posting already on the bill."""


class DuplicatePosting(ReceivablesError):
    """The same payment / waiver / draw reference is already posted on the bill."""


class WaiverNotAuthorized(ReceivablesError):
    """The approver lacks an approver role, or approves their own request."""


class WaiverExceedsFee(ReceivablesError):
    """A waiver larger than the late fee outstanding at that time."""


class UnknownReversal(ReceivablesError):
    """The bills do not carry the postings of the settlement being reversed."""


# ------------------------------------------------------------------------------------------- helpers
def _fen(value: int, name: str, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer amount of fen, got {type(value).__name__}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value}")
    return value


def to_second(instant: datetime) -> datetime:
    """The instant in UTC, truncated to the whole second. Naive datetimes are refused."""
    if not isinstance(instant, datetime):
        raise TypeError("instants must be datetimes")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive datetimes are ambiguous; pass timezone-aware instants")
    return instant.astimezone(UTC).replace(microsecond=0)


def _seconds(delta: timedelta) -> int:
    return delta // _ONE_SECOND


def round_fen(amount: Decimal) -> int:
    """Round an unrounded Decimal amount of fen half up to a whole fen (the settlement rounding)."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_ACCRUAL_CONTEXT))


def due_instant(due_date: date) -> datetime:
    """The UTC instant a bill due on ``due_date`` (an Asia/Shanghai business date) becomes overdue:
    00:00 of the next business day. 2026-11-30 → 2026-11-30T16:00:00Z."""
    return datetime.combine(due_date + timedelta(days=1), time(0), tzinfo=BUSINESS_TZ).astimezone(UTC)


def due_date_of(due_at: datetime) -> date:
    """The business date a bill with due instant ``due_at`` is due on (inverse of :func:`due_instant`)."""
    return business_date_of(to_second(due_at) - _ONE_SECOND)


# ------------------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class LateFeePolicy:
    """Configured late-fee rule. ``daily_rate`` is a fraction of the overdue principal per day
    (``Decimal("0.0005")`` = 0.05 %/day); ``cap_ratio`` caps the accrued fee at that share of the bill's
    original principal (≤ 1); ``cap_fen`` is an optional absolute cap per bill."""

    daily_rate: Decimal
    grace_period: timedelta = timedelta(0)
    cap_ratio: Decimal = Decimal(1)
    cap_fen: int | None = None

    def __post_init__(self) -> None:
        for name in ("daily_rate", "cap_ratio"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise TypeError(f"{name} must be a finite Decimal (never a float)")
        if self.daily_rate < 0:
            raise ValueError("daily_rate must be non-negative")
        if not (0 <= self.cap_ratio <= 1):
            raise ValueError("cap_ratio must be between 0 and 1: a late fee is never above the principal")
        if self.grace_period < timedelta(0):
            raise ValueError("grace_period must be non-negative")
        if self.cap_fen is not None:
            _fen(self.cap_fen, "cap_fen")


# -------------------------------------------------------------------------------------------- state
class PostingKind(StrEnum):
    PAYMENT = "payment"
    PREPAID = "prepaid"  # drawn from the account's prepaid balance
    WAIVER = "waiver"  # late fee waived; no money moved
    CREDIT = "credit"  # a credit note reduces the principal still owed; no money moved


@dataclass(frozen=True)
class Posting:
    """One application to a bill: money (payment, prepaid draw), a credit note or a waiver, at an instant."""

    ref: str
    kind: PostingKind
    at: datetime
    late_fee_fen: int = 0
    principal_fen: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", to_second(self.at))
        _fen(self.late_fee_fen, "late_fee_fen")
        _fen(self.principal_fen, "principal_fen")
        if self.kind is PostingKind.WAIVER and self.principal_fen:
            raise ValueError("a waiver only reduces the late fee")
        if self.kind is PostingKind.CREDIT and self.late_fee_fen:
            raise ValueError("a credit note only reduces the principal")


@dataclass(frozen=True)
class BillReceivable:
    """What one issued bill is owed: its original principal, its due instant and its postings (the
    settlement timeline). Immutable; every operation returns a new value."""

    bill_no: str
    account_no: str
    principal_fen: int
    due_at: datetime
    postings: tuple[Posting, ...] = ()

    def __post_init__(self) -> None:
        _fen(self.principal_fen, "principal_fen")
        object.__setattr__(self, "due_at", to_second(self.due_at))
        object.__setattr__(self, "postings", tuple(self.postings))
        if self.principal_paid_fen > self.principal_fen:
            raise ValueError(f"bill {self.bill_no}: principal postings exceed the principal")

    # -- principal
    @property
    def principal_paid_fen(self) -> int:
        return sum(p.principal_fen for p in self.postings)

    @property
    def principal_outstanding_fen(self) -> int:
        return self.principal_fen - self.principal_paid_fen

    @property
    def late_fee_credited_fen(self) -> int:
        """Late fee already paid or waived."""
        return sum(p.late_fee_fen for p in self.postings)

    @property
    def last_posting_at(self) -> datetime | None:
        return max((p.at for p in self.postings), default=None)

    # -- late fee
    def accrual_start(self, policy: LateFeePolicy) -> datetime:
        return self.due_at + policy.grace_period

    def overdue_exposure(self, start: datetime, end: datetime) -> int:
        """Outstanding principal integrated over ``[start, end]``, in fen·seconds (an exact integer). The
        principal steps down at each posting's second."""
        start, end = to_second(start), to_second(end)
        if end <= start:
            return 0
        outstanding, cursor, total = self.principal_fen, start, 0
        for at, fen in sorted((p.at, p.principal_fen) for p in self.postings if p.principal_fen):
            if at >= end:
                break
            if at > cursor:
                total += outstanding * _seconds(at - cursor)
                cursor = at
            outstanding -= fen
        return total + outstanding * _seconds(end - cursor)

    def late_fee_cap(self, policy: LateFeePolicy) -> Decimal:
        cap = Decimal(self.principal_fen) * policy.cap_ratio
        if policy.cap_fen is not None:
            cap = min(cap, Decimal(policy.cap_fen))
        return cap

    def late_fee_accrual(self, start: datetime, end: datetime, policy: LateFeePolicy) -> Decimal:
        """Late fee accruing over ``[start, end]`` (clipped to the accrual start), uncapped and unrounded."""
        start = max(to_second(start), self.accrual_start(policy))
        exposure = self.overdue_exposure(start, end)
        # A fixed context: the result must not depend on whatever decimal context the caller set.
        ctx = _ACCRUAL_CONTEXT
        return ctx.divide(ctx.multiply(policy.daily_rate, exposure), SECONDS_PER_DAY)

    def accrued_late_fee(self, at: datetime, policy: LateFeePolicy) -> Decimal:
        """Total late fee accrued from the start of accrual up to ``at``: capped, unrounded fen. Gross of
        what was paid or waived."""
        accrual = self.late_fee_accrual(self.accrual_start(policy), at, policy)
        return min(accrual, self.late_fee_cap(policy))

    def late_fee_outstanding_fen(self, at: datetime, policy: LateFeePolicy) -> int:
        """Late fee owed at ``at``, rounded to the fen (the amount a settlement at ``at`` would take)."""
        return max(0, round_fen(self.accrued_late_fee(at, policy)) - self.late_fee_credited_fen)

    def amount_due_fen(self, at: datetime, policy: LateFeePolicy) -> int:
        return self.principal_outstanding_fen + self.late_fee_outstanding_fen(at, policy)

    def is_settled(self, at: datetime, policy: LateFeePolicy) -> bool:
        return self.amount_due_fen(at, policy) == 0

    # -- postings
    def _post(self, posting: Posting) -> BillReceivable:
        if any(p.ref == posting.ref for p in self.postings):
            raise DuplicatePosting(f"{posting.ref} is already posted on bill {self.bill_no}")
        last = self.last_posting_at
        if last is not None and posting.at < last:
            raise OutOfOrderPosting(
                f"bill {self.bill_no}: posting {posting.ref} at {posting.at.isoformat()} is before "
                f"the last posting at {last.isoformat()}"
            )
        return replace(self, postings=(*self.postings, posting))


def _sort_key(bill: BillReceivable) -> tuple[datetime, str]:
    return bill.due_at, bill.bill_no


# ------------------------------------------------------------------------------------- settlement
@dataclass(frozen=True)
class Allocation:
    bill_no: str
    late_fee_fen: int
    principal_fen: int

    @property
    def total_fen(self) -> int:
        return self.late_fee_fen + self.principal_fen


@dataclass(frozen=True)
class Settlement:
    """The outcome of applying one payment to an account (核销)."""

    payment_id: str
    account_no: str
    paid_at: datetime
    amount_fen: int
    allocations: tuple[Allocation, ...]
    prepaid_before_fen: int
    prepaid_after_fen: int
    settled_bill_nos: tuple[str, ...]
    bills: tuple[BillReceivable, ...] = field(repr=False)  # all input bills, updated, oldest first

    @property
    def allocated_fen(self) -> int:
        return sum(a.total_fen for a in self.allocations)

    @property
    def prepaid_added_fen(self) -> int:
        return self.prepaid_after_fen - self.prepaid_before_fen


def _allocate(
    bill: BillReceivable,
    available: int,
    *,
    ref: str,
    kind: PostingKind,
    at: datetime,
    policy: LateFeePolicy,
    late_fee_first: bool,
) -> tuple[BillReceivable, Allocation | None]:
    fee_due = bill.late_fee_outstanding_fen(at, policy)
    principal_due = bill.principal_outstanding_fen
    if late_fee_first:
        fee = min(available, fee_due)
        principal = min(available - fee, principal_due)
    else:
        principal = min(available, principal_due)
        fee = min(available - principal, fee_due)
    if fee == 0 and principal == 0:
        return bill, None
    posting = Posting(ref=ref, kind=kind, at=at, late_fee_fen=fee, principal_fen=principal)
    return bill._post(posting), Allocation(bill.bill_no, late_fee_fen=fee, principal_fen=principal)


def _check_account(bills: Iterable[BillReceivable], account_no: str) -> None:
    seen: set[str] = set()
    for bill in bills:
        if bill.account_no != account_no:
            raise ReceivablesError(
                f"bill {bill.bill_no} belongs to account {bill.account_no}, not {account_no}"
            )
        if bill.bill_no in seen:
            raise ReceivablesError(f"bill {bill.bill_no} is listed twice")
        seen.add(bill.bill_no)


def settle_payment(
    *,
    payment_id: str,
    account_no: str,
    amount_fen: int,
    paid_at: datetime,
    bills: Sequence[BillReceivable],
    prepaid_fen: int,
    policy: LateFeePolicy,
    late_fee_first: bool = True,
) -> Settlement:
    """Apply a payment of ``amount_fen`` received at ``paid_at`` to the account's bills, oldest first
    (due instant, then bill number), late fee before principal unless ``late_fee_first=False``; the rest
    tops up the prepaid balance. Late fees are computed at ``paid_at`` and rounded here."""
    _fen(amount_fen, "amount_fen", positive=True)
    _fen(prepaid_fen, "prepaid_fen")
    paid_at = to_second(paid_at)
    _check_account(bills, account_no)
    remaining = amount_fen
    updated: list[BillReceivable] = []
    allocations: list[Allocation] = []
    settled: list[str] = []
    for bill in sorted(bills, key=_sort_key):
        if remaining and not bill.is_settled(paid_at, policy):
            bill, allocation = _allocate(
                bill,
                remaining,
                ref=payment_id,
                kind=PostingKind.PAYMENT,
                at=paid_at,
                policy=policy,
                late_fee_first=late_fee_first,
            )
            if allocation is not None:
                allocations.append(allocation)
                remaining -= allocation.total_fen
                if bill.is_settled(paid_at, policy):
                    settled.append(bill.bill_no)
        updated.append(bill)
    return Settlement(
        payment_id=payment_id,
        account_no=account_no,
        paid_at=paid_at,
        amount_fen=amount_fen,
        allocations=tuple(allocations),
        prepaid_before_fen=prepaid_fen,
        prepaid_after_fen=prepaid_fen + remaining,
        settled_bill_nos=tuple(settled),
        bills=tuple(updated),
    )


# ------------------------------------------------------------------------------------ prepaid draw
@dataclass(frozen=True)
class PrepaidDraw:
    bill: BillReceivable
    allocation: Allocation | None  # None when nothing was drawn
    prepaid_before_fen: int
    prepaid_after_fen: int

    @property
    def drawn_fen(self) -> int:
        return self.prepaid_before_fen - self.prepaid_after_fen


def draw_prepaid_on_issue(
    *,
    bill: BillReceivable,
    prepaid_fen: int,
    issued_at: datetime,
    policy: LateFeePolicy,
) -> PrepaidDraw:
    """When a bill is issued, draw what the prepaid balance can cover of it (principal; a new bill has no
    late fee). The posting's reference is ``prepaid:<bill_no>``, so a bill is drawn at most once."""
    _fen(prepaid_fen, "prepaid_fen")
    issued_at = to_second(issued_at)
    updated, allocation = bill, None
    if prepaid_fen:
        updated, allocation = _allocate(
            bill,
            prepaid_fen,
            ref=f"prepaid:{bill.bill_no}",
            kind=PostingKind.PREPAID,
            at=issued_at,
            policy=policy,
            late_fee_first=True,
        )
    drawn = allocation.total_fen if allocation else 0
    return PrepaidDraw(updated, allocation, prepaid_fen, prepaid_fen - drawn)


# ---------------------------------------------------------------------------------------- reversal
@dataclass(frozen=True)
class Reversal:
    """The outcome of reversing one payment's settlement."""

    payment_id: str
    reversed_at: datetime
    bills: tuple[BillReceivable, ...] = field(repr=False)  # all input bills, updated, oldest first
    reopened_bill_nos: tuple[str, ...]
    prepaid_before_fen: int
    prepaid_after_fen: int
    debit_fen: int  # excess already drawn from prepaid: to be raised as a debit note on the account


def reverse_settlement(
    settlement: Settlement,
    *,
    bills: Sequence[BillReceivable],
    prepaid_fen: int,
    reversed_at: datetime,
    policy: LateFeePolicy,
) -> Reversal:
    """Undo ``settlement``: remove its postings from the bills (they reopen, and late fee accrues again on
    the restored principal history) and take back the excess it added to the prepaid balance. The balance
    never goes negative: any part already drawn is returned as ``debit_fen``."""
    _fen(prepaid_fen, "prepaid_fen")
    reversed_at = to_second(reversed_at)
    _check_account(bills, settlement.account_no)
    by_no = {b.bill_no: b for b in bills}
    expected = {a.bill_no: a for a in settlement.allocations}
    missing = sorted(set(expected) - set(by_no))
    if missing:
        raise UnknownReversal(f"bills {missing} of payment {settlement.payment_id} were not given")
    updated: list[BillReceivable] = []
    reopened: list[str] = []
    for bill in sorted(bills, key=_sort_key):
        ours = [p for p in bill.postings if p.ref == settlement.payment_id]
        allocation = expected.get(bill.bill_no)
        if allocation is None:
            if ours:
                raise UnknownReversal(f"bill {bill.bill_no} has postings of {settlement.payment_id}")
            updated.append(bill)
            continue
        if len(ours) != 1 or (ours[0].late_fee_fen, ours[0].principal_fen) != (
            allocation.late_fee_fen,
            allocation.principal_fen,
        ):
            raise UnknownReversal(
                f"bill {bill.bill_no} does not carry payment {settlement.payment_id} as settled"
            )
        was_settled = bill.is_settled(reversed_at, policy)
        bill = replace(bill, postings=tuple(p for p in bill.postings if p.ref != settlement.payment_id))
        if was_settled and not bill.is_settled(reversed_at, policy):
            reopened.append(bill.bill_no)
        updated.append(bill)
    take_back = settlement.prepaid_added_fen
    prepaid_after = max(0, prepaid_fen - take_back)
    return Reversal(
        payment_id=settlement.payment_id,
        reversed_at=reversed_at,
        bills=tuple(updated),
        reopened_bill_nos=tuple(reopened),
        prepaid_before_fen=prepaid_fen,
        prepaid_after_fen=prepaid_after,
        debit_fen=take_back - (prepaid_fen - prepaid_after),
    )


# ------------------------------------------------------------------------------------------ waivers
@dataclass(frozen=True)
class LateFeeWaiver:
    """Audit record of a late-fee waiver (value object; the service layer stores it with the bill)."""

    waiver_id: str
    bill_no: str
    account_no: str
    at: datetime
    amount_fen: int
    late_fee_outstanding_before_fen: int
    late_fee_outstanding_after_fen: int
    requested_by: str
    approved_by: str
    approver_roles: frozenset[str]
    reason: str


def waive_late_fee(
    bill: BillReceivable,
    *,
    waiver_id: str,
    at: datetime,
    requested_by: str,
    approved_by: str,
    approver_roles: Collection[str],
    reason: str,
    policy: LateFeePolicy,
    amount_fen: int | None = None,
    allowed_roles: frozenset[str] = WAIVER_APPROVER_ROLES,
) -> tuple[BillReceivable, LateFeeWaiver]:
    """Waive ``amount_fen`` (default: all) of the late fee outstanding on ``bill`` at ``at``. The approver
    must hold one of ``allowed_roles`` and must not be the requester; a reason is required. Fee accruing
    after ``at`` (principal still unpaid) is not waived."""
    roles = frozenset(approver_roles)
    if not roles & allowed_roles:
        raise WaiverNotAuthorized(
            f"approving a late-fee waiver needs one of {sorted(allowed_roles)}; "
            f"{approved_by} has {sorted(roles)}"
        )
    if not approved_by or approved_by == requested_by:
        raise WaiverNotAuthorized("a waiver must be approved by someone other than its requester")
    if not reason.strip():
        raise ValueError("a waiver needs a reason")
    at = to_second(at)
    outstanding = bill.late_fee_outstanding_fen(at, policy)
    amount = outstanding if amount_fen is None else _fen(amount_fen, "amount_fen", positive=True)
    if amount == 0:
        raise WaiverExceedsFee(f"bill {bill.bill_no} has no late fee to waive at {at.isoformat()}")
    if amount > outstanding:
        raise WaiverExceedsFee(f"waiver of {amount} fen exceeds the {outstanding} fen late fee outstanding")
    updated = bill._post(Posting(ref=waiver_id, kind=PostingKind.WAIVER, at=at, late_fee_fen=amount))
    record = LateFeeWaiver(
        waiver_id=waiver_id,
        bill_no=bill.bill_no,
        account_no=bill.account_no,
        at=at,
        amount_fen=amount,
        late_fee_outstanding_before_fen=outstanding,
        late_fee_outstanding_after_fen=updated.late_fee_outstanding_fen(at, policy),
        requested_by=requested_by,
        approved_by=approved_by,
        approver_roles=roles,
        reason=reason,
    )
    return updated, record


# ------------------------------------------------------------------------------------------ balance
@dataclass(frozen=True)
class AccountBalance:
    principal_due_fen: int
    late_fee_due_fen: int
    prepaid_fen: int

    @property
    def total_due_fen(self) -> int:
        return self.principal_due_fen + self.late_fee_due_fen


def account_balance(
    bills: Iterable[BillReceivable], *, prepaid_fen: int, at: datetime, policy: LateFeePolicy
) -> AccountBalance:
    """What the account owes at ``at`` (late fee accrued up to then, rounded as a settlement would)."""
    bills = tuple(bills)
    return AccountBalance(
        principal_due_fen=sum(b.principal_outstanding_fen for b in bills),
        late_fee_due_fen=sum(b.late_fee_outstanding_fen(at, policy) for b in bills),
        prepaid_fen=_fen(prepaid_fen, "prepaid_fen"),
    )


# ------------------------------------------------------------------------------------- credit notes
def credit_principal(
    bill: BillReceivable, *, note_no: str, amount_fen: int, at: datetime
) -> tuple[BillReceivable, int, int]:
    """Apply a credit note of ``amount_fen`` to ``bill`` at ``at``: it reduces the principal still owed
    (so the late fee accrues on less from that second on). What exceeds the outstanding principal (the bill
    was already paid) is returned for the service layer to carry to the prepaid balance explicitly.
    Returns ``(bill, credited_to_bill_fen, carried_over_fen)``."""
    _fen(amount_fen, "amount_fen", positive=True)
    on_bill = min(amount_fen, bill.principal_outstanding_fen)
    if on_bill == 0:
        return bill, 0, amount_fen
    posting = Posting(ref=note_no, kind=PostingKind.CREDIT, at=at, principal_fen=on_bill)
    return bill._post(posting), on_bill, amount_fen - on_bill
