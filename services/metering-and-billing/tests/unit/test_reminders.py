"""Reminder steps (缴费提醒): which steps are due now, never twice, none for settled bills, Chinese texts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.receivables import due_instant
from billing.domain.reminders import (
    DEFAULT_REMINDER_STEPS,
    BillNotice,
    ReminderKind,
    ReminderStep,
    Utility,
    format_yuan,
    month_label,
    plan_reminders,
    step_fire_at,
)
from utilis_shared.timeutil import BUSINESS_TZ

DUE = due_instant(date(2026, 11, 30))
NOTICE = BillNotice(
    account_no="1000000017",
    bill_no="B202611-0001",
    utility=Utility.HEATING,
    period_label=month_label(2026, 11),
    amount_due_fen=207_600,
    due_at=DUE,
)


def local(y: int, m: int, d: int, hh: int = 9, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=BUSINESS_TZ)


def codes(plan) -> list[str]:
    return [r.step_code for r in plan.due]


@pytest.mark.parametrize(
    ("fen", "text"),
    [(207_600, "2,076.00"), (0, "0.00"), (5, "0.05"), (123_456_789, "1,234,567.89"), (-1050, "-10.50")],
)
def test_format_yuan(fen: int, text: str) -> None:
    assert format_yuan(fen) == text


def test_format_yuan_refuses_floats() -> None:
    with pytest.raises(TypeError):
        format_yuan(2076.0)  # type: ignore[arg-type]


def test_default_schedule_for_a_bill_due_on_november_30() -> None:
    fire = {s.code: step_fire_at(s, DUE) for s in DEFAULT_REMINDER_STEPS}
    assert fire == {
        "due_minus_5d": local(2026, 11, 25),
        "due_minus_1d": local(2026, 11, 29),
        "overdue_1d": local(2026, 12, 1),
        "overdue_15d": local(2026, 12, 15),
        "collection_30d": local(2026, 12, 30),
    }
    assert fire["due_minus_5d"] == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert step_fire_at(DEFAULT_REMINDER_STEPS[0], DUE, send_time=time(18, 30)) == local(2026, 11, 25, 18, 30)


def test_five_days_before_due_text() -> None:
    plan = plan_reminders(bill=NOTICE, settled=False, now=local(2026, 11, 25, 9, 0, 0))
    assert codes(plan) == ["due_minus_5d"] and plan.skipped == ()
    (r,) = plan.due
    assert r.text == "您的户号 1000000017 的 2026年11月 供暖费 2,076.00 元将于 11月30日 到期，请及时缴纳。"
    assert r.kind is ReminderKind.BEFORE_DUE and not r.needs_work_order
    assert (r.account_no, r.bill_no) == ("1000000017", "B202611-0001")


def test_nothing_one_second_before_the_first_step() -> None:
    plan = plan_reminders(bill=NOTICE, settled=False, now=local(2026, 11, 25, 8, 59, 59))
    assert plan.due == () and plan.skipped == ()


def test_a_step_already_sent_is_not_returned_again() -> None:
    now = local(2026, 11, 27)
    assert codes(plan_reminders(bill=NOTICE, settled=False, now=now)) == ["due_minus_5d"]
    assert plan_reminders(bill=NOTICE, settled=False, now=now, sent={"due_minus_5d"}).due == ()


def test_settled_bill_gets_no_reminder() -> None:
    for now in (local(2026, 11, 25), local(2026, 12, 2), local(2027, 1, 31)):
        plan = plan_reminders(bill=NOTICE, settled=True, now=now)
        assert plan.due == () and plan.skipped == ()


def test_overdue_notice_text() -> None:
    plan = plan_reminders(
        bill=NOTICE, settled=False, now=local(2026, 12, 1, 10), sent={"due_minus_5d", "due_minus_1d"}
    )
    assert codes(plan) == ["overdue_1d"]
    assert plan.due[0].text == (
        "您的户号 1000000017 的 2026年11月 供暖费 2,076.00 元已于 11月30日 到期，尚未缴清，"
        "逾期将按日加收滞纳金，请尽快缴纳。"
    )


def test_before_due_notice_is_never_sent_after_the_due_time() -> None:
    # The sender was down from 11-28 to 12-01 00:30 local: "将于…到期" would be false now.
    plan = plan_reminders(bill=NOTICE, settled=False, now=local(2026, 12, 1, 0, 30), sent={"due_minus_5d"})
    assert plan.due == () and plan.skipped == ("due_minus_1d",)


def test_catch_up_sends_only_the_latest_notice_and_skips_older_ones() -> None:
    plan = plan_reminders(bill=NOTICE, settled=False, now=local(2026, 12, 20))
    assert codes(plan) == ["overdue_15d"]
    assert plan.skipped == ("due_minus_5d", "due_minus_1d", "overdue_1d")


def test_notice_older_than_one_already_sent_is_skipped() -> None:
    plan = plan_reminders(bill=NOTICE, settled=False, now=local(2026, 12, 20), sent={"overdue_15d"})
    assert plan.due == () and set(plan.skipped) == {"due_minus_5d", "due_minus_1d", "overdue_1d"}


def test_collection_step_asks_for_a_work_order_and_is_never_skipped() -> None:
    plan = plan_reminders(bill=NOTICE, settled=False, now=local(2027, 1, 15))
    assert codes(plan) == ["overdue_15d", "collection_30d"]
    collection = plan.due[-1]
    assert collection.kind is ReminderKind.COLLECTION and collection.needs_work_order
    assert collection.text == (
        "您的户号 1000000017 的 2026年11月 供暖费 2,076.00 元已逾期 30 天未缴清，"
        "工作人员将与您联系，请尽快缴纳。"
    )
    again = plan_reminders(
        bill=NOTICE, settled=False, now=local(2027, 1, 16), sent={"overdue_15d", "collection_30d"}
    )
    assert again.due == ()


def test_gas_bill_text_uses_the_gas_fee_name() -> None:
    gas = BillNotice(
        "2000000001", "G1", Utility.GAS, month_label(2026, 3), 12_345, due_instant(date(2026, 4, 15))
    )
    (r,) = plan_reminders(bill=gas, settled=False, now=local(2026, 4, 14, 9)).due
    assert r.text == "您的户号 2000000001 的 2026年3月 燃气费 123.45 元将于 4月15日 到期，请及时缴纳。"


def test_custom_steps_and_invalid_steps() -> None:
    steps = (ReminderStep("d-3", -3, ReminderKind.BEFORE_DUE), ReminderStep("o+7", 7, ReminderKind.OVERDUE))
    assert codes(plan_reminders(bill=NOTICE, settled=False, now=local(2026, 11, 27), steps=steps)) == ["d-3"]
    with pytest.raises(ValueError, match="unique"):
        plan_reminders(bill=NOTICE, settled=False, now=local(2026, 11, 27), steps=steps + steps[:1])
    with pytest.raises(ValueError):
        ReminderStep("bad", 2, ReminderKind.BEFORE_DUE)
    with pytest.raises(ValueError):
        ReminderStep("bad", -2, ReminderKind.OVERDUE)


# --------------------------------------------------------------------------------------- properties
all_codes = [s.code for s in DEFAULT_REMINDER_STEPS]


@given(
    offset=st.integers(min_value=-10 * 86_400, max_value=60 * 86_400),
    sent=st.sets(st.sampled_from(all_codes)),
    settled=st.booleans(),
)
def test_plan_properties(offset: int, sent: set[str], settled: bool) -> None:
    now = DUE + timedelta(seconds=offset)
    plan = plan_reminders(bill=NOTICE, settled=settled, now=now, sent=sent)
    due = codes(plan)
    if settled:
        assert due == [] and plan.skipped == ()
        return
    # Never the same step twice, never a step not yet reached, at most one customer notice at a time.
    assert not (set(due) & sent) and not (set(plan.skipped) & sent) and not (set(due) & set(plan.skipped))
    assert all(r.fire_at <= now for r in plan.due)
    assert sum(1 for r in plan.due if r.kind is not ReminderKind.COLLECTION) <= 1
    # Nothing reached is left undecided: every reached unsent step is either due or skipped.
    reached = {s.code for s in DEFAULT_REMINDER_STEPS if step_fire_at(s, DUE) <= now}
    assert set(due) | set(plan.skipped) == reached - sent
    # A before-due notice only before the due time.
    assert all(r.kind is not ReminderKind.BEFORE_DUE or now < DUE for r in plan.due)
    # Replaying with what was decided recorded yields nothing new.
    replay = plan_reminders(bill=NOTICE, settled=False, now=now, sent=sent | set(due) | set(plan.skipped))
    assert replay.due == () and replay.skipped == ()
