"""Payment reminders (缴费提醒), sent: the scheduler's sweep over open bills, and the account's reminder list.

The rules (which steps are due, which are stale, the Chinese texts) are the domain's
(:mod:`billing.domain.reminders`); this module finds the bills, records each step against the account in
``reminders``, sends through a :class:`~billing.adapters.notifications.NotificationSender` and writes the
events to the outbox.

**The sweep** (:func:`sweep`, the ``scheduler`` process, every ``reminder_sweep_seconds``):

1. Reads open receivables whose due instant lies in a bounded window, ``now − (largest step offset +
   reminder_window_margin_days)`` to ``now + (earliest before-due offset + 1 day)``, and which have at least
   one configured step whose fire time has passed and which is not yet recorded (or is ``failed`` and
   retriable now). Keyset pages of ``reminder_sweep_batch_size``; each bill is looked at once per sweep, at
   most ``limit`` bills per sweep (``SweepSummary.more`` says some were left for the next one).
2. Each bill is **its own transaction**: the receivable, its postings (the amount due is principal plus the
   late fee accrued at ``now``, by the domain), the bill (for the period label) and the steps already
   recorded go to :func:`~billing.domain.reminders.plan_reminders`. A settled bill gets nothing.
3. Superseded steps are recorded ``skipped`` (never sent later). Each due step is first *claimed* (the row
   inserted with ``INSERT … ON CONFLICT (bill_no, step_code) DO NOTHING``, or a retriable ``failed`` row
   updated on its ``attempts``), then sent; only the claimer sends. The row ends ``sent`` (channel,
   provider message id, text, ``sent_at``) or ``failed`` (``attempts``, ``last_error``).
4. Events, in the same transaction (outbox): ``billing.reminder.dispatched`` per sent step;
   ``billing.collection.requested`` once per collection step, when it is first recorded, *whether or not*
   its message went out (the work order must not depend on the SMS gateway); a retried collection step
   does not ask again.

**Failures**: a failed send is retried by a later sweep after ``reminder_retry_minutes × 2^(attempts−1)``
(the row's ``updated_at`` is the last attempt), up to ``reminder_max_attempts`` attempts; it then stays
``failed``. A failed before-due or overdue notice that a newer notice supersedes becomes ``skipped``.

**Concurrency and delivery (a decision)**: two schedulers may sweep at once. The unique
``(bill_no, step_code)`` makes a step recorded once: the second claimer's insert waits for the first
transaction and then finds the row (a retry claim re-checks ``attempts`` the same way), so it sends nothing.
The table has no "sending" state, so the claim, the send and the outcome share one transaction; a crash (or
a database error) after the provider accepted a message but before the commit rolls the claim back and the
step is sent again by the next sweep: sending is **at least once**. Every send carries an
``Idempotency-Key`` derived from (bill no, step code), the same on every resend, so a gateway that honours
it delivers once. Holding the claim while the gateway answers costs at most ``notification_timeout_seconds``
per step and locks nothing but the new reminder row (payments never wait for it).
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.adapters.notifications import NotificationSender, idempotency_key
from billing.adapters.orm import Bill, PostingRow, Receivable, ReminderRow
from billing.domain.receivables import due_date_of, to_second
from billing.domain.reminders import (
    DEFAULT_REMINDER_STEPS,
    FEE_NAMES,
    BillNotice,
    Reminder,
    ReminderKind,
    ReminderStep,
    Utility,
    format_yuan,
    month_label,
    plan_reminders,
    step_fire_at,
)
from billing.events import CollectionRequested, ReminderSent, catalog
from billing.service_layer.errors import invalid_field
from billing.service_layer.receivables import policy_of, to_domain
from billing.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.timeutil import business_date_of

log = logging.getLogger(__name__)

_SEASON_CYCLE = re.compile(r"^[0-9]{4}S")  # 2026S: the heating season starting in 2026
_LAST_ERROR_MAX = 500


# ----------------------------------------------------------------------------------- configuration
def reminder_steps(settings: Settings) -> tuple[ReminderStep, ...]:
    """The configured steps (``reminder_steps``), or the domain's defaults when none are configured."""
    if not settings.reminder_steps:
        return DEFAULT_REMINDER_STEPS
    steps = []
    for item in settings.reminder_steps:
        try:
            steps.append(
                ReminderStep(
                    code=str(item["code"]),
                    offset_days=int(item["offset_days"]),
                    kind=ReminderKind(str(item["kind"])),
                )
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"invalid reminder step {item!r}: {exc}") from exc
    codes = [s.code for s in steps]
    if len(set(codes)) != len(codes):
        raise ValueError("reminder step codes must be unique")
    return tuple(steps)


def send_time_of(settings: Settings) -> time:
    hours, minutes = settings.reminder_send_time.split(":")
    return time(int(hours), int(minutes))


def due_window(steps: Sequence[ReminderStep], now: datetime, margin_days: int) -> tuple[datetime, datetime]:
    """The due instants a sweep at ``now`` looks at: a bill due later has no step fired yet; one due
    earlier is past its last step by more than the margin."""
    latest = max((s.offset_days for s in steps), default=0)
    earliest = min((s.offset_days for s in steps), default=0)
    low = now - timedelta(days=max(latest, 0) + margin_days + 1)
    high = now + timedelta(days=max(-earliest, 0) + 1)
    return low, high


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """How long after its last attempt a failed step is tried again."""
    return timedelta(minutes=settings.reminder_retry_minutes * 2 ** max(attempts - 1, 0))


# --------------------------------------------------------------------------------- presentation
def period_label(
    *,
    utility: str,
    kind: str,
    cycle: str | None,
    period_start: date | None,
    period_end: date | None,  # excluded
    issue_date: date,
) -> str:
    """The period a reminder names: ``2026年11月`` (a month), ``2026年11—12月`` (two months),
    ``2026—2027供暖季`` (a heating season: a season cycle such as ``2026S``, or a heating period longer than
    two months), and for a debit note the same followed by ``补收`` (its issue month when it has no
    period)."""
    if period_start is None or period_end is None or period_end <= period_start:
        label = month_label(issue_date.year, issue_date.month)
    else:
        last = period_end - timedelta(days=1)
        season = (cycle is not None and _SEASON_CYCLE.match(cycle) is not None) or (
            utility == Utility.HEATING.value and (last - period_start).days > 62
        )
        if season:
            years = (
                f"{period_start.year}—{last.year}"
                if last.year != period_start.year
                else f"{period_start.year}"
            )
            label = f"{years}供暖季"
        elif (period_start.year, period_start.month) == (last.year, last.month):
            label = month_label(period_start.year, period_start.month)
        elif period_start.year == last.year:
            label = f"{period_start.year}年{period_start.month}—{last.month}月"
        else:
            label = f"{period_start.year}年{period_start.month}月—{last.year}年{last.month}月"
    return f"{label}补收" if kind == "debit_note" else label


def template_params(notice: BillNotice, step: ReminderStep) -> dict[str, str]:
    """The template parameters of a reminder (SMS / WeChat templates): the pieces of the domain's text."""
    due = due_date_of(notice.due_at)
    params = {
        "account_no": notice.account_no,
        "period": notice.period_label,
        "fee_name": FEE_NAMES[notice.utility],
        "amount_yuan": format_yuan(notice.amount_due_fen),
        "due_date": f"{due.month}月{due.day}日",
    }
    if step.kind is ReminderKind.COLLECTION:
        params["overdue_days"] = str(step.offset_days)
    return params


# ---------------------------------------------------------------------------------------- sweep
@dataclass
class SweepSummary:
    bills: int = 0  # bills looked at
    sent: int = 0
    failed: int = 0  # send attempts that failed
    skipped: int = 0  # steps recorded as superseded
    collections: int = 0  # collection work orders asked for
    lost_races: int = 0  # steps another sweep claimed first
    errors: int = 0  # bills whose transaction failed (retried by the next sweep)
    more: bool = False  # the limit stopped the sweep; the next one goes on


_CANDIDATES = text(
    """
    SELECT r.bill_no, r.due_at
    FROM receivables r
    WHERE r.status = 'open'
      AND r.due_at >= :low AND r.due_at <= :high
      AND (r.due_at, r.bill_no) > (:after_due_at, :after_bill_no)
      AND EXISTS (
        SELECT 1
        FROM unnest(CAST(:codes AS text[]), CAST(:offsets AS int[])) AS s(code, offset_days)
        WHERE (((date_trunc('second', r.due_at) - interval '1 second') AT TIME ZONE 'Asia/Shanghai')::date
                 + s.offset_days + CAST(:send_time AS time)) AT TIME ZONE 'Asia/Shanghai' <= :now
          AND NOT EXISTS (
            SELECT 1 FROM reminders m
            WHERE m.bill_no = r.bill_no AND m.step_code = s.code
              AND (m.status <> 'failed'
                   OR m.attempts >= :max_attempts
                   OR m.updated_at
                      + make_interval(mins => :retry_minutes * power(2, greatest(m.attempts - 1, 0))::int)
                      > :now)
          )
      )
    ORDER BY r.due_at, r.bill_no
    LIMIT :batch
    """
)


async def sweep(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    sender: NotificationSender,
    *,
    now: datetime,
    limit: int = 1000,
) -> SweepSummary:
    """Send the reminder steps due at ``now`` (see the module docstring); at most ``limit`` bills."""
    now = to_second(now)
    steps = reminder_steps(settings)
    send_time = send_time_of(settings)
    low, high = due_window(steps, now, settings.reminder_window_margin_days)
    summary = SweepSummary()
    after: tuple[datetime, str] = (low - timedelta(seconds=1), "")
    while summary.bills < limit:
        batch = min(settings.reminder_sweep_batch_size, limit - summary.bills)
        async with session_factory() as session:
            rows = (
                await session.execute(
                    _CANDIDATES,
                    {
                        "low": low,
                        "high": high,
                        "after_due_at": after[0],
                        "after_bill_no": after[1],
                        "codes": [s.code for s in steps],
                        "offsets": [s.offset_days for s in steps],
                        "send_time": send_time,
                        "now": now,
                        "max_attempts": settings.reminder_max_attempts,
                        "retry_minutes": settings.reminder_retry_minutes,
                        "batch": batch,
                    },
                )
            ).all()
        for bill_no, _due_at in rows:
            summary.bills += 1
            try:
                await _remind_bill(
                    session_factory,
                    settings,
                    sender,
                    bill_no,
                    now=now,
                    steps=steps,
                    send_time=send_time,
                    summary=summary,
                )
            except Exception:  # one bill's failure never stops the others; the next sweep retries it
                summary.errors += 1
                log.exception("reminder sweep failed for a bill", extra={"bill_no": bill_no})
        if len(rows) < batch:
            break
        after = (rows[-1].due_at, rows[-1].bill_no)
    else:
        summary.more = True
    return summary


async def _remind_bill(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    sender: NotificationSender,
    bill_no: str,
    *,
    now: datetime,
    steps: Sequence[ReminderStep],
    send_time: time,
    summary: SweepSummary,
) -> None:
    async with UnitOfWork(session_factory, settings) as uow:
        session = uow.session
        row = await session.get(Receivable, bill_no)
        bill = (await session.execute(select(Bill).where(Bill.bill_no == bill_no))).scalar_one_or_none()
        if row is None or bill is None or row.status != "open":
            return
        postings = (await session.execute(select(PostingRow).where(PostingRow.bill_no == bill_no))).scalars()
        receivable = to_domain(row, postings)
        amount_due = receivable.amount_due_fen(now, policy_of(row.late_fee_policy))
        notice = BillNotice(
            account_no=row.account_no,
            bill_no=bill_no,
            utility=Utility(row.utility),
            period_label=period_label(
                utility=row.utility,
                kind=bill.kind,
                cycle=bill.cycle,
                period_start=bill.period_start,
                period_end=bill.period_end,
                issue_date=bill.issue_date,
            ),
            amount_due_fen=amount_due,
            due_at=row.due_at,
        )
        recorded = {
            r.step_code: r
            for r in (
                await session.execute(select(ReminderRow).where(ReminderRow.bill_no == bill_no))
            ).scalars()
        }
        retriable = {
            code: r
            for code, r in recorded.items()
            if r.status == "failed"
            and r.attempts < settings.reminder_max_attempts
            and r.updated_at + retry_delay(settings, r.attempts) <= now
        }
        plan = plan_reminders(
            bill=notice,
            settled=amount_due == 0,
            now=now,
            sent=[code for code in recorded if code not in retriable],
            steps=steps,
            send_time=send_time,
        )
        by_code = {s.code: s for s in steps}
        for code in plan.skipped:
            step = by_code[code]
            if code in retriable:
                result = await session.execute(
                    update(ReminderRow)
                    .where(
                        ReminderRow.id == retriable[code].id,
                        ReminderRow.status == "failed",
                        ReminderRow.attempts == retriable[code].attempts,
                    )
                    .values(status="skipped", updated_at=now)
                    .returning(ReminderRow.id)
                )
            else:
                result = await session.execute(
                    insert(ReminderRow)
                    .values(
                        account_no=notice.account_no,
                        bill_no=bill_no,
                        step_code=code,
                        kind=step.kind.value,
                        status="skipped",
                        fire_at=step_fire_at(step, notice.due_at, send_time),
                        attempts=0,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["bill_no", "step_code"])
                    .returning(ReminderRow.id)
                )
            if result.first() is not None:
                summary.skipped += 1
        for reminder in plan.due:
            await _send_step(
                uow,
                sender,
                settings,
                by_code[reminder.step_code],
                reminder,
                notice,
                retry=retriable.get(reminder.step_code),
                now=now,
                summary=summary,
            )
        await uow.commit()


async def _send_step(
    uow: UnitOfWork,
    sender: NotificationSender,
    settings: Settings,
    step: ReminderStep,
    reminder: Reminder,
    notice: BillNotice,
    *,
    retry: ReminderRow | None,
    now: datetime,
    summary: SweepSummary,
) -> None:
    session = uow.session
    # Claim the step: only the transaction that inserted the row (or moved a failed row's attempts on)
    # sends; a concurrent sweep waits on the row and then finds it taken.
    if retry is None:
        claimed = await session.execute(
            insert(ReminderRow)
            .values(
                account_no=notice.account_no,
                bill_no=notice.bill_no,
                step_code=step.code,
                kind=step.kind.value,
                status="failed",  # until the send succeeds; never committed in this state unless it fails
                text=reminder.text,
                fire_at=reminder.fire_at,
                attempts=1,
                last_error="sending",
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["bill_no", "step_code"])
            .returning(ReminderRow.id)
        )
    else:
        claimed = await session.execute(
            update(ReminderRow)
            .where(
                ReminderRow.id == retry.id,
                ReminderRow.status == "failed",
                ReminderRow.attempts == retry.attempts,
            )
            .values(attempts=retry.attempts + 1, text=reminder.text, updated_at=now)
            .returning(ReminderRow.id)
        )
    row_id = claimed.scalar_one_or_none()
    if row_id is None:
        summary.lost_races += 1
        return
    if reminder.needs_work_order and retry is None:
        uow.emit(
            catalog.build(
                CollectionRequested(
                    account_no=notice.account_no,
                    bill_no=notice.bill_no,
                    step_code=step.code,
                    amount_due_fen=notice.amount_due_fen,
                    due_date=due_date_of(notice.due_at),
                    overdue_days=(business_date_of(now) - due_date_of(notice.due_at)).days,
                ),
                subject=notice.account_no,
            )
        )
        summary.collections += 1
    try:
        message = await sender.send(
            account_no=notice.account_no,
            text=reminder.text,
            template_code=settings.notification_templates.get(step.kind.value, step.kind.value),
            params=template_params(notice, step),
            idempotency_key=idempotency_key(notice.bill_no, step.code),
        )
    except Exception as exc:  # any sender failure: recorded, retried by a later sweep
        await session.execute(
            update(ReminderRow)
            .where(ReminderRow.id == row_id)
            .values(
                channel=sender.channel,
                last_error=f"{type(exc).__name__}: {exc}"[:_LAST_ERROR_MAX],
                updated_at=now,
            )
        )
        summary.failed += 1
        log.warning(
            "reminder not sent",
            extra={"bill_no": notice.bill_no, "step_code": step.code, "error": type(exc).__name__},
        )
        return
    await session.execute(
        update(ReminderRow)
        .where(ReminderRow.id == row_id)
        .values(
            status="sent",
            channel=message.channel,
            provider_message_id=message.provider_message_id,
            sent_at=now,
            last_error=None,
            updated_at=now,
        )
    )
    uow.emit(
        catalog.build(
            ReminderSent(
                account_no=notice.account_no,
                bill_no=notice.bill_no,
                step_code=step.code,
                kind=step.kind.value,
                channel=message.channel,
                sent_at=now,
            ),
            subject=notice.account_no,
        )
    )
    summary.sent += 1


# ----------------------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class ReminderPage:
    items: list[ReminderRow]
    next_cursor: str | None


def _encode_cursor(row: ReminderRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        created, row_id = raw.split("|")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_field("cursor", "invalid_cursor", "The cursor is not one this API returned.") from exc


async def reminders_of(
    session: AsyncSession, account_no: str, limit: int, *, cursor: str | None = None
) -> ReminderPage:
    """An account's recorded reminders, newest first (sent, skipped and failed), a page at a time."""
    stmt = select(ReminderRow).where(ReminderRow.account_no == account_no)
    if cursor is not None:
        at, row_id = _decode_cursor(cursor)
        stmt = stmt.where(
            (ReminderRow.created_at < at) | ((ReminderRow.created_at == at) & (ReminderRow.id < row_id))
        )
    rows = list(
        (
            await session.execute(
                stmt.order_by(ReminderRow.created_at.desc(), ReminderRow.id.desc()).limit(limit + 1)
            )
        ).scalars()
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return ReminderPage(items=rows[:limit], next_cursor=next_cursor)
