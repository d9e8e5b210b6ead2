"""The payment service's own Prometheus metrics (RED per route, outbox and consumers come from
``utilis_shared.metrics``; callbacks by provider and outcome are ``utilis_payment_callbacks_total`` in
``payment.api.callbacks``).

Orders are counted from the events a transaction committed (``uow.committed_events``, after
``uow.commit()``), so a rolled-back or replayed request counts nothing and every path that moves an order
(the API, a callback, the expiry sweep) counts the same way:

    payment_metrics.observe_committed(uow.committed_events)      # after uow.commit()
    return respond(payment_metrics.observed(uow, await execute(uow, command, ...)))   # a route

Callback latency: ``with payment_metrics.CALLBACK_DURATION.labels(provider).time(): ...`` around the
handling, labelled ``wechat`` / ``alipay`` (the route's closed pattern) or ``bank`` (bank codes come from
the path: folded into one label so that a caller cannot create series).

Reconciliation runs and the mismatches they found are counted from ``payment.reconciliation.completed``
the same way (``utilis_payment_reconciliation_runs_total`` / ``_cases_total``).

Amounts are integer fen (1/100 yuan); labels are the channel (``wechat``, ``alipay``, ``bank:<code>``,
``counter``, ``withholding``), the outcome and the provider; never an order, account or transaction id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from prometheus_client import Counter, Histogram

from payment.domain.reconciliation import CaseKind
from utilis_shared.db import UnitOfWork
from utilis_shared.events import Event
from utilis_shared.metrics import LATENCY_BUCKETS

ORDERS = Counter(
    "utilis_payment_orders_total",
    "Payment orders by channel and outcome (created, succeeded, failed, closed, refunded), counted at commit",
    ["channel", "outcome"],
)
SUCCEEDED_FEN = Counter(
    "utilis_payment_succeeded_fen_total",
    "Amounts of succeeded payments, in fen (1/100 yuan), by channel",
    ["channel"],
)
CALLBACK_DURATION = Histogram(
    "utilis_payment_callback_duration_seconds",
    "Time to verify, apply and answer a provider's callback, by provider",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)

RECONCILIATION_RUNS = Counter(
    "utilis_payment_reconciliation_runs_total",
    "Reconciliation (对账) runs by provider (banks as one label), outcome (balanced, cases) and trigger "
    "(import, rerun), counted at commit",
    ["provider", "outcome", "trigger"],
)
RECONCILIATION_CASES = Counter(
    "utilis_payment_reconciliation_cases_total",
    "Mismatches found by reconciliation runs, by provider (banks as one label) and kind, counted at commit "
    "(a re-run finds a mismatch again)",
    ["provider", "kind"],
)
STATEMENT_FETCHES = Counter(
    "utilis_payment_statement_fetches_total",
    "Providers' daily statements fetched by the scheduler or the CLI, by provider (banks as one label) and "
    "outcome (imported, unchanged: the same file again, not_ready: the provider has not made it yet, error)",
    ["provider", "outcome"],
)

OUTCOMES = {
    "payment.payment.created": "created",
    "payment.payment.succeeded": "succeeded",
    "payment.payment.failed": "failed",
    "payment.payment.closed": "closed",
    "payment.payment.refunded": "refunded",
}
# Label sets shown at zero from the start (dashboards and ratios see the series before the first payment).
KNOWN_CHANNELS = ("wechat", "alipay", "counter")
for _channel in KNOWN_CHANNELS:
    SUCCEEDED_FEN.labels(_channel)
    for _outcome in OUTCOMES.values():
        ORDERS.labels(_channel, _outcome)


for _provider in ("wechat", "alipay", "bank"):
    for _outcome in ("imported", "unchanged", "not_ready", "error"):
        STATEMENT_FETCHES.labels(_provider, _outcome)
    for _outcome in ("balanced", "cases"):
        RECONCILIATION_RUNS.labels(_provider, _outcome, "import")
    for _kind in CaseKind:
        RECONCILIATION_CASES.labels(_provider, _kind.value)


def provider_label(provider: str) -> str:
    """A provider as a metric label: every bank is ``bank`` (bank codes come from requests' paths, so they
    must not create series)."""
    return "bank" if provider.startswith("bank:") else provider


def _observe_reconciliation(data: dict) -> None:
    provider = provider_label(str(data["provider"]))
    outcome = "balanced" if data.get("balanced") else "cases"
    RECONCILIATION_RUNS.labels(provider, outcome, str(data.get("trigger") or "import")).inc()
    for kind, count in (data.get("cases_by_kind") or {}).items():
        RECONCILIATION_CASES.labels(provider, kind).inc(int(count))


def observe_committed(events: Iterable[Event]) -> None:
    """Count the payment orders' transitions and the reconciliation runs among ``events`` (what a unit of
    work just committed)."""
    for event in events:
        if event.type == "payment.reconciliation.completed":
            _observe_reconciliation(event.data)
            continue
        outcome = OUTCOMES.get(event.type)
        if outcome is None:
            continue
        channel = str(event.data.get("channel") or "unknown")
        ORDERS.labels(channel, outcome).inc()
        if outcome == "succeeded":
            SUCCEEDED_FEN.labels(channel).inc(int(event.data.get("amount_fen") or 0))


T = TypeVar("T")


def observed(uow: UnitOfWork, result: T) -> T:
    """Count what ``uow`` committed (nothing for a replayed or failed command) and pass ``result`` on:
    ``respond(observed(uow, await execute(uow, command, present)))``."""
    observe_committed(uow.committed_events)
    return result
