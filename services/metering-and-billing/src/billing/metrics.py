"""The metering-and-billing service's own Prometheus metrics (RED per route, outbox and consumers come from
``utilis_shared.metrics``; the residents' lookup cache counts its hits in ``billing.adapters.cache``).

Business counters are counted when their transaction commits, never before: a chunk of a billing run after
its commit; a payment applied to receivables through :func:`count_at_commit` (a handler's transaction that
rolls back and is retried counts once). Amounts are integer fen (1/100 yuan); dashboards divide by 100.
Labels stay bounded: utility, channel, outcome; never an account, bill or payment id.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

BILLS_ISSUED = Counter(
    "utilis_billing_bills_issued_total", "Bills issued by billing runs, by utility", ["utility"]
)
BILLED_FEN = Counter(
    "utilis_billing_billed_fen_total",
    "Amount billed by billing runs, in fen (1/100 yuan), by utility",
    ["utility"],
)
RUN_ACCOUNTS = Counter(
    "utilis_billing_run_accounts_total",
    "Accounts billing runs went through (billed or skipped), by utility",
    ["utility"],
)
RUNS_FINISHED = Counter(
    "utilis_billing_runs_finished_total", "Billing runs finished, by outcome (completed, failed)", ["outcome"]
)
RUN_IN_PROGRESS = Gauge("utilis_billing_run_in_progress", "1 while this scheduler processes a billing run")
RUN_LAST_PROGRESS = Gauge(
    "utilis_billing_run_last_progress_timestamp_seconds",
    "Unix time this scheduler last started a billing run or committed one of its chunks",
)
COLLECTED_FEN = Counter(
    "utilis_billing_collected_fen_total",
    "Payments applied to receivables and prepaid balances, in fen (1/100 yuan), by payment channel",
    ["channel"],
)
PAYMENTS_APPLIED = Counter(
    "utilis_billing_payments_applied_total",
    "Payments applied to receivables and prepaid balances (once per payment), by payment channel",
    ["channel"],
)

for _outcome in ("completed", "failed"):
    RUNS_FINISHED.labels(_outcome)


def chunk_committed(utility: str, *, accounts: int, issued: int, billed_fen: int, completed: bool) -> None:
    """After a billing run's chunk committed (``completed``: the run's last, empty chunk)."""
    RUN_LAST_PROGRESS.set_to_current_time()
    if completed:
        RUNS_FINISHED.labels("completed").inc()
        return
    RUN_ACCOUNTS.labels(utility).inc(accounts)
    BILLS_ISSUED.labels(utility).inc(issued)
    BILLED_FEN.labels(utility).inc(billed_fen)


def count_at_commit(session: AsyncSession, count: Callable[[], None]) -> None:
    """Run ``count`` once, when (and only if) ``session``'s transaction commits."""
    event.listen(session.sync_session, "after_commit", lambda _: count(), once=True)


def payment_applied(session: AsyncSession, *, channel: str | None, amount_fen: int) -> None:
    label = channel or "unknown"

    def count() -> None:
        PAYMENTS_APPLIED.labels(label).inc()
        COLLECTED_FEN.labels(label).inc(amount_fen)

    count_at_commit(session, count)
