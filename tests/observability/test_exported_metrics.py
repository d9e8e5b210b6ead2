"""Every metric name the alert rules and the dashboards use is one the running processes export: each
process of deploy/platform.yaml started by the test set-up (`make test`, `make up`) is scraped on its
/metrics. Histogram series count as their base name's; recording rules' names and Prometheus' own `up`
count as defined. A labelled metric shows its `# TYPE` line before its first use, so names count whether
or not the stack has had traffic."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


async def test_every_metric_the_rules_and_dashboards_use_is_exported(oc) -> None:
    exported, failed = await oc.scrape(oc.platform_targets())
    assert not failed, f"processes not reachable (start the stack with `make test` or `make up`): {failed}"
    everything = set().union(*exported.values())
    used = oc.used_names()
    assert len(used) > 30
    missing = oc.missing_names(used, everything)
    assert not missing, {name: sorted(where) for name, where in missing.items()}


async def test_the_check_would_catch_a_name_nobody_exports(oc) -> None:
    exported, _ = await oc.scrape(oc.platform_targets())
    everything = set().union(*exported.values())
    used = {"utilis_http_request_duration_seconds_bucket": {"x"}, "utilis_payment_orders_totl": {"typo"}}
    assert oc.missing_names(used, everything) == {"utilis_payment_orders_totl": {"typo"}}


async def test_each_service_exports_its_own_metrics(oc) -> None:
    exported, failed = await oc.scrape(oc.platform_targets())
    assert not failed, failed
    expect = {
        "gateway-api": {"utilis_gateway_upstream_requests_total", "utilis_http_requests_total"},
        "metering-and-billing-api": {"utilis_billing_lookup_cache_total", "utilis_dependency_up"},
        "metering-and-billing-consumer": {"utilis_billing_collected_fen_total", "utilis_consumer_lag_events"},
        "metering-and-billing-scheduler": {
            "utilis_billing_run_in_progress",
            "utilis_billing_run_last_progress_timestamp_seconds",
            "utilis_billing_bills_issued_total",
        },
        "payment-api": {"utilis_payment_orders_total", "utilis_payment_callbacks_total"},
        "customer-relay": {"utilis_outbox_backlog_events", "utilis_outbox_oldest_age_seconds"},
    }
    for process, names in expect.items():
        assert names <= exported[process], (process, names - exported[process])
