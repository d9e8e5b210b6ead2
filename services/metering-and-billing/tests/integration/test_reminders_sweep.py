"""The reminder sweep against the real PostgreSQL, with the development sender: a before-due notice is sent
once, a settled bill gets nothing, a bill 30 days overdue gets its collection step and the outbox asks for a
collection work order, a failed send is recorded and retried after its delay (and given up after the
configured attempts), stale notices are recorded as skipped, two concurrent sweeps send a step once, and an
account's reminders are listed newest first, a page at a time.

The session shares one database with the other tests, so each test works in its own far-future year
(2041, 2042, …): a sweep's due window (about 50 days) never reaches another test's bills."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from billing.adapters.notifications import DevelopmentSender, NotificationError, SentMessage
from billing.adapters.orm import Bill, BillingAccount, Receivable, ReminderRow
from billing.domain.receivables import due_instant
from billing.events import CollectionRequested
from billing.service_layer import reminders
from billing.service_layer.receivables import policy_of, to_domain
from utilis_shared.db import outbox_messages
from utilis_shared.timeutil import BUSINESS_TZ

POLICY = {"daily_rate": "0.0005", "grace_days": 0, "cap_ratio": "1", "cap_fen": None}


def local(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BUSINESS_TZ).astimezone(UTC)


def new_account_no() -> str:
    return f"8{uuid.uuid4().int % 10**11:011d}"


async def open_bill(
    session_factory,
    *,
    due: date,
    principal_fen: int = 100_000,
    status: str = "open",
    utility: str = "gas",
    cycle: str | None = None,
    period: tuple[date, date] | None = None,
) -> tuple[str, str]:
    """An account with one issued bill due on ``due`` and its receivable; returns (account no, bill no)."""
    account_no = new_account_no()
    month = date(due.year, due.month, 1)
    start, end = period or ((month - timedelta(days=1)).replace(day=1), month)  # the month before
    cycle = cycle or f"{start.year}{start.month:02d}"
    bill_no = f"{cycle}-{account_no}"
    async with session_factory() as session:
        session.add(
            BillingAccount(
                account_no=account_no,
                utility=utility,
                customer_class="residential",
                household_size=3,
                status="active",
                district="南岗区",
                last_event_at=datetime(2041, 1, 1, tzinfo=UTC),
            )
        )
        session.add(
            Bill(
                bill_no=bill_no,
                kind="bill",
                account_no=account_no,
                cycle=cycle,
                utility=utility,
                tariff_plan_code="t-plan",
                period_start=start,
                period_end=end,
                issue_date=due - timedelta(days=15),
                due_date=due,
                due_at=due_instant(due),
                total_fen=principal_fen,
                estimated=False,
                lines=[],
                late_fee_policy=POLICY,
                created_by="test",
            )
        )
        session.add(
            Receivable(
                bill_no=bill_no,
                account_no=account_no,
                utility=utility,
                principal_fen=principal_fen,
                due_at=due_instant(due),
                principal_paid_fen=principal_fen if status == "settled" else 0,
                late_fee_credited_fen=0,
                late_fee_policy=POLICY,
                status=status,
                settled_at=due_instant(due) - timedelta(days=3) if status == "settled" else None,
                version=1,
            )
        )
        await session.commit()
    return account_no, bill_no


async def rows_of(session_factory, bill_no: str) -> dict[str, ReminderRow]:
    async with session_factory() as session:
        rows = (await session.execute(select(ReminderRow).where(ReminderRow.bill_no == bill_no))).scalars()
        return {r.step_code: r for r in rows}


async def outbox_types(session_factory, account_no: str) -> list[str]:
    async with session_factory() as session:
        result = await session.execute(
            select(outbox_messages.c.event_type)
            .where(outbox_messages.c.key == account_no)
            .order_by(outbox_messages.c.seq)
        )
        return list(result.scalars())


class FlakySender(DevelopmentSender):
    """The development sender, failing while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True
        self.calls = 0

    async def send(self, **kwargs) -> SentMessage:
        self.calls += 1
        if self.failing:
            raise NotificationError("sms gateway answered 503: busy")
        return await super().send(**kwargs)


class SlowSender(DevelopmentSender):
    async def send(self, **kwargs) -> SentMessage:
        await asyncio.sleep(0.3)
        return await super().send(**kwargs)


async def test_a_bill_due_in_five_days_gets_the_before_due_notice_once(session_factory, settings) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2041, 3, 20))
    sender = DevelopmentSender()
    now = local(2041, 3, 15, 9, 30)  # 5 days before, after 09:00

    first = await reminders.sweep(session_factory, settings, sender, now=now)
    second = await reminders.sweep(session_factory, settings, sender, now=now + timedelta(hours=2))

    assert (first.sent, first.skipped, first.failed, first.collections) == (1, 0, 0, 0)
    assert (second.bills, second.sent) == (0, 0)
    assert [(m.account_no, m.template_code) for m in sender.messages] == [(account_no, "billing_due_soon")]
    message = sender.messages[0]
    assert (
        message.text
        == f"您的户号 {account_no} 的 2041年2月 燃气费 1,000.00 元将于 3月20日 到期，请及时缴纳。"
    )
    assert message.params["amount_yuan"] == "1,000.00" and message.params["due_date"] == "3月20日"
    rows = await rows_of(session_factory, bill_no)
    assert list(rows) == ["due_minus_5d"]
    row = rows["due_minus_5d"]
    assert (row.status, row.kind, row.channel, row.attempts, row.last_error) == (
        "sent",
        "before_due",
        "development",
        1,
        None,
    )
    assert row.sent_at == now.replace(microsecond=0) and row.account_no == account_no
    assert row.provider_message_id == message.provider_message_id and row.text == message.text
    assert row.fire_at == local(2041, 3, 15, 9, 0)
    assert await outbox_types(session_factory, account_no) == ["billing.reminder.dispatched"]


async def test_nothing_before_the_first_step_fires(session_factory, settings) -> None:
    _, bill_no = await open_bill(session_factory, due=date(2041, 5, 20))
    sender = DevelopmentSender()

    summary = await reminders.sweep(session_factory, settings, sender, now=local(2041, 5, 15, 8, 59))

    assert summary.sent == 0 and sender.messages == []
    assert await rows_of(session_factory, bill_no) == {}


async def test_a_settled_bill_gets_nothing(session_factory, settings) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2042, 3, 20), status="settled")
    sender = DevelopmentSender()

    for day in (15, 19, 21):
        await reminders.sweep(session_factory, settings, sender, now=local(2042, 3, day))
    await reminders.sweep(session_factory, settings, sender, now=local(2042, 4, 20))

    assert sender.messages == []
    assert await rows_of(session_factory, bill_no) == {}
    assert await outbox_types(session_factory, account_no) == []


async def test_a_bill_thirty_days_overdue_gets_the_collection_step_and_a_work_order_request(
    session_factory, settings
) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2043, 3, 20))
    sender = DevelopmentSender()
    now = local(2043, 4, 19, 9, 30)  # 30 days after the due date

    summary = await reminders.sweep(session_factory, settings, sender, now=now)

    rows = await rows_of(session_factory, bill_no)
    assert {code: r.status for code, r in rows.items()} == {
        "due_minus_5d": "skipped",
        "due_minus_1d": "skipped",
        "overdue_1d": "skipped",
        "overdue_15d": "sent",
        "collection_30d": "sent",
    }
    assert (summary.sent, summary.skipped, summary.collections) == (2, 3, 1)
    assert rows["collection_30d"].kind == "collection"
    assert all(r.text is None and r.channel is None for r in rows.values() if r.status == "skipped")
    assert sorted(await outbox_types(session_factory, account_no)) == [
        "billing.collection.requested",
        "billing.reminder.dispatched",
        "billing.reminder.dispatched",
    ]
    # The request carries what is owed now: principal plus the late fee accrued at the sweep.
    async with session_factory() as session:
        payload = (
            await session.execute(
                select(outbox_messages.c.payload).where(
                    outbox_messages.c.key == account_no,
                    outbox_messages.c.event_type == "billing.collection.requested",
                )
            )
        ).scalar_one()
        receivable = await session.get(Receivable, bill_no)
    data = CollectionRequested.model_validate(json.loads(payload)["data"])
    expected = to_domain(receivable, []).amount_due_fen(now, policy_of(POLICY))
    assert expected > 100_000
    assert data.amount_due_fen == expected
    assert (data.bill_no, data.step_code, data.due_date, data.overdue_days) == (
        bill_no,
        "collection_30d",
        date(2043, 3, 20),
        30,
    )
    collection_text = next(m.text for m in sender.messages if m.template_code == "billing_collection")
    assert collection_text.endswith("已逾期 30 天未缴清，工作人员将与您联系，请尽快缴纳。")

    again = await reminders.sweep(session_factory, settings, sender, now=now + timedelta(days=1))
    assert (again.sent, again.collections) == (0, 0)
    assert (await outbox_types(session_factory, account_no)).count("billing.collection.requested") == 1


async def test_a_failed_send_is_recorded_and_retried_after_its_delay(session_factory, settings) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2044, 3, 20))
    sender = FlakySender()
    now = local(2044, 3, 19, 9, 5)  # the day before the due date

    failed = await reminders.sweep(session_factory, settings, sender, now=now)
    row = (await rows_of(session_factory, bill_no))["due_minus_1d"]
    assert (failed.sent, failed.failed) == (0, 1)
    assert (row.status, row.attempts, row.channel) == ("failed", 1, "development")
    assert row.last_error == "NotificationError: sms gateway answered 503: busy"
    assert await outbox_types(session_factory, account_no) == []

    sender.failing = False
    too_soon = await reminders.sweep(session_factory, settings, sender, now=now + timedelta(minutes=4))
    assert (too_soon.bills, sender.calls) == (0, 1)

    retried = await reminders.sweep(session_factory, settings, sender, now=now + timedelta(minutes=6))
    row = (await rows_of(session_factory, bill_no))["due_minus_1d"]
    assert (retried.sent, sender.calls) == (1, 2)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert row.sent_at == (now + timedelta(minutes=6)).replace(microsecond=0)
    assert await outbox_types(session_factory, account_no) == ["billing.reminder.dispatched"]


async def test_a_step_that_keeps_failing_is_given_up_after_the_configured_attempts(
    session_factory, settings
) -> None:
    configured = settings.model_copy(update={"reminder_max_attempts": 3, "reminder_retry_minutes": 0})
    _, bill_no = await open_bill(session_factory, due=date(2045, 3, 20))
    sender = FlakySender()
    now = local(2045, 3, 15, 9, 1)

    for minute in range(5):
        await reminders.sweep(session_factory, configured, sender, now=now + timedelta(minutes=minute))

    row = (await rows_of(session_factory, bill_no))["due_minus_5d"]
    assert (row.status, row.attempts, sender.calls) == ("failed", 3, 3)


async def test_a_failed_collection_step_asks_for_the_work_order_once_and_retries_the_message(
    session_factory, settings
) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2046, 3, 20))
    sender = FlakySender()
    now = local(2046, 4, 19, 9, 30)

    await reminders.sweep(session_factory, settings, sender, now=now)
    assert {
        c: r.status for c, r in (await rows_of(session_factory, bill_no)).items() if r.status != "skipped"
    } == {
        "overdue_15d": "failed",
        "collection_30d": "failed",
    }
    assert await outbox_types(session_factory, account_no) == ["billing.collection.requested"]

    sender.failing = False
    await reminders.sweep(session_factory, settings, sender, now=now + timedelta(hours=1))
    rows = await rows_of(session_factory, bill_no)
    assert (rows["overdue_15d"].status, rows["collection_30d"].status) == ("sent", "sent")
    assert sorted(await outbox_types(session_factory, account_no)) == [
        "billing.collection.requested",
        "billing.reminder.dispatched",
        "billing.reminder.dispatched",
    ]


async def test_stale_notices_are_recorded_as_skipped_and_never_sent(session_factory, settings) -> None:
    account_no, bill_no = await open_bill(
        session_factory,
        due=date(2047, 12, 20),
        utility="heating",
        cycle="2047S",
        period=(date(2047, 11, 15), date(2048, 3, 16)),
    )
    sender = DevelopmentSender()

    # The scheduler was down until two days after the due date: only the newest notice goes out. It names
    # what is owed now: 1,000.00 plus 34 hours of late fee at 0.05 %/day (70.83 fen → 0.71).
    summary = await reminders.sweep(session_factory, settings, sender, now=local(2047, 12, 22))
    assert (summary.sent, summary.skipped) == (1, 2)
    rows = await rows_of(session_factory, bill_no)
    assert {c: r.status for c, r in rows.items()} == {
        "due_minus_5d": "skipped",
        "due_minus_1d": "skipped",
        "overdue_1d": "sent",
    }
    assert [m.text for m in sender.messages] == [
        f"您的户号 {account_no} 的 2047—2048供暖季 供暖费 1,000.71 元已于 12月20日 到期，尚未缴清，"
        "逾期将按日加收滞纳金，请尽快缴纳。"
    ]

    later = await reminders.sweep(session_factory, settings, sender, now=local(2047, 12, 23))
    assert (later.sent, later.skipped, len(sender.messages)) == (0, 0, 1)


async def test_two_concurrent_sweeps_send_a_step_once(session_factory, settings) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2048, 3, 20))
    first, second = SlowSender(), SlowSender()
    now = local(2048, 3, 15, 9, 30)

    summaries = await asyncio.gather(
        reminders.sweep(session_factory, settings, first, now=now),
        reminders.sweep(session_factory, settings, second, now=now),
    )

    assert len(first.messages) + len(second.messages) == 1
    assert sorted(s.sent for s in summaries) == [0, 1]
    assert sum(s.lost_races for s in summaries) == 1
    assert (await rows_of(session_factory, bill_no))["due_minus_5d"].status == "sent"
    assert await outbox_types(session_factory, account_no) == ["billing.reminder.dispatched"]


async def test_an_accounts_reminders_are_listed_newest_first_a_page_at_a_time(
    session_factory, settings
) -> None:
    account_no, bill_no = await open_bill(session_factory, due=date(2049, 3, 20))
    sender = DevelopmentSender()
    for when in (local(2049, 3, 15), local(2049, 3, 19), local(2049, 3, 21)):
        await reminders.sweep(session_factory, settings, sender, now=when)
        await asyncio.sleep(0.01)  # distinct created_at

    async with session_factory() as session:
        first = await reminders.reminders_of(session, account_no, 2)
        second = await reminders.reminders_of(session, account_no, 2, cursor=first.next_cursor)
        other = await reminders.reminders_of(session, new_account_no(), 2)

    assert [r.step_code for r in first.items] == ["overdue_1d", "due_minus_1d"]
    assert [r.step_code for r in second.items] == ["due_minus_5d"]
    assert first.next_cursor is not None and second.next_cursor is None
    assert all(r.bill_no == bill_no and r.status == "sent" for r in first.items + second.items)
    assert other.items == [] and other.next_cursor is None


async def test_a_cursor_that_was_not_issued_is_refused(session_factory) -> None:
    from utilis_shared.errors import Problem

    async with session_factory() as session:
        with pytest.raises(Problem) as caught:
            await reminders.reminders_of(session, "800000000001", 10, cursor="not-a-cursor")
    assert caught.value.code == "invalid_cursor"
