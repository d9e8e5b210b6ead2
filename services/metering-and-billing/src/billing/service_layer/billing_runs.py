"""Billing runs (出账): a cycle, a tariff plan and a selection of accounts, billed in chunks.

A run is created by ``POST /v1/billing-runs`` (or ``metering-and-billing bill``) and processed by the
``scheduler`` process (or the CLI in the foreground). Processing walks the selected accounts in
account-number order, ``billing_chunk_size`` at a time; each chunk is one transaction that

1. locks the run row (two processors of one run take turns; the second finds the cursor moved on),
2. reads the next accounts after the run's ``cursor`` with, for each, whether it already has a bill for
   the cycle (``uq_bills_account_cycle``: one bill per account and cycle, whatever run made it),
3. locks their ``account_balances`` rows (creating missing ones), so a payment arriving meanwhile waits
   and then sees the new bill; draws what a prepaid balance covers,
4. prices each account's period with the tariff engine (usage from stored readings for volume plans,
   from the heated area for area plans),
5. inserts the bills, their receivables and prepaid postings, writes ``billing.bill.issued`` and
   ``billing.balance.changed`` per bill into the outbox, and moves the cursor and the counters,

and commits. After the commit the billed accounts' cached statements are invalidated.

So a run is **idempotent** (re-running a cycle skips accounts already billed: ``already_billed``) and
**resumable** (a crash loses at most the chunk in flight, which rolls back whole; the next processor
resumes after the cursor). Accounts that cannot be billed are counted by reason in ``skipped``:
``already_billed``, ``closed``, ``no_reading`` (volume plan, no billable reading in the window),
``no_area`` (area plan, no heated area), ``usage_incomplete`` (the engine refused the usage).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asyncpg.pgproto.pgproto import UUID as _PgUUID
from pydantic_core import to_json
from sqlalchemy import any_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils import uuid7

from billing import metrics
from billing.adapters.orm import BillingRun, TariffPlanVersion
from billing.domain import receivables as rules
from billing.domain.tariff_plans import TariffPlan, TieredVolumeCharge, month_day_in
from billing.domain.tariffs import Usage, compute_bill
from billing.events import BalanceChanged, BillIssued, catalog
from billing.service_layer import tariffs
from billing.service_layer.errors import TariffPlanNotFound, conflict, invalid_field
from billing.service_layer.receivables import policy_document, policy_of, to_domain
from billing.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import NotFound
from utilis_shared.events import OUTBOX_RECORD_COLUMNS
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)

CYCLE_PATTERN = re.compile(r"^[0-9]{4}[0-9A-Z]{1,8}$")  # 202611 (month), 2026S (heating season), 2026B06
SELECTION_KINDS = ("all", "district", "accounts")
MAX_LISTED_ACCOUNTS = 10_000


class BillingRunNotFound(NotFound):
    code = "billing_run_not_found"


@dataclass(frozen=True)
class RunRequest:
    cycle: str
    tariff_plan_code: str
    period_start: dt.date
    period_end: dt.date  # excluded
    issue_date: dt.date
    due_date: dt.date
    selection: dict[str, Any]


def bill_no_for(cycle: str, account_no: str) -> str:
    """A bill's number: the cycle and the account, e.g. ``202611-31000000017`` (stable: what a re-run or a
    resumed run would number it, and what a resident reads out on the phone)."""
    return f"{cycle}-{account_no}"


def _check_selection(selection: dict[str, Any]) -> dict[str, Any]:
    kind = selection.get("kind")
    if kind not in SELECTION_KINDS:
        raise invalid_field(
            "selection.kind", "invalid_selection", f"selection.kind is one of {SELECTION_KINDS}."
        )
    if kind == "district":
        district = selection.get("district")
        if not isinstance(district, str) or not district.strip():
            raise invalid_field("selection.district", "invalid_selection", "A district selection names it.")
        return {"kind": kind, "district": district.strip()}
    if kind == "accounts":
        nos = selection.get("account_nos")
        if not isinstance(nos, list) or not nos or len(nos) > MAX_LISTED_ACCOUNTS:
            raise invalid_field(
                "selection.account_nos",
                "invalid_selection",
                f"An account selection lists 1 to {MAX_LISTED_ACCOUNTS} account numbers.",
            )
        return {"kind": kind, "account_nos": sorted({str(n) for n in nos})}
    return {"kind": "all"}


async def create_run(uow: UnitOfWork, *, request: RunRequest, requested_by: str) -> BillingRun:
    if not CYCLE_PATTERN.match(request.cycle):
        raise invalid_field("cycle", "invalid_cycle", "cycle is e.g. 202611 (a month) or 2026S (a season).")
    if request.period_end <= request.period_start:
        raise invalid_field("period_end", "invalid_period", "period_end must be after period_start.")
    if request.due_date < request.issue_date:
        raise invalid_field("due_date", "invalid_due_date", "due_date must not be before issue_date.")
    selection = _check_selection(request.selection)
    rows = await tariffs.plan_versions(uow.session, request.tariff_plan_code)
    gap = tariffs.uncovered_days(rows, request.period_start, request.period_end)
    if gap is not None:
        raise invalid_field(
            "period_start",
            "no_tariff_in_force",
            f"No version of {request.tariff_plan_code} is in force on {gap.isoformat()}.",
        )
    running = (
        await uow.session.execute(
            select(BillingRun.id).where(
                BillingRun.cycle == request.cycle,
                BillingRun.tariff_plan_code == request.tariff_plan_code,
                BillingRun.status.in_(("pending", "running")),
                BillingRun.selection == selection,
            )
        )
    ).first()
    if running is not None:
        raise conflict(
            "billing_run_in_progress",
            f"A run of cycle {request.cycle} with this plan and selection is already in progress.",
            run_id=str(running.id),
        )
    run = BillingRun(
        cycle=request.cycle,
        tariff_plan_code=request.tariff_plan_code,
        utility=rows[-1].utility,
        customer_class=rows[-1].customer_class,
        period_start=request.period_start,
        period_end=request.period_end,
        issue_date=request.issue_date,
        due_date=request.due_date,
        selection=selection,
        status="pending",
        accounts_seen=0,
        bills_issued=0,
        billed_fen=0,
        skipped={},
        requested_by=requested_by,
    )
    uow.session.add(run)
    await uow.session.flush()
    return run


async def get_run(session: AsyncSession, run_id) -> BillingRun:
    run = await session.get(BillingRun, run_id)
    if run is None:
        raise BillingRunNotFound(f"No billing run {run_id}.")
    return run


# -------------------------------------------------------------------------------------- processing
# ``billed`` is a sub-plan probing uq_bills_account_cycle per account (a join would let the planner hash
# every bill of the cycle for each chunk: quadratic in the run's size).
_ACCOUNTS_SQL = """
SELECT a.account_no, a.status, a.household_size, a.heated_area_m2,
       EXISTS (SELECT 1 FROM bills b
               WHERE b.account_no = a.account_no AND b.cycle = :cycle AND b.kind = 'bill') AS billed
FROM billing_accounts a
WHERE a.utility = :utility AND a.customer_class = :customer_class AND a.account_no > :cursor {extra}
ORDER BY a.account_no
LIMIT :limit
"""


@dataclass(frozen=True, slots=True)
class Priced:
    """One priced usage, ready to write: the total, the lines as stored and as in the event."""

    total_fen: int
    lines_json: str  # bills.lines (jsonb)
    event_lines: list[dict[str, Any]]  # BillIssued.lines, as model_dump(mode="json") gives them
    year_to_date_after: Decimal
    volume: Decimal


@dataclass
class _Plan:
    """The run's plan, loaded once: the domain plan with every version, and a memo of priced usages. The
    engine is a pure function of the usage, and a city's households share a few hundred floor plans (and,
    per household size, tier positions), so most accounts of a run price exactly like an earlier one."""

    plan: TariffPlan
    needs_volume: bool
    memo: dict[tuple[Any, ...], Priced]
    uses_members: bool = True  # some tier is widened by household size
    uses_area: bool = True  # an area component
    hits: int = 0

    def price(self, run: BillingRun, *, volume, tou, ytd, members, area, suspended) -> Priced:
        # Only what can change the price is in the key (household size prices nothing in an area plan).
        key = (
            volume,
            ytd,
            members if self.uses_members else None,
            area if self.uses_area else None,
            suspended,
        )
        if tou is None:
            priced = self.memo.get(key)
            if priced is not None:
                self.hits += 1
                return priced
        usage = Usage(
            period_start=run.period_start,
            period_end=run.period_end,
            volume=volume,
            tou_volumes=tou,
            year_to_date_volume=ytd,
            household_members=members,
            heated_area_m2=area,
            suspended=suspended,
        )
        bill = compute_bill(self.plan, usage)
        lines = [_line_document(line) for line in bill.lines]
        priced = Priced(
            total_fen=bill.total_fen,
            lines_json=to_json(lines).decode(),
            event_lines=[line_event(line) for line in lines],
            year_to_date_after=bill.year_to_date_volume_after,
            volume=usage.total_volume,
        )
        if tou is None and len(self.memo) < 100_000:
            self.memo[key] = priced
        return priced


async def _load_plan(session: AsyncSession, code: str) -> _Plan:
    rows = list(
        (
            await session.execute(
                select(TariffPlanVersion)
                .where(TariffPlanVersion.code == code)
                .order_by(TariffPlanVersion.version)
            )
        ).scalars()
    )
    if not rows:
        raise TariffPlanNotFound(f"No tariff plan {code}.")
    plan = tariffs.plan_with_history(rows)
    components = [c for v in plan.versions for c in v.components]
    return _Plan(
        plan=plan,
        needs_volume=plan.volume_unit is not None,
        memo={},
        uses_members=any(getattr(c, "household_widening", None) is not None for c in components),
        uses_area=any(c.kind == "area_season" for c in components),
    )


def _tier_year_restarts(plan: TariffPlan, after: dt.date, until: dt.date) -> bool:
    """Whether a tier year starts in ``(after, until]`` (then the running total restarts at 0)."""
    for version in plan.versions:
        for component in version.components:
            if isinstance(component, TieredVolumeCharge):
                for year in range(after.year, until.year + 1):
                    day = month_day_in(year, component.tier_year_starts_on)
                    if after < day <= until:
                        return True
    return False


@dataclass(frozen=True)
class ChunkResult:
    accounts: int
    issued: int
    billed_fen: int
    skipped: Counter
    billed_accounts: list[str]
    last_account_no: str | None


_BILL_COLUMNS = (
    "id", "bill_no", "kind", "account_no", "cycle", "run_id", "utility", "tariff_plan_code", "period_start",
    "period_end", "issue_date", "due_date", "due_at", "total_fen", "volume", "year_to_date_before",
    "year_to_date_after", "estimated", "lines", "late_fee_policy", "created_by",
)  # fmt: skip
_RECEIVABLE_COLUMNS = (
    "bill_no", "account_no", "utility", "principal_fen", "due_at", "principal_paid_fen",
    "late_fee_credited_fen", "late_fee_policy", "status", "settled_at", "last_posting_at", "version",
)  # fmt: skip
_POSTING_COLUMNS = ("id", "bill_no", "account_no", "ref", "kind", "at", "late_fee_fen", "principal_fen")


async def _chunk(uow: UnitOfWork, run: BillingRun, plan: _Plan, limit: int) -> ChunkResult:
    session = uow.session
    params: dict[str, Any] = {
        "cycle": run.cycle,
        "utility": run.utility,
        "customer_class": run.customer_class,
        "cursor": run.cursor or "",
        "limit": limit,
    }
    extra = ""
    if run.selection["kind"] == "district":
        extra, params["district"] = "AND a.district = :district", run.selection["district"]
    elif run.selection["kind"] == "accounts":
        extra, params["nos"] = "AND a.account_no = ANY(:nos)", run.selection["account_nos"]
    accounts = (await session.execute(text(_ACCOUNTS_SQL.format(extra=extra)), params)).all()
    if not accounts:
        return ChunkResult(0, 0, 0, Counter(), [], None)
    skipped: Counter = Counter()
    candidates = []
    for a in accounts:
        if a.billed:
            skipped["already_billed"] += 1
        elif a.status == "closed":
            skipped["closed"] += 1
        else:
            candidates.append(a)
    nos = [a.account_no for a in candidates]
    volumes: dict[str, Any] = {}
    ytd: dict[str, Decimal] = {}
    if nos and plan.needs_volume:
        from billing.service_layer.readings import period_volumes

        volumes = await period_volumes(session, nos, run.period_start, run.period_end)
        ytd = await _year_to_date(session, nos, run, plan.plan)
    prepaid, open_bills = await _lock_balances(session, nos) if nos else ({}, {})

    policy_doc = policy_document(uow.settings)
    policy_json = to_json(policy_doc).decode()
    issued_at = rules.to_second(utcnow())
    stamp = to_json(issued_at)  # the chunk's events happen together
    due_at = rules.due_instant(run.due_date)
    topic = uow.settings.topic(uow.settings.own_events_topic)
    head = {  # BillIssued's fields before the per-bill ones, in the model's order
        "kind": "bill",
        "cycle": run.cycle,
        "utility": run.utility,
        "tariff_plan_code": run.tariff_plan_code,
        "original_bill_no": None,
        "period_start": run.period_start.isoformat(),
        "period_end": run.period_end.isoformat(),
        "issue_date": run.issue_date.isoformat(),
        "due_date": run.due_date.isoformat(),
    }
    zero = Decimal(0)
    # The run's fields, read once (ORM attribute access is not free at thousands of bills a second).
    cycle, run_id, utility, plan_code = run.cycle, run.id, run.utility, run.tariff_plan_code
    period_start, period_end = run.period_start, run.period_end
    issue_date, due_date = run.issue_date, run.due_date
    requested_by = run.requested_by
    bills: list[tuple[Any, ...]] = []
    receivables: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    outbox: list[tuple[Any, ...]] = []
    balances: dict[str, int] = {}
    billed_fen = 0
    for a in candidates:
        no = a.account_no
        volume = volumes.get(no)
        if plan.needs_volume and volume is None:
            skipped["no_reading"] += 1
            continue
        if volume is not None and volume.volume < 0:
            # A true-up credit (the estimate was too high): priced as a credit note by a clerk, not
            # netted into a bill here (a bill never goes negative).
            skipped["true_up_credit"] += 1
            continue
        tou = volume.tou_volumes if volume is not None and volume.tou_volumes else None
        ytd_before = ytd.get(no, zero)
        try:
            priced = plan.price(
                run,
                volume=volume.volume if volume is not None and tou is None else None,
                tou=tou,
                ytd=ytd_before,
                members=a.household_size,
                area=a.heated_area_m2,
                suspended=a.status == "suspended",
            )
        except ValueError as exc:
            reason = "no_area" if a.heated_area_m2 is None and "area" in str(exc) else "usage_incomplete"
            skipped[reason] += 1
            log.info("account not billed", extra={"reason": reason, "error": str(exc)[:200]})
            continue
        bill_no = bill_no_for(cycle, no)
        total = priced.total_fen
        drawn = min(prepaid.get(no, 0), total)
        settled = drawn == total
        estimated = bool(volume is not None and volume.estimated)
        metered = plan.needs_volume
        bills.append(
            (
                _new_id(), bill_no, "bill", no, cycle, run_id, utility, plan_code,
                period_start, period_end, issue_date, due_date, due_at, total,
                priced.volume if metered else None, ytd_before if metered else None,
                priced.year_to_date_after if metered else None, estimated, priced.lines_json, policy_json,
                requested_by,
            )
        )  # fmt: skip
        receivables.append(
            (
                bill_no, no, utility, total, due_at, drawn, 0, policy_json,
                "settled" if settled else "open", issued_at if settled else None,
                issued_at if drawn else None, 1,
            )
        )  # fmt: skip
        if drawn:
            postings.append((_new_id(), bill_no, no, f"prepaid:{bill_no}", "prepaid", issued_at, 0, drawn))
            prepaid[no] -= drawn
            balances[no] = prepaid[no]
        billed_fen += total
        issued = {
            "bill_no": bill_no,
            "account_no": no,
            **head,
            "total_fen": total,
            "prepaid_applied_fen": drawn,
            "amount_due_fen": total - drawn,
            "status": "paid" if settled else "issued",
            "estimated": estimated,
            "volume": str(priced.volume) if metered else None,
            "lines": priced.event_lines,
        }
        outbox.append(catalog.outbox_record(BillIssued, no, issued, topic, stamp))
        earlier = open_bills.get(no, ())
        balance = {
            "account_no": no,
            "owed_fen": sum(b.principal_outstanding_fen for b, _ in earlier) + total - drawn,
            "late_fee_fen": sum(b.late_fee_outstanding_fen(issued_at, p) for b, p in earlier),
            "prepaid_fen": prepaid.get(no, 0),
            "open_bills": len(earlier) + (0 if settled else 1),
            "as_of": issued_at,
        }
        outbox.append(catalog.outbox_record(BalanceChanged, no, balance, topic, stamp))
    await _insert(session, bills, receivables, postings, balances, outbox)
    if outbox:
        uow.outbox_written()  # the relay is woken after the chunk commits
    return ChunkResult(
        accounts=len(accounts),
        issued=len(bills),
        billed_fen=billed_fen,
        skipped=skipped,
        billed_accounts=[b[3] for b in bills],
        last_account_no=accounts[-1].account_no,
    )


def _new_id():
    return _PgUUID(uuid7().bytes)  # a UUIDv7 (utilis_shared.ids.new_id), cheaper to make in bulk


def _line_document(line) -> dict[str, Any]:
    return {
        "kind": line.kind.value,
        "description": line.description,
        "quantity": str(line.quantity),
        "unit": line.unit,
        "unit_price": str(line.unit_price),
        "amount_fen": line.amount_fen,
        "tier": line.tier,
        "band": line.band.value if line.band is not None else None,
        "season": line.season,
        "period_start": line.period_start.isoformat(),
        "period_end": line.period_end.isoformat(),
        "plan_version": line.plan_version,
        "days": line.days,
        "of_days": line.of_days,
    }


def line_event(line: dict[str, Any]) -> dict[str, Any]:
    return {
        k: line[k] for k in ("kind", "description", "quantity", "unit", "unit_price", "amount_fen", "tier")
    }


async def _year_to_date(session: AsyncSession, nos: Sequence[str], run: BillingRun, plan: TariffPlan):
    """Each account's tier-year running total before the period, from its previous bill of this plan."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT ON (account_no) account_no, period_end, year_to_date_after FROM bills "
            "WHERE kind = 'bill' AND account_no = ANY(:nos) AND tariff_plan_code = :code "
            "AND period_end <= :start ORDER BY account_no, period_end DESC"
        ),
        {"nos": list(nos), "code": run.tariff_plan_code, "start": run.period_start},
    )
    out: dict[str, Decimal] = {}
    for r in rows:
        if r.year_to_date_after is not None and not _tier_year_restarts(plan, r.period_end, run.period_start):
            out[r.account_no] = r.year_to_date_after
    return out


async def _lock_balances(session: AsyncSession, nos: Sequence[str]):
    """Lock the accounts' balance rows (creating missing ones) and read what is needed for the chunk:
    prepaid balances and the open receivables (for the balance events)."""
    await session.execute(
        text(
            "INSERT INTO account_balances (account_no, prepaid_fen, version, updated_at) "
            "SELECT unnest(CAST(:nos AS varchar[])), 0, 1, now() ON CONFLICT (account_no) DO NOTHING"
        ),
        {"nos": list(nos)},
    )
    prepaid = {
        r.account_no: r.prepaid_fen
        for r in await session.execute(
            text(
                "SELECT account_no, prepaid_fen FROM account_balances WHERE account_no = ANY(:nos) "
                "ORDER BY account_no FOR UPDATE"
            ),
            {"nos": list(nos)},
        )
        if r.prepaid_fen
    }
    from billing.adapters.orm import PostingRow, Receivable

    open_rows = list(
        (
            await session.execute(
                select(Receivable).where(
                    Receivable.account_no == any_(list(nos)), Receivable.status == "open"
                )
            )
        ).scalars()
    )
    postings: dict[str, list] = {r.bill_no: [] for r in open_rows}
    partly = [r.bill_no for r in open_rows if r.principal_paid_fen or r.late_fee_credited_fen]
    if partly:
        partial = select(PostingRow).where(PostingRow.bill_no == any_(partly))
        for p in (await session.execute(partial)).scalars():
            postings[p.bill_no].append(p)
    open_bills: dict[str, list] = {}
    for r in open_rows:
        open_bills.setdefault(r.account_no, []).append(
            (to_domain(r, postings[r.bill_no]), policy_of(r.late_fee_policy))
        )
    return prepaid, open_bills


async def _insert(session: AsyncSession, bills, receivables, postings, balances, outbox) -> None:
    """Binary COPY of the chunk's rows (bills, receivables, prepaid postings, outbox events), then the
    drawn balances. In the chunk's transaction: all of it commits with the cursor, or none of it."""
    pg = (await (await session.connection()).get_raw_connection()).driver_connection
    if bills:
        await pg.copy_records_to_table("bills", records=bills, columns=_BILL_COLUMNS)
        await pg.copy_records_to_table("receivables", records=receivables, columns=_RECEIVABLE_COLUMNS)
    if postings:
        await pg.copy_records_to_table("postings", records=postings, columns=_POSTING_COLUMNS)
    if outbox:
        await pg.copy_records_to_table("outbox_messages", records=outbox, columns=OUTBOX_RECORD_COLUMNS)
    if balances:
        await session.execute(
            text(
                "UPDATE account_balances b SET prepaid_fen = v.prepaid, version = b.version + 1, "
                "updated_at = now() FROM (SELECT unnest(CAST(:nos AS varchar[])) AS no, "
                "unnest(CAST(:prepaid AS bigint[])) AS prepaid) v WHERE b.account_no = v.no"
            ),
            {"nos": list(balances), "prepaid": list(balances.values())},
        )


Invalidate = Callable[[list[str]], Awaitable[None]]


async def process_run(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    run_id,
    *,
    invalidate: Invalidate | None = None,
    max_chunks: int | None = None,
    on_chunk: Callable[[BillingRun], None] | None = None,
) -> BillingRun:
    """Process a run to its end (or ``max_chunks`` chunks: the crash tests stop there). Safe to call
    concurrently and again after a crash: each chunk locks the run and resumes after its cursor."""
    plan: _Plan | None = None
    chunks = 0
    while True:
        uow = UnitOfWork(session_factory, settings)
        async with uow:
            run = (
                await uow.session.execute(select(BillingRun).where(BillingRun.id == run_id).with_for_update())
            ).scalar_one_or_none()
            if run is None:
                raise BillingRunNotFound(f"No billing run {run_id}.")
            if run.status in ("completed", "failed"):
                return run
            if plan is None:
                plan = await _load_plan(uow.session, run.tariff_plan_code)
            if run.status == "pending":
                run.status, run.started_at = "running", utcnow()
            result = await _chunk(uow, run, plan, settings.billing_chunk_size)
            if result.last_account_no is None:
                run.status, run.finished_at = "completed", utcnow()
            else:
                run.cursor = result.last_account_no
                run.accounts_seen += result.accounts
                run.bills_issued += result.issued
                run.billed_fen += result.billed_fen
                run.skipped = dict(Counter(run.skipped) + result.skipped)
            await uow.commit()
        metrics.chunk_committed(
            run.utility,
            accounts=result.accounts,
            issued=result.issued,
            billed_fen=result.billed_fen,
            completed=run.status == "completed",
        )
        if on_chunk is not None:
            on_chunk(run)
        if invalidate is not None and result.billed_accounts:
            await invalidate(result.billed_accounts)
        if run.status == "completed":
            log.info(
                "billing run completed",
                extra={"run_id": str(run.id), "bills": run.bills_issued, "memo_hits": plan.hits},
            )
            return run
        chunks += 1
        if max_chunks is not None and chunks >= max_chunks:
            return run


async def mark_failed(session_factory: async_sessionmaker[AsyncSession], run_id, error: str) -> None:
    """Stop retrying a run that fails (the chunk in flight rolled back; what earlier chunks billed stays).
    Requesting the cycle again bills only the accounts left without a bill."""
    async with session_factory() as session:
        run = await session.get(BillingRun, run_id, with_for_update=True)
        if run is not None and run.status in ("pending", "running"):
            run.status, run.failure, run.finished_at = "failed", error[:2000], utcnow()
            await session.commit()
            metrics.RUNS_FINISHED.labels("failed").inc()


async def next_pending_run(session_factory: async_sessionmaker[AsyncSession]):
    """The oldest run waiting or interrupted (a ``running`` run whose processor died is resumed)."""
    async with session_factory() as session:
        row = (
            await session.execute(
                select(BillingRun.id)
                .where(BillingRun.status.in_(("pending", "running")))
                .order_by(BillingRun.created_at)
                .limit(1)
            )
        ).first()
        return row.id if row else None
