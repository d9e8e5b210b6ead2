"""Payment orders are counted from the events a transaction committed: by channel and outcome, and the
succeeded amounts in fen; other events count nothing."""

from __future__ import annotations

from prometheus_client import REGISTRY

from payment.metrics import observe_committed
from utilis_shared.events import Event


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def event(kind: str, channel: str, amount_fen: int = 12_345) -> Event:
    return Event(
        type=f"payment.{kind}",
        source="payment",
        subject="2301000001",
        data={"payment_id": "P1", "account_no": "2301000001", "amount_fen": amount_fen, "channel": channel},
    )


def test_committed_order_events_are_counted_by_channel_and_outcome() -> None:
    channel = "bank:metricstest"
    before = value("utilis_payment_orders_total", channel="wechat", outcome="succeeded")
    observe_committed(
        [
            event("payment.created", channel),
            event("payment.succeeded", channel, 207_600),
            event("payment.failed", channel),
            event("refund_case.opened", channel),  # not an order's transition
            event("payment.succeeded", "wechat", 100),
        ]
    )
    assert value("utilis_payment_orders_total", channel=channel, outcome="created") == 1
    assert value("utilis_payment_orders_total", channel=channel, outcome="succeeded") == 1
    assert value("utilis_payment_orders_total", channel=channel, outcome="failed") == 1
    assert value("utilis_payment_succeeded_fen_total", channel=channel) == 207_600
    assert value("utilis_payment_orders_total", channel="wechat", outcome="succeeded") == before + 1
    # The known channels' series exist at zero before any payment (ratios and panels see them).
    assert (
        REGISTRY.get_sample_value("utilis_payment_orders_total", {"channel": "alipay", "outcome": "failed"})
        is not None
    )


def test_observed_counts_what_the_unit_of_work_committed_and_passes_the_result_on() -> None:
    from types import SimpleNamespace

    from payment.metrics import observed

    committed = SimpleNamespace(committed_events=[event("payment.closed", "bank:observedtest")])
    assert observed(committed, "result") == "result"  # type: ignore[arg-type]
    assert value("utilis_payment_orders_total", channel="bank:observedtest", outcome="closed") == 1


def test_reconciliation_runs_and_their_cases_are_counted_with_banks_as_one_label() -> None:
    def completed(provider: str, trigger: str, kinds: dict[str, int]) -> Event:
        return Event(
            type="payment.reconciliation.completed",
            source="payment",
            subject=f"{provider}:2026-11-20",
            data={"provider": provider, "trigger": trigger, "balanced": not kinds, "cases_by_kind": kinds},
        )

    runs = "utilis_payment_reconciliation_runs_total"
    cases = "utilis_payment_reconciliation_cases_total"
    before = {
        "bank_cases": value(runs, provider="bank", outcome="cases", trigger="rerun"),
        "alipay_balanced": value(runs, provider="alipay", outcome="balanced", trigger="import"),
        "bank_missing": value(cases, provider="bank", kind="missing_here"),
        "bank_amount": value(cases, provider="bank", kind="amount_differs"),
    }
    observe_committed(
        [
            completed("bank:icbc", "rerun", {"missing_here": 2, "amount_differs": 1}),
            completed("bank:boc", "rerun", {"missing_here": 1}),
            completed("alipay", "import", {}),
        ]
    )
    assert value(runs, provider="bank", outcome="cases", trigger="rerun") == before["bank_cases"] + 2
    assert (
        value(runs, provider="alipay", outcome="balanced", trigger="import") == before["alipay_balanced"] + 1
    )
    assert value(cases, provider="bank", kind="missing_here") == before["bank_missing"] + 3
    assert value(cases, provider="bank", kind="amount_differs") == before["bank_amount"] + 1
    assert (
        REGISTRY.get_sample_value(runs, {"provider": "bank:icbc", "outcome": "cases", "trigger": "rerun"})
        is None
    )
