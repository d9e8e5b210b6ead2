"""Payment reminders (缴费提醒): which configured reminder steps are due for a bill now, with the
customer-facing text in Simplified Chinese. Pure rules: no I/O, no clock (``now`` is an argument).

Decisions:

* A step is ``offset_days`` business days from the bill's due *date* (Asia/Shanghai; negative = before it)
  and fires at ``send_time`` local time (default 09:00, so nobody gets an SMS at midnight). With the default
  steps and a bill due 2026-11-30: 11-25 09:00 and 11-29 09:00 (before due), 12-01 and 12-15 09:00
  (overdue notices), 12-30 09:00 (collection: asks for a work order).
* A settled bill gets nothing. A step already sent is never returned again.
* When several customer notices are due at once (the sender was down), only the most recent is sent; the
  older ones come back as ``skipped`` for the service layer to record, so they are never sent later. A
  notice older than one already sent is skipped too. A before-due notice ("将于…到期") is never sent once
  the bill is overdue.
* Collection steps are never skipped: each asks for a collection work order once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from billing.domain.receivables import due_date_of, to_second
from utilis_shared.timeutil import BUSINESS_TZ


class Utility(StrEnum):
    HEATING = "heating"
    GAS = "gas"
    ELECTRICITY = "electricity"


FEE_NAMES: dict[Utility, str] = {
    Utility.HEATING: "供暖费",
    Utility.GAS: "燃气费",
    Utility.ELECTRICITY: "电费",
}


class ReminderKind(StrEnum):
    BEFORE_DUE = "before_due"
    OVERDUE = "overdue"
    COLLECTION = "collection"


@dataclass(frozen=True)
class ReminderStep:
    code: str
    offset_days: int  # relative to the due date; negative = before it
    kind: ReminderKind

    def __post_init__(self) -> None:
        if self.kind is ReminderKind.BEFORE_DUE and self.offset_days >= 0:
            raise ValueError(f"{self.code}: a before-due step needs a negative offset")
        if self.kind is not ReminderKind.BEFORE_DUE and self.offset_days <= 0:
            raise ValueError(f"{self.code}: an overdue or collection step needs a positive offset")


DEFAULT_REMINDER_STEPS: tuple[ReminderStep, ...] = (
    ReminderStep("due_minus_5d", -5, ReminderKind.BEFORE_DUE),
    ReminderStep("due_minus_1d", -1, ReminderKind.BEFORE_DUE),
    ReminderStep("overdue_1d", 1, ReminderKind.OVERDUE),
    ReminderStep("overdue_15d", 15, ReminderKind.OVERDUE),
    ReminderStep("collection_30d", 30, ReminderKind.COLLECTION),
)


@dataclass(frozen=True)
class BillNotice:
    """What a reminder needs to know about a bill."""

    account_no: str
    bill_no: str
    utility: Utility
    period_label: str  # e.g. "2026年11月" (see :func:`month_label`) or "2026—2027供暖季"
    amount_due_fen: int  # what the customer owes on this bill now (principal + accrued late fee)
    due_at: datetime  # due instant (UTC), see receivables.due_instant


@dataclass(frozen=True)
class Reminder:
    step_code: str
    kind: ReminderKind
    account_no: str
    bill_no: str
    fire_at: datetime  # UTC
    text: str
    needs_work_order: bool


@dataclass(frozen=True)
class ReminderPlan:
    due: tuple[Reminder, ...]
    skipped: tuple[str, ...]  # step codes superseded: record them as skipped, never send them


def format_yuan(fen: int) -> str:
    """Integer fen as yuan with thousands separators: 207600 → "2,076.00"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("amounts are integer fen")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan:,}.{cents:02d}"


def month_label(year: int, month: int) -> str:
    return f"{year}年{month}月"


def step_fire_at(step: ReminderStep, due_at: datetime, send_time: time = time(9, 0)) -> datetime:
    day = due_date_of(due_at) + timedelta(days=step.offset_days)
    return datetime.combine(day, send_time, tzinfo=BUSINESS_TZ).astimezone(UTC)


def reminder_text(bill: BillNotice, step: ReminderStep) -> str:
    due = due_date_of(bill.due_at)
    head = (
        f"您的户号 {bill.account_no} 的 {bill.period_label} {FEE_NAMES[bill.utility]} "
        f"{format_yuan(bill.amount_due_fen)} 元"
    )
    if step.kind is ReminderKind.BEFORE_DUE:
        return f"{head}将于 {due.month}月{due.day}日 到期，请及时缴纳。"
    if step.kind is ReminderKind.OVERDUE:
        return f"{head}已于 {due.month}月{due.day}日 到期，尚未缴清，逾期将按日加收滞纳金，请尽快缴纳。"
    return f"{head}已逾期 {step.offset_days} 天未缴清，工作人员将与您联系，请尽快缴纳。"


def plan_reminders(
    *,
    bill: BillNotice,
    settled: bool,
    now: datetime,
    sent: Collection[str] = (),
    steps: Sequence[ReminderStep] = DEFAULT_REMINDER_STEPS,
    send_time: time = time(9, 0),
) -> ReminderPlan:
    """The reminder steps due for ``bill`` at ``now``, given the step codes already ``sent`` (or recorded
    as skipped) for it. See the module docstring for the rules."""
    codes = [s.code for s in steps]
    if len(set(codes)) != len(codes):
        raise ValueError("reminder step codes must be unique")
    if settled:
        return ReminderPlan((), ())
    now = to_second(now)
    due_at = to_second(bill.due_at)
    fire = {s.code: step_fire_at(s, due_at, send_time) for s in steps}
    ordered = sorted(steps, key=lambda s: (fire[s.code], s.code))
    sent_set = set(sent)
    latest_sent_notice = max(
        (fire[s.code] for s in ordered if s.code in sent_set and s.kind is not ReminderKind.COLLECTION),
        default=None,
    )
    pending = [s for s in ordered if s.code not in sent_set and fire[s.code] <= now]
    due: list[ReminderStep] = []
    skipped: list[str] = []
    notices = [s for s in pending if s.kind is not ReminderKind.COLLECTION]
    for step in notices:
        stale = (
            step is not notices[-1]
            or (step.kind is ReminderKind.BEFORE_DUE and now >= due_at)
            or (latest_sent_notice is not None and fire[step.code] <= latest_sent_notice)
        )
        if stale:
            skipped.append(step.code)
        else:
            due.append(step)
    due.extend(s for s in pending if s.kind is ReminderKind.COLLECTION)
    due.sort(key=lambda s: (fire[s.code], s.code))
    return ReminderPlan(
        due=tuple(
            Reminder(
                step_code=s.code,
                kind=s.kind,
                account_no=bill.account_no,
                bill_no=bill.bill_no,
                fire_at=fire[s.code],
                text=reminder_text(bill, s),
                needs_work_order=s.kind is ReminderKind.COLLECTION,
            )
            for s in due
        ),
        skipped=tuple(skipped),
    )
