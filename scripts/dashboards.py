"""The platform's Grafana dashboards, generated: helm/utilis/files/dashboards/<name>.json (the chart ships
them as ConfigMaps for Grafana's dashboard sidecar; templates/observability/dashboards.yaml).

    uv run python scripts/dashboards.py           write the JSON files
    uv run python scripts/dashboards.py --check   exit 1 if a committed file differs from what this writes

Every query goes through :func:`q`, which adds the ``namespace`` variable's matcher, so one Grafana can show
several releases. Metric names are the processes' own (shared/src/utilis_shared/metrics.py, the gateway's,
billing's and payment's metrics modules); tests/observability checks each query parses and names only
metrics the running processes export. Amounts are counted in fen and shown in yuan (÷ 100).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "helm" / "utilis" / "files" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
NOT_PROBES = 'route!~"/livez|/readyz"'
RATE = "$__rate_interval"


def q(metric: str, *matchers: str) -> str:
    """``metric{namespace=~"$namespace", <matchers>}``."""
    return metric + "{" + ", ".join(('namespace=~"$namespace"', *matchers)) + "}"


class Board:
    """Panels laid out left to right in rows of 24 columns."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]) -> None:
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
                "panels": [],
                "id": len(self.panels) + 1,
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x = self._row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self._x + w > 24:
            self._newline()
        pos = {"x": self._x, "y": self._y, "w": w, "h": h}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        description: str = "",
        w: int = 12,
        h: int = 8,
        decimals: int | None = None,
        thresholds: list[tuple[float | None, str]] | None = None,
        stack: bool = False,
        max_value: float | None = None,
    ) -> None:
        defaults: dict[str, Any] = {"unit": unit}
        if decimals is not None:
            defaults["decimals"] = decimals
        if max_value is not None:
            defaults["max"] = max_value
        steps = thresholds or [(None, "green")]
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in steps],
        }
        if kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            }
            options: dict[str, Any] = {
                "legend": {
                    "displayMode": "table",
                    "placement": "bottom",
                    "calcs": ["mean", "max", "lastNotNull"],
                },
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        else:  # stat
            defaults["color"] = {"mode": "thresholds"}
            options = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto",
                "justifyMode": "auto",
                "orientation": "auto",
            }
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": options,
                "targets": [
                    {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )

    def graph(self, title: str, *targets: tuple[str, str], **kw: Any) -> None:
        self.panel("timeseries", title, list(targets), **kw)

    def stat(self, title: str, *targets: tuple[str, str], **kw: Any) -> None:
        self.panel("stat", title, list(targets), w=kw.pop("w", 6), h=kw.pop("h", 5), **kw)

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["utilis", *self.tags],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Data source",
                        "type": "datasource",
                        "query": "prometheus",
                        "current": {},
                        "hide": 0,
                    },
                    {
                        "name": "namespace",
                        "label": "Namespace",
                        "type": "query",
                        "datasource": DS,
                        "query": {
                            "query": "label_values(utilis_http_requests_total, namespace)",
                            "refId": "ns",
                        },
                        "definition": "label_values(utilis_http_requests_total, namespace)",
                        "refresh": 2,
                        "includeAll": True,
                        "allValue": ".*",
                        "multi": True,
                        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                        "hide": 0,
                        "sort": 1,
                    },
                ]
            },
            "annotations": {"list": []},
            "links": [
                {"title": "Utilis dashboards", "type": "dashboards", "tags": ["utilis"], "asDropdown": True}
            ],
            "panels": self.panels,
        }


def rate(metric: str, *matchers: str, window: str = RATE) -> str:
    return f"rate({q(metric, *matchers)}[{window}])"


def increase(metric: str, *matchers: str, window: str = "$__range") -> str:
    return f"increase({q(metric, *matchers)}[{window}])"


def by(labels: str, expr: str, op: str = "sum") -> str:
    return f"{op} by ({labels}) ({expr})" if labels else f"{op}({expr})"


def quantile(p: float, metric: str, labels: str, *matchers: str) -> str:
    return f"histogram_quantile({p}, {by(labels + ', le', rate(metric + '_bucket', *matchers))})"


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def re_(label: str, value: str) -> str:
    return f'{label}=~"{value}"'


HTTP = "utilis_http_requests_total"
LATENCY = "utilis_http_request_duration_seconds"
ORDERS = "utilis_payment_orders_total"
UP = ("up", eq("part_of", "utilis"))


def platform_overview() -> Board:
    b = Board(
        "utilis-platform-overview",
        "Utilis / Platform overview",
        "RED per service (rate, errors, duration) from every API's utilis_http_* metrics, the gateway's "
        "front door, and whether every process and dependency is up.",
        ["red"],
    )
    b.row("Every service")
    b.graph("Requests per second", (by("service", rate(HTTP, NOT_PROBES)), "{{service}}"), unit="reqps")
    errors, requests = (
        by("service", rate(HTTP, re_("status", "5.."), NOT_PROBES)),
        by("service", rate(HTTP, NOT_PROBES)),
    )
    b.graph(
        "5xx ratio",
        (f"{errors} / {requests}", "{{service}}"),
        unit="percentunit",
        thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
    )
    b.graph("p99 latency", (quantile(0.99, LATENCY, "service", NOT_PROBES), "{{service}}"), unit="s", w=8)
    b.graph("p50 latency", (quantile(0.5, LATENCY, "service", NOT_PROBES), "{{service}}"), unit="s", w=8)
    b.graph("Requests in flight", (by("service", q("utilis_http_requests_in_flight")), "{{service}}"), w=8)
    within = by("service", rate(LATENCY + "_bucket", eq("le", "0.5"), NOT_PROBES, window="1h"))
    total = by("service", rate(LATENCY + "_count", NOT_PROBES, window="1h"))
    b.graph(
        "Within the latency SLO (0.5 s), last hour",
        (f"{within} / {total}", "{{service}}"),
        unit="percentunit",
        description="Share of API requests answered within 0.5 s; the SLO is 99% (docs/alerts.md).",
        thresholds=[(None, "red"), (0.99, "green")],
    )
    b.graph(
        "4xx per second by status",
        (by("service, status", rate(HTTP, re_("status", "4.."))), "{{service}} {{status}}"),
        unit="reqps",
    )
    b.row("Slowest routes")
    b.graph(
        "p99 latency by route (top 10)",
        (
            f"topk(10, {quantile(0.99, LATENCY, 'service, method, route', NOT_PROBES)})",
            "{{service}} {{method}} {{route}}",
        ),
        unit="s",
        w=24,
    )
    b.row("Gateway (the front door)")
    b.graph(
        "Proxied requests by upstream and status",
        (by("upstream, status", rate("utilis_gateway_upstream_requests_total")), "{{upstream}} {{status}}"),
        unit="reqps",
        w=8,
    )
    b.graph(
        "Upstream p99 (gateway to service and back)",
        (quantile(0.99, "utilis_gateway_upstream_request_duration_seconds", "upstream"), "{{upstream}}"),
        unit="s",
        w=8,
    )
    b.graph(
        "Refused at the gateway",
        (by("reason", rate("utilis_gateway_auth_failures_total")), "{{reason}}"),
        (by("limit", rate("utilis_gateway_rate_limited_total")), "429 {{limit}}"),
        unit="reqps",
        w=8,
    )
    b.graph(
        "Tokens by grant and outcome",
        (
            by("grant_type, outcome", rate("utilis_gateway_token_requests_total")),
            "{{grant_type}} {{outcome}}",
        ),
        unit="reqps",
        w=8,
    )
    b.graph(
        "Retries and open circuits",
        (by("upstream", rate("utilis_gateway_upstream_retries_total")), "retries {{upstream}}"),
        (by("upstream", q("utilis_gateway_circuit_open"), "max"), "open {{upstream}}"),
        w=8,
    )
    b.graph(
        "Requests by client channel",
        (by("channel", rate("utilis_gateway_channel_requests_total")), "{{channel}}"),
        unit="reqps",
        w=8,
        stack=True,
    )
    b.row("Processes and dependencies")
    b.stat(
        "Processes up",
        (by("", q(*UP)), "up"),
        description="Scrape targets of the platform that answer /metrics (Prometheus' own `up`).",
    )
    b.stat(
        "Processes down",
        (f"count({q(*UP)} == 0) or vector(0)", "down"),
        thresholds=[(None, "green"), (1, "red")],
    )
    b.graph(
        "Dependency checks failing (by pod)",
        (f"{q('utilis_dependency_up')} == 0", "{{pod}} {{dependency}}"),
        description="From every readiness probe: 0 while a process cannot reach its database, Redis or "
        "Kafka.",
        w=12,
    )
    return b


def payments_peak() -> Board:
    b = Board(
        "utilis-payments-peak",
        "Utilis / Payments peak",
        "The heating-fee peak: payments per second and amounts by channel, failures by channel, the "
        "providers' callbacks (outcomes and latency), the payment API and what billing settles.",
        ["payments"],
    )
    succeeded, failed = eq("outcome", "succeeded"), eq("outcome", "failed")
    decided = re_("outcome", "succeeded|failed")
    fen = "utilis_payment_succeeded_fen_total"
    b.row("Payments")
    b.stat(
        "Payments succeeded / s",
        (by("", rate(ORDERS, succeeded, window="5m")), "succeeded"),
        unit="reqps",
        decimals=1,
    )
    b.stat(
        "Collected / min (yuan)", (f"{by('', rate(fen, window='5m'))} * 60 / 100", "yuan"), unit="currencyCNY"
    )
    b.stat(
        "Failure ratio (15 min)",
        (
            f"{by('', rate(ORDERS, failed, window='15m'))} / {by('', rate(ORDERS, decided, window='15m'))}",
            "failed",
        ),
        unit="percentunit",
        thresholds=[(None, "green"), (0.05, "orange"), (0.2, "red")],
    )
    b.stat(
        "Callbacks / s",
        (by("", rate("utilis_payment_callbacks_total", window="5m")), "callbacks"),
        unit="reqps",
        decimals=1,
    )
    b.graph(
        "Payments succeeded / s by channel",
        (by("channel", rate(ORDERS, succeeded)), "{{channel}}"),
        unit="reqps",
        stack=True,
    )
    b.graph("Orders by outcome / s", (by("outcome", rate(ORDERS)), "{{outcome}}"), unit="reqps")
    b.graph(
        "Failure ratio by channel",
        (f"{by('channel', rate(ORDERS, failed))} / {by('channel', rate(ORDERS, decided))}", "{{channel}}"),
        unit="percentunit",
        thresholds=[(None, "green"), (0.05, "orange"), (0.2, "red")],
    )
    b.graph(
        "Failed and closed by channel / s",
        (by("channel, outcome", rate(ORDERS, re_("outcome", "failed|closed"))), "{{channel}} {{outcome}}"),
        unit="reqps",
    )
    b.graph(
        "Collected per minute by channel (yuan)",
        (f"{by('channel', rate(fen))} * 60 / 100", "{{channel}}"),
        unit="currencyCNY",
        stack=True,
    )
    b.row("Providers' callbacks")
    b.graph(
        "Callback latency p99 by provider",
        (quantile(0.99, "utilis_payment_callback_duration_seconds", "provider"), "{{provider}}"),
        unit="s",
        w=8,
    )
    callbacks = (eq("service", "payment"), re_("route", "/callbacks/.*"))
    b.graph(
        "Callback endpoint latency (p50, p99)",
        (quantile(0.5, LATENCY, "route", *callbacks), "p50 {{route}}"),
        (quantile(0.99, LATENCY, "route", *callbacks), "p99 {{route}}"),
        unit="s",
        w=8,
    )
    b.graph(
        "Callbacks by provider and outcome / s",
        (by("provider, outcome", rate("utilis_payment_callbacks_total")), "{{provider}} {{outcome}}"),
        unit="reqps",
        w=8,
    )
    b.row("Payment API and settlement")
    payment = (eq("service", "payment"), NOT_PROBES)
    b.graph(
        "Payment API requests / s by route",
        (by("method, route", rate(HTTP, *payment)), "{{method}} {{route}}"),
        unit="reqps",
        w=8,
    )
    b.graph(
        "Payment API p99 by route",
        (quantile(0.99, LATENCY, "method, route", *payment), "{{method}} {{route}}"),
        unit="s",
        w=8,
    )
    b.graph(
        "Settled by billing / s (payments applied)",
        (by("channel", rate("utilis_billing_payments_applied_total")), "{{channel}}"),
        (by("", rate(ORDERS, succeeded)), "succeeded at payment"),
        unit="reqps",
        description="Payments applied to receivables by billing's consumer next to the payments that "
        "succeeded: a gap that grows is settlement lag (see Kafka lag and outbox).",
        w=8,
    )
    return b


def billing_runs() -> Board:
    b = Board(
        "utilis-billing-runs",
        "Utilis / Billing runs",
        "Billing runs processed by the metering-and-billing scheduler: progress, throughput, outcomes, and "
        "the events they put through the outbox.",
        ["billing"],
    )
    in_progress = by("", q("utilis_billing_run_in_progress"), "max")
    b.row("Now")
    b.stat("Run in progress", (in_progress, "in progress"), thresholds=[(None, "text"), (1, "blue")])
    last = by("", q("utilis_billing_run_last_progress_timestamp_seconds"), "max")
    b.stat(
        "Since the last committed chunk",
        (f"time() - {last} and on() {in_progress} == 1", "seconds"),
        unit="s",
        thresholds=[(None, "green"), (120, "orange"), (600, "red")],
        description="Only while a run is in progress; over 10 minutes fires UtilisBillingRunStalled.",
    )
    b.stat(
        "Bills issued / s",
        (by("", rate("utilis_billing_bills_issued_total", window="1m")), "bills/s"),
        decimals=0,
    )
    b.stat(
        "Runs failed (24 h)",
        (
            by("", increase("utilis_billing_runs_finished_total", eq("outcome", "failed"), window="24h")),
            "failed",
        ),
        thresholds=[(None, "green"), (1, "red")],
        decimals=0,
    )
    b.graph(
        "Bills issued / s by utility",
        (by("utility", rate("utilis_billing_bills_issued_total")), "{{utility}}"),
        stack=True,
    )
    b.graph(
        "Accounts gone through / s by utility",
        (by("utility", rate("utilis_billing_run_accounts_total")), "{{utility}}"),
        description="Billed or skipped (closed, no area, already billed).",
    )
    b.graph(
        "Billed per minute (yuan)",
        (f"{by('utility', rate('utilis_billing_billed_fen_total'))} * 60 / 100", "{{utility}}"),
        unit="currencyCNY",
        stack=True,
    )
    b.graph(
        "Runs finished by outcome",
        (by("outcome", increase("utilis_billing_runs_finished_total", window="1h")), "{{outcome}}"),
        description="Per hour.",
        decimals=0,
    )
    b.row("Their events")
    billing = eq("service", "metering-and-billing")
    b.graph(
        "Billing outbox: backlog and published / s",
        (by("", q("utilis_outbox_backlog_events", billing), "max"), "backlog"),
        (by("", rate("utilis_outbox_published_total", billing)), "published / s"),
    )
    lag = by("service, partition", q("utilis_consumer_lag_events", re_("topic", ".*billing.events")), "max")
    b.graph("Consumers' lag on billing.events", (by("service", lag), "{{service}}"))
    return b


def kafka_outbox() -> Board:
    b = Board(
        "utilis-kafka-outbox",
        "Utilis / Kafka lag and outbox",
        "Events between the services: each service's outbox (backlog, age, publishing) and each consumer "
        "(lag, handled by outcome, handling time, dead letters).",
        ["events"],
    )
    b.row("Outbox (relays)")
    b.graph(
        "Unpublished events by service",
        (by("service", q("utilis_outbox_backlog_events"), "max"), "{{service}}"),
        w=8,
    )
    b.graph(
        "Oldest unpublished event",
        (by("service", q("utilis_outbox_oldest_age_seconds"), "max"), "{{service}}"),
        unit="s",
        thresholds=[(None, "green"), (60, "orange"), (300, "red")],
        w=8,
    )
    b.graph(
        "Published and failed / s",
        (by("service", rate("utilis_outbox_published_total")), "published {{service}}"),
        (by("service", rate("utilis_outbox_publish_failures_total")), "failed {{service}}"),
        w=8,
    )
    b.row("Consumers")
    lag = by("service, topic, partition", q("utilis_consumer_lag_events"), "max")
    b.graph("Lag by consumer and topic", (by("service, topic", lag), "{{service}} ← {{topic}}"))
    b.graph("Lag by partition (top 10)", (f"topk(10, {lag})", "{{service}} ← {{topic}}[{{partition}}]"))
    b.graph(
        "Events handled / s by outcome",
        (by("service, outcome", rate("utilis_consumer_events_total")), "{{service}} {{outcome}}"),
        w=8,
    )
    b.graph(
        "Handling time p99",
        (
            quantile(0.99, "utilis_consumer_handle_duration_seconds", "service, topic"),
            "{{service}} ← {{topic}}",
        ),
        unit="s",
        w=8,
    )
    dead = increase("utilis_consumer_events_total", eq("outcome", "dead_lettered"), window="15m")
    b.graph(
        "Dead-lettered (per 15 min)",
        (by("service, topic", dead), "{{service}} ← {{topic}}"),
        thresholds=[(None, "green"), (1, "red")],
        w=8,
    )
    return b


def cache() -> Board:
    b = Board(
        "utilis-cache",
        "Utilis / Cache",
        "The residents' bill lookups served from Redis by metering-and-billing (hit, negative hit for an "
        "unknown account, miss; a fill refused because the account changed meanwhile), and Redis "
        "reachability.",
        ["cache"],
    )
    lookups = "utilis_billing_lookup_cache_total"
    hits, looked_up = re_("outcome", "hit|negative_hit"), re_("outcome", "hit|negative_hit|miss")
    b.row("Bill lookups")
    b.stat(
        "Hit ratio (5 min)",
        (
            f"{by('', rate(lookups, hits, window='5m'))} / {by('', rate(lookups, looked_up, window='5m'))}",
            "hit ratio",
        ),
        unit="percentunit",
        thresholds=[(None, "red"), (0.8, "orange"), (0.95, "green")],
    )
    b.stat(
        "Lookups / s", (by("", rate(lookups, looked_up, window="5m")), "lookups"), unit="reqps", decimals=0
    )
    b.stat(
        "Fills refused / s",
        (by("", rate(lookups, eq("outcome", "fill_refused"), window="5m")), "refused"),
        unit="reqps",
        description="A statement computed while the account changed is not stored (served once, then "
        "recomputed): a steady rate means heavy settlement traffic on hot accounts.",
    )
    b.stat(
        "Redis checks failing",
        (
            f"count({q('utilis_dependency_up', re_('dependency', 'redis|cache'))} == 0) or vector(0)",
            "failing",
        ),
        thresholds=[(None, "green"), (1, "red")],
    )
    b.graph(
        "Hit ratio",
        (f"{by('', rate(lookups, hits))} / {by('', rate(lookups, looked_up))}", "hit ratio"),
        unit="percentunit",
        max_value=1,
    )
    b.graph(
        "Lookups by outcome / s",
        (by("outcome", rate(lookups)), "{{outcome}}"),
        unit="reqps",
        stack=True,
    )
    statements = (eq("service", "metering-and-billing"), re_("route", ".*/balance|.*/bills"))
    b.graph(
        "Bill lookup latency (p50, p99)",
        (quantile(0.5, LATENCY, "route", *statements), "p50 {{route}}"),
        (quantile(0.99, LATENCY, "route", *statements), "p99 {{route}}"),
        unit="s",
        w=24,
    )
    return b


def business() -> Board:
    b = Board(
        "utilis-business",
        "Utilis / Business",
        "Bills issued and amounts billed (billing runs), payments and amounts collected (applied to "
        "receivables by billing), over the dashboard's time range, and the reconciliation runs (对账) and "
        "the mismatches they found. Amounts in yuan. Open work orders by SLA state come with the "
        "work-order service (not built yet).",
        ["business"],
    )
    b.row("Over the selected time range")
    b.stat("Bills issued", (by("", increase("utilis_billing_bills_issued_total")), "bills"), decimals=0)
    b.stat(
        "Billed (yuan)",
        (f"{by('', increase('utilis_billing_billed_fen_total'))} / 100", "yuan"),
        unit="currencyCNY",
    )
    b.stat(
        "Payments applied",
        (by("", increase("utilis_billing_payments_applied_total")), "payments"),
        decimals=0,
    )
    b.stat(
        "Collected (yuan)",
        (f"{by('', increase('utilis_billing_collected_fen_total'))} / 100", "yuan"),
        unit="currencyCNY",
    )
    b.graph(
        "Bills issued per hour by utility",
        (by("utility", increase("utilis_billing_bills_issued_total", window="1h")), "{{utility}}"),
        decimals=0,
        stack=True,
    )
    b.graph(
        "Collected per hour by channel (yuan)",
        (
            f"{by('channel', increase('utilis_billing_collected_fen_total', window='1h'))} / 100",
            "{{channel}}",
        ),
        unit="currencyCNY",
        stack=True,
    )
    b.graph(
        "Billed per hour by utility (yuan)",
        (f"{by('utility', increase('utilis_billing_billed_fen_total', window='1h'))} / 100", "{{utility}}"),
        unit="currencyCNY",
        stack=True,
    )
    b.graph(
        "Payments succeeded per hour by channel",
        (by("channel", increase(ORDERS, eq("outcome", "succeeded"), window="1h")), "{{channel}}"),
        decimals=0,
        stack=True,
    )
    b.row("Reconciliation (对账)")
    b.graph(
        "Reconciliation runs per day by provider and outcome",
        (
            by("provider, outcome", increase("utilis_payment_reconciliation_runs_total", window="1d")),
            "{{provider}} {{outcome}}",
        ),
        decimals=0,
    )
    b.graph(
        "Mismatches found per day by kind",
        (by("kind", increase("utilis_payment_reconciliation_cases_total", window="1d")), "{{kind}}"),
        decimals=0,
        stack=True,
    )
    b.graph(
        "Statements fetched from the providers per day by outcome",
        (
            by("provider, outcome", increase("utilis_payment_statement_fetches_total", window="1d")),
            "{{provider}} {{outcome}}",
        ),
        decimals=0,
    )
    return b


BOARDS = {
    "platform-overview": platform_overview,
    "payments-peak": payments_peak,
    "billing-runs": billing_runs,
    "kafka-outbox": kafka_outbox,
    "cache": cache,
    "business": business,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(make().to_json(), ensure_ascii=False, indent=2) + "\n"
        for name, make in BOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = parser.parse_args()
    files = render()
    if args.check:
        stale = [
            n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text("utf-8") != text
        ]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"dashboards out of date: {stale + extra}; run `uv run python scripts/dashboards.py`")
            return 1
        print(f"{len(files)} dashboards up to date")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
