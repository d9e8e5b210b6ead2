"""Use cases of meter readings (抄表): recording readings from meter readers, remote-meter batches, IoT
gateways and residents; the review queue; estimates and their true-up; the meters kept from
``customer.events``; and :func:`period_volumes`, which the billing runs call.

The rules are the domain's (``domain/readings.py``); this module stores and orders them:

* **Billable readings** are the ``accepted`` ones (any source, estimates and the meter's installation
  reading included). They are appended to an account in strictly increasing ``read_at`` order, and each keeps
  its ``volume`` from the previous billable reading: the domain's consumption (normal, rollover, or across a
  recorded replacement, each meter's part × its multiplier), an estimate's consumption, or, for the first
  actual reading after estimates, the true-up correction (actual − estimated; negative: a credit). A
  period's volume is therefore the sum of the volumes of the billable readings inside it, one query for any
  number of accounts.
* Every write takes a row lock on the account(s) (``billing_accounts ... FOR UPDATE``, in account order), so
  concurrent entries, batches, IoT events, approvals and estimates of one account are serialised and the
  order above holds.
* A reading the domain flags for review (``needs_review``), or one not later than the latest billable
  reading, goes to the review queue (``pending_review``) and is not billable. Approving it re-checks it
  against the history as it is *then*; it must still be later than every billable reading (else 409
  ``newer_reading_accepted``); a reading whose consumption the domain cannot determine (value decreased,
  unrecorded replacement) needs the reviewer's ``consumption``.
* Idempotency: an ``external_id`` (bulk items, IoT events) is unique; a re-sent item answers ``duplicate``
  with the stored reading. IoT events also go through the consumer's inbox.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, any_, func, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters.orm import BillingAccount, Meter, MeterReadingRow, ReadingTrueUp
from billing.domain.readings import (
    FLAG_CATALOGUE,
    ConsumptionKind,
    Estimate,
    EstimationMethod,
    FlagCode,
    MeteringConfig,
    MeterReading,
    MeterReplacement,
    NotEnoughHistory,
    ReadingCheck,
    ReadingFlag,
    ReadingSource,
    check_reading,
    estimate_reading,
    periods_from_readings,
    true_up,
)
from billing.service_layer.errors import AccountNotFound, conflict, invalid_field
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import NotFound, Problem
from utilis_shared.events import Event
from utilis_shared.ids import new_id
from utilis_shared.inbox import HandlerRegistry
from utilis_shared.settings import ServiceSettings
from utilis_shared.timeutil import BUSINESS_TZ, utcnow

log = logging.getLogger(__name__)

registry = HandlerRegistry()

IOT_EVENT_TYPE = "metering.reading.reported"
VOLUME_QUANTUM = Decimal("0.001")
# Billable readings loaded per account to check a new one: 12 past periods need 13 actual readings; the
# rest leaves room for estimates and the installation reading.
HISTORY_ROWS = 40
INSTALLATION = "installation"


# --------------------------------------------------------------------------------------------------
# Errors


class ReadingNotFound(NotFound):
    code = "reading_not_found"


class ReadingRefused(Exception):
    """An item the service will not store (bulk: a per-item ``rejected`` result; API: a 4xx)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.field = code, message, field

    def problem(self) -> Problem:
        status = 404 if self.code == "account_not_found" else 422
        errors = [{"field": self.field, "message": self.message, "type": self.code}] if self.field else None
        return Problem(self.message, status=status, code=self.code, errors=errors)


# --------------------------------------------------------------------------------------------------
# Configuration and time


def metering_config(settings: ServiceSettings) -> MeteringConfig:
    cycle = getattr(settings, "readings_expected_cycle_days", None)
    return MeteringConfig(
        mad_threshold=getattr(settings, "readings_mad_threshold", Decimal("3.5")),
        min_periods=getattr(settings, "readings_min_periods", 4),
        history_periods=getattr(settings, "readings_history_periods", 12),
        expected_cycle=timedelta(days=cycle) if cycle else None,
        cycle_tolerance=getattr(settings, "readings_cycle_tolerance", Decimal("0.5")),
    )


def business_start(day: date) -> datetime:
    """00:00 Asia/Shanghai of ``day``, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=BUSINESS_TZ).astimezone(UTC)


def register_digits(settings: ServiceSettings, kind: str, initial: Decimal) -> int:
    digits = getattr(settings, "meter_register_digits", {}).get(
        kind, getattr(settings, "meter_register_digits_default", 8)
    )
    while digits < 15 and initial >= Decimal(10) ** digits:
        digits += 1
    return digits


# --------------------------------------------------------------------------------------------------
# Meters, kept from customer.events (called by service_layer/accounts.py)


async def keep_meter(
    uow: UnitOfWork,
    account_no: str,
    meter: dict[str, Any],
    event_time: datetime,
    *,
    installation_reading: bool = True,
) -> None:
    """Insert or refresh a meter (``customer.account.opened`` / ``customer.meter.installed``). A meter new
    to an account without any billable reading gets its installation reading (the initial value at 00:00
    of the installation date), the base of the account's first consumption. A replacement meter gets none:
    its initial value is in the replacement record."""
    initial = Decimal(str(meter["initial_reading"]))
    installed_on = date.fromisoformat(str(meter["installed_on"]))
    values = {
        "meter_id": uuid.UUID(str(meter["meter_id"])),
        "account_no": account_no,
        "serial_no": meter["serial_no"],
        "kind": meter["kind"],
        "multiplier": Decimal(str(meter["multiplier"])),
        "reading_mode": meter["reading_mode"],
        "digits": register_digits(uow.settings, meter["kind"], initial),
        "installed_on": installed_on,
        "initial_reading": initial,
        "status": "active",
        "last_event_at": event_time,
    }
    stmt = insert(Meter).values(**values)
    refreshed = {k: stmt.excluded[k] for k in ("serial_no", "kind", "multiplier", "reading_mode")}
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["meter_id"],
            set_=refreshed | {"last_event_at": stmt.excluded.last_event_at, "updated_at": func.now()},
            where=Meter.__table__.c.last_event_at <= stmt.excluded.last_event_at,
        )
    )
    if not installation_reading:
        return
    has_billable = await uow.session.scalar(
        select(MeterReadingRow.id)
        .where(MeterReadingRow.account_no == account_no, MeterReadingRow.status == "accepted")
        .limit(1)
    )
    if has_billable is None:
        await uow.session.execute(
            insert(MeterReadingRow)
            .values(
                id=new_id(),
                account_no=account_no,
                meter_id=values["meter_id"],
                meter_serial=values["serial_no"],
                read_at=business_start(installed_on),
                value=initial,
                source=INSTALLATION,
                entered_by="customer.events",
                external_id=f"meter-installed:{values['meter_id']}",
                status="accepted",
                flags=[],
                kind="base",
            )
            .on_conflict_do_nothing(index_elements=["external_id"])
        )


async def keep_replacement(uow: UnitOfWork, data: dict[str, Any], event_time: datetime) -> None:
    """``customer.meter.replaced``: the old meter is removed with its final reading; the new meter starts
    at its initial reading. The instant of the change is the event's time, kept within the removal date
    (Asia/Shanghai): readings of the old meter must be before it, of the new meter after it."""
    removed_on = date.fromisoformat(str(data["removed_on"]))
    day_start = business_start(removed_on)
    removed_at = min(max(event_time, day_start), day_start + timedelta(days=1) - timedelta(microseconds=1))
    new_meter = data["new_meter"]
    await keep_meter(uow, data["account_no"], new_meter, event_time, installation_reading=False)
    await uow.session.execute(
        update(Meter)
        .where(Meter.meter_id == uuid.UUID(str(data["old_meter_id"])))
        .values(
            status="removed",
            removed_on=removed_on,
            removed_at=removed_at,
            final_reading=Decimal(str(data["final_reading"])),
            replaced_by_id=uuid.UUID(str(new_meter["meter_id"])),
            last_event_at=func.greatest(Meter.last_event_at, event_time),
            updated_at=func.now(),
        )
    )


# --------------------------------------------------------------------------------------------------
# Domain conversions


def to_domain(row: MeterReadingRow, meter: Meter) -> MeterReading:
    source = ReadingSource.MANUAL if row.source == INSTALLATION else ReadingSource(row.source)
    return MeterReading(
        meter_serial=row.meter_serial,
        source=source,
        read_at=row.read_at,
        value=row.value,
        digits=meter.digits,
        entered_by=row.entered_by,
        photo_ref=row.photo_ref,
    )


def replacements_of(meters: Iterable[Meter]) -> list[MeterReplacement]:
    by_id = {m.meter_id: m for m in meters}
    out = []
    for m in by_id.values():
        new = by_id.get(m.replaced_by_id) if m.replaced_by_id else None
        if new is None or m.removed_at is None or m.final_reading is None:
            continue
        out.append(
            MeterReplacement(
                replaced_at=m.removed_at,
                old_serial=m.serial_no,
                old_final_value=m.final_reading,
                new_serial=new.serial_no,
                new_initial_value=new.initial_reading,
            )
        )
    return out


def flag_json(flag: ReadingFlag) -> dict[str, Any]:
    return {
        "code": flag.code.value,
        "needs_review": flag.needs_review,
        "message_zh": flag.message_zh,
        "message_en": flag.message_en,
    }


def _not_after_latest(read_at: datetime, latest_at: datetime) -> ReadingFlag:
    review, zh, en = FLAG_CATALOGUE[FlagCode.NOT_AFTER_PREVIOUS]
    values = {"read_at": read_at.isoformat(), "previous_at": latest_at.isoformat()}
    return ReadingFlag(FlagCode.NOT_AFTER_PREVIOUS, review, zh.format(**values), en.format(**values))


# --------------------------------------------------------------------------------------------------
# An account's state while readings are recorded (loaded in bulk, under the account lock)


@dataclass
class AccountState:
    account: BillingAccount
    meters: list[Meter]
    history: list[MeterReadingRow]  # billable readings, oldest first (the latest HISTORY_ROWS)

    @property
    def meters_by_id(self) -> dict[uuid.UUID, Meter]:
        return {m.meter_id: m for m in self.meters}

    @property
    def occupied(self) -> bool:
        return self.account.status == "active"

    @property
    def latest(self) -> MeterReadingRow | None:
        return self.history[-1] if self.history else None

    def domain_history(self) -> list[MeterReading]:
        meters = self.meters_by_id
        return [to_domain(r, meters[r.meter_id]) for r in self.history]

    def meter_for(self, serial: str | None, read_at: datetime) -> Meter:
        candidates = [m for m in self.meters if serial is None or m.serial_no == serial]
        if serial is None:
            candidates = [m for m in candidates if m.status == "active"]
        if len(candidates) > 1:  # the same serial reinstalled, or several meters: the one in place then
            candidates = [
                m
                for m in candidates
                if business_start(m.installed_on) <= read_at
                and (m.removed_at is None or read_at <= m.removed_at)
            ]
        if not candidates:
            what = f"meter {serial}" if serial else "an installed meter"
            raise ReadingRefused(
                "meter_not_found", f"Account {self.account.account_no} has no {what}.", "meter_serial"
            )
        if len(candidates) > 1:
            raise ReadingRefused(
                "meter_ambiguous",
                f"Account {self.account.account_no} has several meters; name the meter_serial.",
                "meter_serial",
            )
        return candidates[0]


async def load_states(
    session: AsyncSession, account_nos: Iterable[str], *, lock: bool
) -> dict[str, AccountState]:
    """The accounts (locked in account order when ``lock``), their meters and their latest billable readings:
    three queries whatever the number of accounts."""
    wanted = sorted(set(account_nos))
    if not wanted:
        return {}
    stmt = (
        select(BillingAccount)
        .where(BillingAccount.account_no == any_(wanted))
        .order_by(BillingAccount.account_no)
    )
    if lock:
        stmt = stmt.with_for_update()
    accounts = (await session.execute(stmt)).scalars().all()
    found = [a.account_no for a in accounts]
    states = {a.account_no: AccountState(a, [], []) for a in accounts}
    if not found:
        return states
    for meter in (await session.execute(select(Meter).where(Meter.account_no == any_(found)))).scalars():
        states[meter.account_no].meters.append(meter)
    r = MeterReadingRow
    ranked = (
        select(
            r.id,
            func.row_number()
            .over(partition_by=r.account_no, order_by=(r.read_at.desc(), r.id.desc()))
            .label("rn"),
        )
        .where(r.account_no == any_(found), r.status == "accepted")
        .subquery()
    )
    rows = (
        await session.execute(
            select(r)
            .join(ranked, ranked.c.id == r.id)
            .where(ranked.c.rn <= HISTORY_ROWS)
            .order_by(r.read_at, r.id)
        )
    ).scalars()
    for row in rows:
        states[row.account_no].history.append(row)
    return states


# --------------------------------------------------------------------------------------------------
# Recording readings


@dataclass(frozen=True)
class NewReading:
    read_at: datetime
    value: Decimal
    source: ReadingSource
    entered_by: str
    account_no: str | None = None
    meter_serial: str | None = None
    photo_ref: str | None = None
    external_id: str | None = None


@dataclass
class ItemResult:
    index: int
    external_id: str | None
    outcome: str  # accepted | flagged | rejected | duplicate
    reading: MeterReadingRow | None = None
    code: str | None = None  # why rejected
    message: str | None = None
    flags: list[str] = field(default_factory=list)


def _scaled(
    prev: MeterReadingRow,
    cur: MeterReadingRow,
    kind: ConsumptionKind,
    consumption: Decimal,
    meters: dict[uuid.UUID, Meter],
) -> Decimal:
    """Register consumption → billed volume: × the multiplier; across a replacement, each meter's part × its
    own multiplier."""
    old, new = meters[prev.meter_id], meters[cur.meter_id]
    if kind is ConsumptionKind.REPLACEMENT and old.final_reading is not None and old.meter_id != new.meter_id:
        return (old.final_reading - prev.value) * old.multiplier + (
            cur.value - new.initial_reading
        ) * new.multiplier
    return consumption * new.multiplier


def _accept(
    uow: UnitOfWork,
    state: AccountState,
    row: MeterReadingRow,
    check: ReadingCheck,
    config: MeteringConfig,
    *,
    override: Decimal | None = None,
) -> None:
    """Make ``row`` billable: its volume from the latest billable reading (see the module notes)."""
    prev = state.latest
    meters = state.meters_by_id
    row.status = "accepted"
    row.previous_reading_id = prev.id if prev is not None else None
    if prev is None:
        row.kind, row.consumption, row.volume = "base", None, None
    elif override is not None:
        row.kind, row.consumption = "reviewed", override
        row.volume = override * meters[row.meter_id].multiplier
    elif prev.source == ReadingSource.ESTIMATED.value and row.source != ReadingSource.ESTIMATED.value:
        _true_up(uow, state, row, check, config)
    else:
        assert check.consumption is not None and check.kind is not None
        row.kind, row.consumption = check.kind.value, check.consumption
        row.volume = _scaled(prev, row, check.kind, check.consumption, meters)
    state.history.append(row)


def _true_up(
    uow: UnitOfWork, state: AccountState, row: MeterReadingRow, check: ReadingCheck, config: MeteringConfig
) -> None:
    meters = state.meters_by_id
    actual_rows = [r for r in state.history if r.source != ReadingSource.ESTIMATED.value]
    last_actual = actual_rows[-1]
    estimates = [r for r in state.history if r.read_at > last_actual.read_at]
    by_id = {r.id: r for r in state.history}
    chain = []
    for e in estimates:
        base = by_id[uuid.UUID(e.estimate["base_reading_id"])]
        chain.append(
            Estimate(
                reading=to_domain(e, meters[e.meter_id]),
                base=to_domain(base, meters[base.meter_id]),
                consumption=e.consumption,
                method=EstimationMethod(e.estimate["method"]),
                daily_rate=Decimal(e.estimate["daily_rate"]),
                days=Decimal(e.estimate["days"]),
            )
        )
    result = true_up(chain, to_domain(row, meters[row.meter_id]), replacements_of(state.meters), config)
    assert check.kind is not None
    actual_volume = _scaled(last_actual, row, check.kind, result.actual_consumption, meters)
    estimated_volume = sum((e.volume or Decimal(0) for e in estimates), Decimal(0))
    row.kind, row.consumption = "true_up", result.correction
    row.volume = actual_volume - estimated_volume
    uow.session.add(
        ReadingTrueUp(
            account_no=row.account_no,
            actual_reading_id=row.id,
            estimate_reading_ids=[e.id for e in estimates],
            actual_consumption=result.actual_consumption,
            estimated_consumption=result.estimated_consumption,
            correction=result.correction,
            correction_volume=row.volume,
            direction=result.direction.value,
            description_zh=result.description_zh,
            description_en=result.description_en,
        )
    )


def _check(state: AccountState, reading: MeterReading, now: datetime, config: MeteringConfig) -> ReadingCheck:
    return check_reading(
        reading,
        state.domain_history(),
        now=now,
        replacements=replacements_of(state.meters),
        occupied=state.occupied,
        config=config,
    )


def _record_one(
    uow: UnitOfWork, state: AccountState, item: NewReading, now: datetime, config: MeteringConfig
) -> MeterReadingRow:
    meter = state.meter_for(item.meter_serial, item.read_at)
    capacity = Decimal(10) ** meter.digits
    if not Decimal(0) <= item.value < capacity:
        raise ReadingRefused(
            "value_out_of_range",
            f"Meter {meter.serial_no} shows values from 0 to below {capacity}.",
            "value",
        )
    row = MeterReadingRow(
        id=new_id(),
        account_no=state.account.account_no,
        meter_id=meter.meter_id,
        meter_serial=meter.serial_no,
        read_at=item.read_at,
        value=item.value,
        source=item.source.value,
        entered_by=item.entered_by[:200],
        photo_ref=item.photo_ref,
        external_id=item.external_id,
    )
    check = _check(state, to_domain(row, meter), now, config)
    flags = list(check.flags)
    latest = state.latest
    if (
        latest is not None
        and item.read_at <= latest.read_at
        and FlagCode.NOT_AFTER_PREVIOUS not in check.codes
    ):
        flags.append(_not_after_latest(item.read_at, latest.read_at))  # not after an estimate
    row.flags = [flag_json(f) for f in flags]
    if any(f.needs_review for f in flags):
        row.status, row.consumption = "pending_review", check.consumption
        row.kind = check.kind.value if check.kind is not None else None
    else:
        _accept(uow, state, row, check, config)
    uow.session.add(row)
    return row


async def record_readings(
    uow: UnitOfWork, items: Sequence[NewReading], *, now: datetime | None = None
) -> list[ItemResult]:
    """Record a batch (one transaction): each item accepted, flagged for review, rejected with a reason, or
    a duplicate of a stored reading (same ``external_id``)."""
    now = now or utcnow()
    session = uow.session
    config = metering_config(uow.settings)
    results: list[ItemResult | None] = [None] * len(items)

    # which account each item is for: named, or found from an installed meter's serial
    serials = {i.meter_serial for i in items if i.account_no is None and i.meter_serial}
    by_serial: dict[str, set[str]] = {}
    if serials:
        for serial, account_no in await session.execute(
            select(Meter.serial_no, Meter.account_no).where(
                Meter.serial_no == any_(list(serials)), Meter.status == "active"
            )
        ):
            by_serial.setdefault(serial, set()).add(account_no)
    targets: dict[int, str] = {}
    for index, item in enumerate(items):
        if item.account_no is not None:
            targets[index] = item.account_no
            continue
        owners = by_serial.get(item.meter_serial or "", set())
        if len(owners) == 1:
            targets[index] = next(iter(owners))
        else:
            code = "meter_ambiguous" if owners else "meter_not_found"
            results[index] = ItemResult(
                index,
                item.external_id,
                "rejected",
                code=code,
                message=f"No single installed meter {item.meter_serial}.",
            )

    states = await load_states(session, targets.values(), lock=True)

    # duplicates: stored already (the account lock makes this check safe), or repeated in this batch
    external_ids = [i.external_id for i in items if i.external_id]
    stored: dict[str, MeterReadingRow] = {}
    if external_ids:
        for row in (
            await session.execute(
                select(MeterReadingRow).where(MeterReadingRow.external_id == any_(external_ids))
            )
        ).scalars():
            stored[row.external_id] = row  # type: ignore[index]
    seen: set[str] = set()

    order = sorted(targets, key=lambda i: (targets[i], items[i].read_at, i))
    for index in order:
        item = items[index]
        if item.external_id and item.external_id in stored:
            row = stored[item.external_id]
            results[index] = ItemResult(
                index, item.external_id, "duplicate", row, flags=[f["code"] for f in row.flags]
            )
            continue
        if item.external_id and item.external_id in seen:
            results[index] = ItemResult(
                index,
                item.external_id,
                "rejected",
                code="external_id_repeated",
                message="This external_id appears earlier in the batch.",
            )
            continue
        state = states.get(targets[index])
        try:
            if state is None:
                raise ReadingRefused("account_not_found", f"No account {targets[index]}.", "account_no")
            row = _record_one(uow, state, item, now, config)
        except ReadingRefused as refused:
            results[index] = ItemResult(
                index, item.external_id, "rejected", code=refused.code, message=refused.message
            )
            continue
        except ValueError as exc:  # the domain refuses to build the reading
            results[index] = ItemResult(
                index, item.external_id, "rejected", code="invalid_reading", message=str(exc)
            )
            continue
        if item.external_id:
            seen.add(item.external_id)
        outcome = "accepted" if row.status == "accepted" else "flagged"
        results[index] = ItemResult(
            index, item.external_id, outcome, row, flags=[f["code"] for f in row.flags]
        )
    await session.flush()
    return [r for r in results if r is not None]


async def record_reading(uow: UnitOfWork, item: NewReading) -> tuple[MeterReadingRow, bool]:
    """One reading (the API's manual and self-reported entry): the row and whether it was a duplicate.
    Refusals are problems (404 ``account_not_found``, 422 with the code)."""
    (result,) = await record_readings(uow, [item])
    if result.outcome == "rejected":
        raise ReadingRefused(result.code or "invalid_reading", result.message or "").problem()
    assert result.reading is not None
    return result.reading, result.outcome == "duplicate"


# --------------------------------------------------------------------------------------------------
# Review queue


async def _locked_reading(uow: UnitOfWork, reading_id: uuid.UUID) -> tuple[MeterReadingRow, AccountState]:
    row = await uow.session.get(MeterReadingRow, reading_id)
    if row is None:
        raise ReadingNotFound(f"No reading {reading_id}.")
    states = await load_states(uow.session, [row.account_no], lock=True)
    row = (
        await uow.session.execute(
            select(MeterReadingRow)
            .where(MeterReadingRow.id == reading_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if row.status != "pending_review":
        raise conflict(
            "reading_not_pending", f"Reading {reading_id} is {row.status}, not waiting for review."
        )
    return row, states[row.account_no]


async def approve(
    uow: UnitOfWork,
    reading_id: uuid.UUID,
    *,
    reviewer: str,
    note: str | None = None,
    consumption: Decimal | None = None,
    now: datetime | None = None,
) -> MeterReadingRow:
    """Approve a flagged reading: it becomes billable (see the module notes)."""
    row, state = await _locked_reading(uow, reading_id)
    latest = state.latest
    if latest is not None and latest.read_at >= row.read_at:
        raise conflict(
            "newer_reading_accepted",
            f"A billable reading at {latest.read_at.isoformat()} is not earlier than this one; "
            "reject it instead.",
        )
    config = metering_config(uow.settings)
    check = _check(state, to_domain(row, state.meters_by_id[row.meter_id]), now or utcnow(), config)
    first = latest is None
    if consumption is None and check.consumption is None and not first:
        raise invalid_field(
            "consumption",
            "consumption_required",
            "The consumption of this reading cannot be determined from the history (value decreased, or a "
            "meter change without a record): give the consumption since the previous reading, or reject it.",
        )
    _accept(uow, state, row, check, config, override=consumption)
    row.reviewed_by, row.reviewed_at, row.review_note = reviewer[:200], now or utcnow(), note
    await uow.session.flush()
    return row


async def reject(
    uow: UnitOfWork, reading_id: uuid.UUID, *, reviewer: str, reason: str, now: datetime | None = None
) -> MeterReadingRow:
    row, _ = await _locked_reading(uow, reading_id)
    row.status = "rejected"
    row.reviewed_by, row.reviewed_at, row.review_note = reviewer[:200], now or utcnow(), reason
    await uow.session.flush()
    return row


# --------------------------------------------------------------------------------------------------
# Estimates


async def issue_estimate(
    uow: UnitOfWork, account_no: str, *, at: datetime | None, entered_by: str, now: datetime | None = None
) -> MeterReadingRow:
    """估抄: an estimated reading at ``at`` (default now) from the latest billable reading and the account's
    past periods; billable at once. The next accepted actual reading trues it up."""
    now = now or utcnow()
    at = at or now
    states = await load_states(uow.session, [account_no], lock=True)
    state = states.get(account_no)
    if state is None:
        raise AccountNotFound(f"No account {account_no}.")
    base = state.latest
    if base is None:
        raise invalid_field(
            "account_no", "no_base_reading", "The account has no billable reading to estimate from."
        )
    if at > now + timedelta(minutes=5):
        raise invalid_field(
            "read_at", "estimate_in_future", "An estimate cannot be for a time in the future."
        )
    if at <= base.read_at:
        raise conflict(
            "estimate_not_after_latest",
            f"The latest billable reading is at {base.read_at.isoformat()}; an estimate must be later.",
        )
    config = metering_config(uow.settings)
    meters = state.meters_by_id
    actual = [r for r in state.domain_history() if not r.is_estimated]
    periods = periods_from_readings(actual, replacements_of(state.meters), config)
    try:
        estimate = estimate_reading(
            to_domain(base, meters[base.meter_id]), at, periods, entered_by=entered_by[:200], config=config
        )
    except NotEnoughHistory as exc:
        raise invalid_field("account_no", "not_enough_history", f"Cannot estimate: {exc}.") from exc
    meter = meters[base.meter_id]
    row = MeterReadingRow(
        id=new_id(),
        account_no=account_no,
        meter_id=meter.meter_id,
        meter_serial=meter.serial_no,
        read_at=estimate.reading.read_at,
        value=estimate.reading.value,
        source=ReadingSource.ESTIMATED.value,
        entered_by=entered_by[:200],
        status="accepted",
        flags=[],
        kind="estimate",
        consumption=estimate.consumption,
        volume=estimate.consumption * meter.multiplier,
        previous_reading_id=base.id,
        estimate={
            "base_reading_id": str(base.id),
            "method": estimate.method.value,
            "daily_rate": str(estimate.daily_rate),
            "days": str(estimate.days),
        },
    )
    uow.session.add(row)
    state.history.append(row)
    await uow.session.flush()
    return row


async def true_ups_for(
    session: AsyncSession, rows: Iterable[MeterReadingRow]
) -> dict[uuid.UUID, ReadingTrueUp]:
    """The true-ups recorded for these readings, by actual reading id (one query)."""
    ids = [r.id for r in rows if r.kind == "true_up"]
    if not ids:
        return {}
    found = await session.execute(select(ReadingTrueUp).where(ReadingTrueUp.actual_reading_id == any_(ids)))
    return {t.actual_reading_id: t for t in found.scalars()}


# --------------------------------------------------------------------------------------------------
# Queries


def encode_cursor(read_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{read_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError for anything this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        when, _, ident = raw.partition("|")
        instant = datetime.fromisoformat(when)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    if instant.tzinfo is None:
        raise ValueError("bad cursor")
    return instant, uuid.UUID(ident)


async def list_readings(
    session: AsyncSession,
    account_no: str,
    *,
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None,
    status: str | None = None,
) -> tuple[list[MeterReadingRow], str | None]:
    """An account's readings, newest first; 404 when billing does not know the account."""
    if await session.get(BillingAccount, account_no) is None:
        raise AccountNotFound(f"No account {account_no}.")
    r = MeterReadingRow
    stmt = select(r).where(r.account_no == account_no)
    if status is not None:
        stmt = stmt.where(r.status == status)
    if cursor is not None:
        at, ident = cursor
        stmt = stmt.where(or_(r.read_at < at, and_(r.read_at == at, r.id < ident)))
    rows = list(
        (await session.execute(stmt.order_by(r.read_at.desc(), r.id.desc()).limit(limit + 1))).scalars()
    )
    next_cursor = encode_cursor(rows[limit - 1].read_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def review_queue(
    session: AsyncSession, *, limit: int, after: uuid.UUID | None, account_no: str | None = None
) -> tuple[list[MeterReadingRow], str | None]:
    """Readings waiting for review, oldest entry first (ids are time-ordered)."""
    r = MeterReadingRow
    stmt = select(r).where(r.status == "pending_review")
    if account_no is not None:
        stmt = stmt.where(r.account_no == account_no)
    if after is not None:
        stmt = stmt.where(r.id > after)
    rows = list((await session.execute(stmt.order_by(r.id).limit(limit + 1))).scalars())
    next_cursor = (
        base64.urlsafe_b64encode(rows[limit - 1].id.bytes).decode().rstrip("=") if len(rows) > limit else None
    )
    return rows[:limit], next_cursor


def decode_queue_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad cursor") from exc


# --------------------------------------------------------------------------------------------------
# The billing runs' interface


@dataclass(frozen=True)
class PeriodVolume:
    account_no: str
    volume: (
        Decimal  # in the meter's unit × multiplier, quantized to 0.001; negative only for a true-up credit
    )
    tou_volumes: dict[str, Decimal] | None  # None unless time-of-use registers exist
    estimated: bool  # True when either end is an estimated reading
    start_reading_id: uuid.UUID | None
    end_reading_id: uuid.UUID


async def period_volumes(
    session: AsyncSession, account_nos: Sequence[str], period_start: date, period_end: date
) -> dict[str, PeriodVolume]:
    """Each account's billed volume over [period_start, period_end) (Asia/Shanghai business dates; the
    boundary instant is 00:00 there): from the last billable reading at or before the start boundary (or,
    for an account whose first reading falls inside, that reading: the meter's installation reading) to the
    last billable reading at or before the end boundary. Accounts with no billable reading after the start
    boundary and at or before the end boundary are absent (the run reports them as ``no_reading``).

    Two queries for any number of accounts: the window's readings aggregated per account (sum of their
    volumes, the last one), and the start readings of the accounts found."""
    if period_end <= period_start:
        raise ValueError("period_end must be after period_start")
    wanted = list(dict.fromkeys(account_nos))
    if not wanted:
        return {}
    start, end = business_start(period_start), business_start(period_end)
    r = MeterReadingRow
    newest_first = (r.read_at.desc(), r.id.desc())
    window = (
        select(
            r.account_no,
            r.id,
            r.source,
            func.sum(func.coalesce(r.volume, 0)).over(partition_by=r.account_no).label("total"),
            func.row_number().over(partition_by=r.account_no, order_by=newest_first).label("rn"),
            func.first_value(r.id)
            .over(partition_by=r.account_no, order_by=(r.read_at, r.id))
            .label("first_id"),
            func.count().over(partition_by=r.account_no).label("n"),
        )
        .where(r.account_no == any_(wanted), r.status == "accepted", r.read_at > start, r.read_at <= end)
        .subquery()
    )
    ends = (await session.execute(select(window).where(window.c.rn == 1))).all()
    if not ends:
        return {}
    found = [e.account_no for e in ends]
    starts = {
        s.account_no: s
        for s in (
            await session.execute(
                select(r.account_no, r.id, r.source)
                .where(r.account_no == any_(found), r.status == "accepted", r.read_at <= start)
                .order_by(r.account_no, *newest_first)
                .ext(distinct_on(r.account_no))
            )
        ).all()
    }
    out = {}
    estimated = ReadingSource.ESTIMATED.value
    for e in ends:
        s = starts.get(e.account_no)
        if s is not None:
            start_id, start_estimated = s.id, s.source == estimated
        else:  # the account's first reading is inside the period: it is the base (volume counted after it)
            start_id = e.first_id if e.n > 1 else None
            start_estimated = False
        out[e.account_no] = PeriodVolume(
            account_no=e.account_no,
            volume=Decimal(e.total).quantize(VOLUME_QUANTUM, rounding=ROUND_HALF_UP),
            tou_volumes=None,
            estimated=start_estimated or e.source == estimated,
            start_reading_id=start_id,
            end_reading_id=e.id,
        )
    return out


# --------------------------------------------------------------------------------------------------
# IoT intake: metering.reading.reported on the metering.readings topic


class ReadingReported(BaseModel):
    """The inbound ``metering.reading.reported`` payload (an IoT gateway's reading), schema_version 1."""

    model_config = ConfigDict(extra="ignore")

    external_id: str | None = Field(
        None, min_length=1, max_length=200, description="the gateway's reading id; default: the event id"
    )
    meter_serial: str | None = Field(None, min_length=1, max_length=40)
    account_no: str | None = Field(None, min_length=1, max_length=20)
    read_at: AwareDatetime
    value: Decimal = Field(ge=0, lt=Decimal("1e11"), decimal_places=3)
    gateway_id: str = Field(min_length=1, max_length=100)


class ReadingEventRefused(Exception):
    """The consumer retries, then dead-letters the event with this reason."""


@registry.on(IOT_EVENT_TYPE)
async def reading_reported(uow: UnitOfWork, event: Event) -> None:
    try:
        data = ReadingReported.model_validate(event.data)
    except ValidationError as exc:
        raise ReadingEventRefused(f"invalid_payload: {exc.errors(include_input=False)}"[:500]) from exc
    if data.meter_serial is None and data.account_no is None:
        raise ReadingEventRefused("invalid_payload: meter_serial or account_no is required")
    item = NewReading(
        read_at=data.read_at.astimezone(UTC),
        value=data.value,
        source=ReadingSource.IOT_GATEWAY,
        entered_by=f"gateway:{data.gateway_id}",
        account_no=data.account_no,
        meter_serial=data.meter_serial,
        external_id=data.external_id or f"event:{event.id}",
    )
    (result,) = await record_readings(uow, [item])
    if result.outcome == "rejected":
        # an unknown account or meter may be an account.opened still on its way: retried, then dead-lettered
        raise ReadingEventRefused(f"{result.code}: {result.message}")
    log.info("iot reading recorded", extra={"outcome": result.outcome, "event_id": str(event.id)})
