"""Reconciliation (对账) use cases: import a provider's daily statement file and reconcile it, persisted; the
case workflow. The rules are :mod:`payment.domain.reconciliation` (pure); this module gathers the facts,
calls them and stores the outcome. Use cases stage rows; the caller commits (the unit of work).

* **Import.** ``import_statement(uow, provider, day, data, imported_by)``: the file is parsed first
  (:func:`payment.domain.statements.parse_statement`); a file with any error is refused with every error
  listed (422 ``statement_rejected``) and nothing is stored. Only a day that is over (Asia/Shanghai) can be
  reconciled. Imports of one provider and day are serialised (a transaction advisory lock).
* **Idempotent by content.** The same bytes for the same provider and day are one import: importing them
  again returns the run they produced and stores nothing (``created`` false). If a later, different file
  has superseded that run, importing the old bytes again is 409 ``statement_superseded``.
* **Supersede, keep history.** A different file for a provider and day that already has a run makes a new
  run; the earlier one becomes ``superseded`` (``superseded_by``) and its still-open cases are dismissed
  with a note naming the new run (cases already resolved keep their resolution). One ``current`` run per
  provider and day (a partial unique index).
* **Facts gathered** for provider *p* and day *D* (window = *D* widened by the cut-over on both sides):
  the orders of *p* that succeeded (succeeded or refunded) with ``paid_at`` — the provider's own success
  time — in the window; every order of *p* the statement names by order number or transaction id, whatever
  its status; every order of *p* billing settled with a ``paid_at`` in the window. Settlements: the
  projection rows (:mod:`payment.service_layer.settlements`) of all those orders and of every order number
  the statement names (so a settlement of an order unknown here shows when the statement names it; one
  neither here nor on the statement belongs to no provider's run and is not reported). Refunds: the
  ``refunds`` rows of *p*'s orders that succeeded in the window (``completed_at``, the provider's time) and
  every refund of an order the statement names (requested and submitted ones are pending, rejected ones
  failed).
* **Cut-over carry.** The run stores :attr:`Reconciliation.carry` (pending cut-over payments and refunds,
  those matched ahead) in ``carry``; the next day's run of the same provider reads the previous day's
  *current* run and passes it as ``carried`` (``carried_from`` names it).
* **Following days re-run.** A new run of a day (a first import, or a different file) changes what it
  carries; so the next day's current run, if any, is reconciled again from its own stored file with the new
  carry, and so on day after day, until a re-run carries what the run it replaced carried (nothing later
  can change) or no next day has a run. Each re-run supersedes the run it replaces like a re-import
  (``run_by`` ``system:rerun``; open cases dismissed, naming the new run), but a case a person already
  resolved or dismissed that the re-run finds again keeps that decision. Days can so be reconciled in any
  order: a day imported before its previous day is re-run once that day arrives.
* **Every run** emits ``payment.reconciliation.completed`` (``trigger`` ``import`` or ``rerun``).
* **Cases** are stored one row per :class:`~payment.domain.reconciliation.Case`, ``open``; a person resolves
  (``resolved``) or dismisses (``dismissed``) one with a note (``resolve_case``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from payment.adapters.orm import (
    BillingSettlement,
    PaymentOrder,
    ReconciliationCase,
    ReconciliationRun,
    Refund,
    StatementImport,
)
from payment.domain.reconciliation import (
    DEFAULT_CUTOVER,
    CarryOver,
    Case,
    PaymentFact,
    Reconciliation,
    ReconciliationInputError,
    RefundFact,
    RefundStatus,
    SettlementFact,
    day_bounds,
    reconcile,
)
from payment.domain.statements import StatementLine, is_statement_provider, parse_statement
from payment.events import ReconciliationCompleted, catalog
from utilis_shared.db import UnitOfWork, advisory_lock
from utilis_shared.errors import Conflict, NotFound, UnprocessableEntity
from utilis_shared.ids import new_id
from utilis_shared.timeutil import business_date_of, utcnow

SUCCEEDED_STATUSES = ("succeeded", "refunded")
RESOLUTIONS = ("resolved", "dismissed")
MAX_LIMIT = 200


# --------------------------------------------------------------------------------------------- errors
class UnknownStatementProvider(UnprocessableEntity):
    code = "unknown_provider"


class DayNotOver(UnprocessableEntity):
    code = "day_not_over"


class StatementRejectedProblem(UnprocessableEntity):
    code = "statement_rejected"


class StatementSuperseded(Conflict):
    code = "statement_superseded"


class ReconciliationInputsInconsistent(UnprocessableEntity):
    code = "reconciliation_inputs_inconsistent"


class RunNotFound(NotFound):
    code = "reconciliation_not_found"


class CaseNotFound(NotFound):
    code = "reconciliation_case_not_found"


class CaseNotOpen(Conflict):
    code = "case_not_open"


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"


# ---------------------------------------------------------------------------------------------- import
@dataclass(frozen=True)
class ImportResult:
    run: ReconciliationRun
    created: bool  # false: these bytes were imported before; the run they produced, nothing new stored
    reruns: tuple[ReconciliationRun, ...] = ()  # the following days reconciled again, in day order


#: Who a re-run of a following day is by (``run_by``).
RERUN_BY = "system:rerun"


def _any(values: Sequence[str]):
    """``= ANY(:array)``: one bind parameter however many values (asyncpg caps parameters at 32767)."""
    return any_(bindparam(None, list(values), type_=ARRAY(String())))


def _fact(order: PaymentOrder) -> PaymentFact:
    return PaymentFact(
        order_no=order.order_no,
        provider_txn_id=order.provider_txn_id,
        amount_fen=order.amount_fen,
        status=order.status,
        channel=order.channel,
        # paid_at is the provider's success time from its notice or query; a succeeded order without one
        # (never expected) falls back to when the row last changed.
        succeeded_at=order.paid_at or (order.updated_at if order.status in SUCCEEDED_STATUSES else None),
    )


@dataclass(frozen=True)
class Facts:
    payments: tuple[PaymentFact, ...]
    settlements: tuple[SettlementFact, ...]
    refunds: tuple[RefundFact, ...] = ()


async def gather_facts(
    session: AsyncSession,
    *,
    provider: str,
    day: date,
    lines: Sequence[StatementLine],
    cutover: timedelta = DEFAULT_CUTOVER,
) -> Facts:
    """The payments, settlements (and refunds) the day's reconciliation needs (see the module docstring)."""
    start, end = day_bounds(day)
    lo, hi = start - cutover, end + cutover
    named_orders = sorted({x.order_no for x in lines})
    named_txns = sorted({x.provider_txn_id for x in lines})
    settled_in_window = (
        (
            await session.execute(
                select(BillingSettlement.payment_id)
                .join(PaymentOrder, PaymentOrder.order_no == BillingSettlement.payment_id)
                .where(
                    PaymentOrder.provider == provider,
                    BillingSettlement.paid_at >= lo,
                    BillingSettlement.paid_at < hi,
                )
            )
        )
        .scalars()
        .all()
    )
    wanted = sorted(set(named_orders) | set(settled_in_window))
    orders = (
        (
            await session.execute(
                select(PaymentOrder)
                .where(
                    PaymentOrder.provider == provider,
                    or_(
                        and_(
                            PaymentOrder.status.in_(SUCCEEDED_STATUSES),
                            PaymentOrder.paid_at >= lo,
                            PaymentOrder.paid_at < hi,
                        ),
                        PaymentOrder.order_no == _any(wanted),
                        PaymentOrder.provider_txn_id == _any(named_txns),
                    ),
                )
                .order_by(PaymentOrder.order_no)
            )
        )
        .scalars()
        .all()
    )
    payments = tuple(_fact(o) for o in orders)
    settled_ids = sorted({p.order_no for p in payments} | set(named_orders))
    rows = (
        (
            await session.execute(
                select(BillingSettlement)
                .where(BillingSettlement.payment_id == _any(settled_ids))
                .order_by(BillingSettlement.payment_id, BillingSettlement.event_time)
            )
        )
        .scalars()
        .all()
    )
    settlements = tuple(SettlementFact(r.payment_id, r.amount_fen) for r in rows)
    refund_rows = (
        (
            await session.execute(
                select(Refund)
                .join(PaymentOrder, PaymentOrder.order_no == Refund.order_no)
                .where(
                    PaymentOrder.provider == provider,
                    or_(
                        and_(
                            Refund.status == "succeeded", Refund.completed_at >= lo, Refund.completed_at < hi
                        ),
                        Refund.order_no == _any(named_orders),
                    ),
                )
                .order_by(Refund.refund_no)
            )
        )
        .scalars()
        .all()
    )
    refunds = tuple(
        RefundFact(
            refund_no=r.refund_no,
            order_no=r.order_no,
            amount_fen=r.amount_fen,
            refunded_at=r.completed_at,
            status=_REFUND_STATUS[r.status],
        )
        for r in refund_rows
    )
    return Facts(payments=payments, settlements=settlements, refunds=refunds)


# A refund's state here, as reconciliation sees it: asked for but not confirmed is pending.
_REFUND_STATUS = {
    "requested": RefundStatus.PENDING,
    "submitted": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "rejected": RefundStatus.FAILED,
    "failed": RefundStatus.FAILED,
}


# ------------------------------------------------------------------------------------------ carry-over
def _carry_json(rec: Reconciliation) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "payments": [
            {
                "order_no": p.order_no,
                "provider_txn_id": p.provider_txn_id,
                "amount_fen": p.amount_fen,
                "status": p.status.value,
                "channel": p.channel,
                "succeeded_at": iso(p.succeeded_at),
            }
            for p in rec.pending_cutover
        ],
        "refunds": [
            {
                "refund_no": r.refund_no,
                "order_no": r.order_no,
                "amount_fen": r.amount_fen,
                "refunded_at": iso(r.refunded_at),
                "status": r.status.value,
            }
            for r in rec.pending_cutover_refunds
        ],
        "matched_ahead": sorted(rec.matched_ahead),
        "matched_ahead_refunds": sorted(rec.matched_ahead_refunds),
    }


def _carry_from_json(day: date, data: dict[str, Any]) -> CarryOver:
    def at(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return CarryOver(
        day=day,
        payments=tuple(
            PaymentFact(**{**p, "succeeded_at": at(p.get("succeeded_at"))}) for p in data.get("payments", ())
        ),
        refunds=tuple(
            RefundFact(**{**r, "refunded_at": at(r.get("refunded_at"))}) for r in data.get("refunds", ())
        ),
        matched_ahead=frozenset(data.get("matched_ahead", ())),
        matched_ahead_refunds=frozenset(data.get("matched_ahead_refunds", ())),
    )


async def current_run(session: AsyncSession, provider: str, day: date) -> ReconciliationRun | None:
    return (
        await session.execute(
            select(ReconciliationRun).where(
                ReconciliationRun.provider == provider,
                ReconciliationRun.day == day,
                ReconciliationRun.status == "current",
            )
        )
    ).scalar_one_or_none()


# ---------------------------------------------------------------------------------------------- the use
def check_request(provider: str, day: date, now: datetime) -> None:
    if not is_statement_provider(provider):
        raise UnknownStatementProvider(
            f"No statement format for provider {provider!r} (wechat, alipay, bank:<code>).",
            provider=provider,
        )
    today = business_date_of(now)
    if day >= today:
        raise DayNotOver(
            f"The business day {day.isoformat()} is not over (today is {today.isoformat()}, Asia/Shanghai); "
            "a provider's statement of a day is complete only the day after.",
        )


async def import_statement(
    uow: UnitOfWork,
    provider: str,
    day: date,
    data: bytes,
    imported_by: str,
    *,
    now: datetime | None = None,
    cutover: timedelta = DEFAULT_CUTOVER,
) -> ImportResult:
    """Import ``provider``'s statement of ``day`` and reconcile it (rules in the module docstring)."""
    now = now or utcnow()
    check_request(provider, day, now)
    parsed = parse_statement(provider, data)
    if not parsed.ok:
        raise StatementRejectedProblem(
            f"The {provider} statement of {day.isoformat()} was refused: {len(parsed.errors)} problem(s); "
            "nothing was stored.",
            errors=[
                {"field": "file", "line": e.line_no, "message": e.reason, "type": "statement_line"}
                for e in parsed.errors
            ],
            error_count=len(parsed.errors),
        )
    lines = parsed.lines
    session = uow.session
    await _lock_day(session, provider, day)
    digest = hashlib.sha256(data).hexdigest()
    runs = (
        (
            await session.execute(
                select(ReconciliationRun)
                .join(StatementImport, StatementImport.id == ReconciliationRun.import_id)
                .where(
                    StatementImport.provider == provider,
                    StatementImport.day == day,
                    StatementImport.sha256 == digest,
                )
                .order_by(ReconciliationRun.created_at.desc())
            )
        )
        .scalars()
        .all()
    )  # a file's runs: its own, then any re-runs after an earlier day changed
    if runs:
        current = next((r for r in runs if r.status == "current"), None)
        if current is None:
            raise StatementSuperseded(
                f"This file was imported before (run {runs[0].id}) and a later file superseded it "
                f"(run {runs[0].superseded_by}); nothing was done.",
                run_id=str(runs[0].id),
                superseded_by=str(runs[0].superseded_by),
            )
        return ImportResult(current, created=False)

    imported = StatementImport(
        provider=provider,
        day=day,
        sha256=digest,
        size_bytes=len(data),
        line_count=len(lines),
        content=data,
        imported_by=imported_by,
    )
    session.add(imported)
    await session.flush()
    replaced = await current_run(session, provider, day)
    run = await _reconcile_day(
        uow,
        provider=provider,
        day=day,
        lines=lines,
        import_id=imported.id,
        run_by=imported_by,
        replaced=replaced,
        dismissal="对账单重新导入，由对账批次 {run_id} 取代",
        now=now,
        cutover=cutover,
    )
    reruns = await _rerun_following_days(uow, run, replaced, now=now, cutover=cutover)
    return ImportResult(run, created=True, reruns=tuple(reruns))


async def _lock_day(session: AsyncSession, provider: str, day: date) -> None:
    """Serialise the runs of one provider and day (a transaction advisory lock). Imports take their own
    day's, then the following days' in day order, so two imports never wait on each other in a cycle."""
    await advisory_lock(session, f"payment.reconciliation:{provider}:{day.isoformat()}")


def _case_key(case: Case | ReconciliationCase) -> tuple:
    """What makes two runs' cases the same mismatch (the domain's kinds are ``StrEnum``: equal to the
    stored strings)."""
    return (
        case.kind,
        case.against,
        case.subject,
        case.order_no,
        case.provider_txn_id,
        case.refund_no,
        case.expected_fen,
        case.actual_fen,
    )


async def _reconcile_day(
    uow: UnitOfWork,
    *,
    provider: str,
    day: date,
    lines: Sequence[StatementLine],
    import_id: uuid.UUID,
    run_by: str,
    replaced: ReconciliationRun | None,
    dismissal: str,
    now: datetime,
    cutover: timedelta,
) -> ReconciliationRun:
    """Reconcile ``day`` from its statement ``lines`` against what is recorded here, with the previous day's
    carry; store the run and its cases, superseding ``replaced`` (its open cases dismissed with the note
    ``dismissal``, ``{run_id}`` the new run's). A re-run (``run_by`` :data:`RERUN_BY`, the same file): a
    case of ``replaced`` that a person resolved or dismissed, found again, keeps that decision. Emits
    ``payment.reconciliation.completed``."""
    session = uow.session
    rerun = run_by == RERUN_BY
    facts = await gather_facts(session, provider=provider, day=day, lines=lines, cutover=cutover)
    previous = await current_run(session, provider, day - timedelta(days=1))
    carried = _carry_from_json(previous.day, previous.carry) if previous is not None else None
    try:
        rec = reconcile(
            provider=provider,
            day=day,
            statement=lines,
            payments=facts.payments,
            settlements=facts.settlements,
            refunds=facts.refunds,
            carried=carried,
            cutover=cutover,
        )
    except (ReconciliationInputError, ValueError) as exc:
        raise ReconciliationInputsInconsistent(
            f"The statement and the records here contradict each other: {exc}"
        ) from exc

    run_id = new_id()
    decided: dict[tuple, ReconciliationCase] = {}
    if replaced is not None:
        if rerun:
            decided = {
                _case_key(c): c
                for c in (
                    await session.execute(
                        select(ReconciliationCase).where(
                            ReconciliationCase.run_id == replaced.id, ReconciliationCase.status != "open"
                        )
                    )
                ).scalars()
            }
        replaced.status, replaced.superseded_by = "superseded", run_id
        await session.execute(
            update(ReconciliationCase)
            .where(ReconciliationCase.run_id == replaced.id, ReconciliationCase.status == "open")
            .values(
                status="dismissed",
                resolution_note=dismissal.format(run_id=run_id),
                resolved_by=RERUN_BY if rerun else "system:statement-reimport",
                resolved_at=now,
                version=ReconciliationCase.version + 1,
            )
        )
        await session.flush()
    st, rc = rec.totals.statement, rec.totals.recorded
    run = ReconciliationRun(
        id=run_id,
        import_id=import_id,
        provider=provider,
        day=day,
        status="current",
        carried_from=previous.id if previous is not None else None,
        cutover_seconds=int(cutover.total_seconds()),
        lines_count=len(lines),
        matched_count=len(rec.matches),
        cases_count=len(rec.cases),
        statement_payments_count=st.payments_count,
        statement_payments_fen=st.payments_fen,
        statement_refunds_count=st.refunds_count,
        statement_refunds_fen=st.refunds_fen,
        statement_fees_fen=st.fees_fen,
        recorded_payments_count=rc.payments_count,
        recorded_payments_fen=rc.payments_fen,
        recorded_refunds_count=rc.refunds_count,
        recorded_refunds_fen=rc.refunds_fen,
        carry=_carry_json(rec),
        run_by=run_by,
    )
    session.add(run)
    await session.flush()
    cases = []
    for c in rec.cases:
        before = decided.get(_case_key(c))
        cases.append(
            ReconciliationCase(
                run_id=run_id,
                provider=provider,
                day=day,
                kind=c.kind.value,
                against=c.against.value,
                subject=c.subject.value,
                order_no=c.order_no,
                provider_txn_id=c.provider_txn_id,
                refund_no=c.refund_no,
                expected_fen=c.expected_fen,
                actual_fen=c.actual_fen,
                raw_line_no=c.raw_line_no,
                detail_zh=c.detail_zh,
                status=before.status if before else "open",
                resolution_note=before.resolution_note if before else None,
                resolved_by=before.resolved_by if before else None,
                resolved_at=before.resolved_at if before else None,
                version=1,
            )
        )
    session.add_all(cases)
    await session.flush()
    uow.emit(
        catalog.build(
            ReconciliationCompleted(
                run_id=str(run.id),
                provider=provider,
                day=day,
                trigger="rerun" if rerun else "import",
                replaces=str(replaced.id) if replaced is not None else None,
                carried_from=str(run.carried_from) if run.carried_from else None,
                lines_count=run.lines_count,
                matched_count=run.matched_count,
                cases_count=run.cases_count,
                balanced=run.cases_count == 0,
                cases_by_kind=Counter(c.kind.value for c in rec.cases),
                statement_payments_fen=run.statement_payments_fen,
                recorded_payments_fen=run.recorded_payments_fen,
                statement_refunds_fen=run.statement_refunds_fen,
                recorded_refunds_fen=run.recorded_refunds_fen,
            ),
            subject=f"{provider}:{day.isoformat()}",
        )
    )
    return run


async def _rerun_following_days(
    uow: UnitOfWork,
    run: ReconciliationRun,
    replaced: ReconciliationRun | None,
    *,
    now: datetime,
    cutover: timedelta,
) -> list[ReconciliationRun]:
    """Reconcile the days after ``run``'s again, each from its own stored file, while what a day carries
    changed (module docstring); returns the new runs in day order."""
    session = uow.session
    reruns: list[ReconciliationRun] = []
    while True:
        day = run.day + timedelta(days=1)
        await _lock_day(session, run.provider, day)
        following = await current_run(session, run.provider, day)
        if following is None:
            return reruns
        if replaced is not None and following.carried_from == replaced.id and replaced.carry == run.carry:
            return reruns  # it was reconciled with the same carry: nothing can change from here on
        content = await session.scalar(  # the file (a deferred column); a run's import is never deleted
            select(StatementImport.content).where(StatementImport.id == following.import_id)
        )
        parsed = parse_statement(run.provider, content)  # accepted when it was imported
        rerun = await _reconcile_day(
            uow,
            provider=run.provider,
            day=day,
            lines=parsed.lines,
            import_id=following.import_id,
            run_by=RERUN_BY,
            replaced=following,
            dismissal=f"前一日对账批次 {run.id} 变更了跨日结转，本日由对账批次 {{run_id}} 重新对账",
            now=now,
            cutover=cutover,
        )
        reruns.append(rerun)
        run, replaced = rerun, following


# ----------------------------------------------------------------------------------------------- cases
async def resolve_case(
    uow: UnitOfWork,
    case_id: uuid.UUID,
    resolution: str,
    note: str,
    by: str,
    *,
    now: datetime | None = None,
) -> ReconciliationCase:
    """Close an open case as ``resolved`` (the mismatch was explained and fixed) or ``dismissed`` (not a
    real mismatch), with a note and who did it."""
    if resolution not in RESOLUTIONS:
        raise UnprocessableEntity(
            f"resolution must be one of {', '.join(RESOLUTIONS)}", code="validation_failed"
        )
    case = (
        await uow.session.execute(
            select(ReconciliationCase).where(ReconciliationCase.id == case_id).with_for_update()
        )
    ).scalar_one_or_none()
    if case is None:
        raise CaseNotFound(f"No reconciliation case {case_id}.")
    if case.status != "open":
        raise CaseNotOpen(
            f"Case {case_id} is already {case.status} (by {case.resolved_by}).", case_status=case.status
        )
    case.status = resolution
    case.resolution_note = note
    case.resolved_by = by
    case.resolved_at = now or utcnow()
    case.version += 1
    await uow.session.flush()
    return case


# --------------------------------------------------------------------------------------------- queries
def encode_cursor(row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(row_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


async def list_runs(
    session: AsyncSession, *, provider: str | None, day: date | None, limit: int, cursor: str | None
) -> Page:
    """Runs newest first (superseded ones too: the history)."""
    stmt = select(ReconciliationRun)
    if provider is not None:
        stmt = stmt.where(ReconciliationRun.provider == provider)
    if day is not None:
        stmt = stmt.where(ReconciliationRun.day == day)
    if cursor is not None:
        stmt = stmt.where(ReconciliationRun.id < decode_cursor(cursor))
    rows = (
        (await session.execute(stmt.order_by(ReconciliationRun.id.desc()).limit(limit + 1))).scalars().all()
    )
    return Page(list(rows[:limit]), encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> tuple[ReconciliationRun, StatementImport]:
    found = (
        await session.execute(
            select(ReconciliationRun, StatementImport)
            .join(StatementImport, StatementImport.id == ReconciliationRun.import_id)
            .where(ReconciliationRun.id == run_id)
        )
    ).one_or_none()
    if found is None:
        raise RunNotFound(f"No reconciliation run {run_id}.")
    return found[0], found[1]


async def case_counts(session: AsyncSession, run_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(ReconciliationCase.status, func.count())
        .where(ReconciliationCase.run_id == run_id)
        .group_by(ReconciliationCase.status)
    )
    return {"open": 0, "resolved": 0, "dismissed": 0} | {status: n for status, n in rows.all()}


async def list_cases(
    session: AsyncSession,
    *,
    status: str | None,
    provider: str | None,
    day: date | None,
    run_id: uuid.UUID | None,
    kind: str | None,
    against: str | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """Cases oldest first (a work queue)."""
    stmt = select(ReconciliationCase)
    for column, value in (
        (ReconciliationCase.status, status),
        (ReconciliationCase.provider, provider),
        (ReconciliationCase.day, day),
        (ReconciliationCase.run_id, run_id),
        (ReconciliationCase.kind, kind),
        (ReconciliationCase.against, against),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if cursor is not None:
        stmt = stmt.where(ReconciliationCase.id > decode_cursor(cursor))
    rows = (await session.execute(stmt.order_by(ReconciliationCase.id).limit(limit + 1))).scalars().all()
    return Page(list(rows[:limit]), encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)


async def get_case(session: AsyncSession, case_id: uuid.UUID) -> ReconciliationCase:
    case = await session.get(ReconciliationCase, case_id)
    if case is None:
        raise CaseNotFound(f"No reconciliation case {case_id}.")
    return case


async def daily_totals(session: AsyncSession, day: date) -> list[ReconciliationRun]:
    """The day's current runs, one per channel (provider), sorted by channel."""
    rows = await session.execute(
        select(ReconciliationRun)
        .where(ReconciliationRun.day == day, ReconciliationRun.status == "current")
        .order_by(ReconciliationRun.provider)
    )
    return list(rows.scalars().all())
