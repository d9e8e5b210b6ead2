"""The alert rules pass promtool (and its unit tests), every PromQL expression of the rules and dashboards
parses, the dashboards are what scripts/dashboards.py generates, every alert is documented, and the chart
ships all of it (and nothing when observability is disabled). Offline: no stack, no cluster."""

from __future__ import annotations

import re

import pytest

SEVERITIES = {"critical", "warning"}


def test_promtool_checks_the_rule_file(oc) -> None:
    done = oc.promtool_check_rules()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alerts_fire_as_their_unit_tests_say(oc) -> None:
    done = oc.promtool_test_rules()
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_expression_of_the_rules_and_dashboards_parses(oc) -> None:
    expressions = oc.all_expressions()
    assert len(oc.rule_expressions()) >= 20 and len(oc.dashboard_expressions()) >= 60
    problems = {}
    for where, expr in expressions.items():
        try:
            oc.parse(expr)
        except Exception as exc:  # the parser raises its own error types
            problems[where] = f"{exc}: {expr}"
    assert not problems, problems


def test_the_parser_and_the_name_extraction_are_not_fooled(oc) -> None:
    with pytest.raises(Exception):  # noqa: B017 (promql_parser's own error type)
        oc.parse("sum(rate(utilis_http_requests_total[5m])")
    expr = oc.grafana_to_promql(
        'sum by (service) (rate(a_total{namespace=~"$namespace"}[$__rate_interval])) / on() group_left '
        'b and time() - c{x="1"} > 3 unless absent({__name__="d"}) + '
        "histogram_quantile(0.9, sum by (le) (rate(e_bucket[${__range}])))"
    )
    assert oc.metric_names(expr) == {"a_total", "b", "c", "d", "e_bucket"}


def test_the_dashboards_are_what_the_generator_writes(oc, generator) -> None:
    files = generator.render()
    committed = {p.name: p.read_text("utf-8") for p in oc.DASHBOARDS.glob("*.json")}
    assert committed == files, "run `uv run python scripts/dashboards.py`"
    titles = {board["title"] for board in oc.dashboards().values()}
    assert {
        "Utilis / Platform overview",
        "Utilis / Payments peak",
        "Utilis / Billing runs",
        "Utilis / Kafka lag and outbox",
        "Utilis / Cache",
        "Utilis / Business",
    } == titles


def test_every_alert_has_a_severity_an_english_summary_and_a_documented_runbook(oc) -> None:
    doc = oc.ALERTS_DOC.read_text("utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    alerts = [r for r in oc.rules() if "alert" in r]
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert notes["summary"].isascii() and notes["description"].isascii(), name
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == "docs/alerts.md" and anchor == name.lower(), name
        assert anchor in anchors, f"docs/alerts.md has no section `{name}`"
    documented = {a for a in anchors if a.startswith("utilis")}
    assert documented == {r["alert"].lower() for r in alerts}, "docs/alerts.md and the rules disagree"


def _observability(objects) -> list:
    return [m for m in objects if m.source.startswith("templates/observability/")]


def test_the_chart_ships_the_rules_the_dashboards_and_the_scrape_configuration(oc, deploy_check) -> None:
    objects = _observability(deploy_check.render("default"))
    kinds = sorted(m.kind for m in objects)
    assert kinds == sorted(["ServiceMonitor", "PodMonitor", "PrometheusRule"] + ["ConfigMap"] * 6)
    for m in objects:
        assert deploy_check.validate_object(m.obj) == [], m.label

    rule = next(m.obj for m in objects if m.kind == "PrometheusRule")
    assert rule["spec"] == __import__("yaml").safe_load(oc.RULES.read_text("utf-8"))

    dashboards = {m.name: m.obj for m in objects if m.kind == "ConfigMap"}
    for name, board in oc.dashboards().items():
        cm = dashboards[f"utilis-dashboard-{name.removesuffix('.json')}"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert __import__("json").loads(cm["data"][name]) == board

    monitors = {m.kind: m.obj["spec"] for m in objects if m.kind in ("ServiceMonitor", "PodMonitor")}
    api, workers = monitors["ServiceMonitor"], monitors["PodMonitor"]
    assert api["selector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    assert {e["port"] for e in api["endpoints"]} == {"http"}
    kinds_scraped = workers["selector"]["matchExpressions"][0]["values"]
    assert sorted(kinds_scraped) == ["consumer", "relay", "scheduler"]
    assert {e["port"] for e in workers["podMetricsEndpoints"]} == {"http"}

    # Every pod the monitors select names its metrics port `http` (the chart's contract).
    for m in deploy_check.render("default"):
        if m.kind == "Deployment":
            labels = m.obj["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/part-of"] == "utilis"
            assert labels["app.kubernetes.io/component"] in ["api", *kinds_scraped], m.label
            ports = [p["name"] for c in m.obj["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
            assert ports == ["http"], m.label


def test_runbook_links_become_absolute_with_a_base_url(deploy_check) -> None:
    base = "https://git.example.com/utilis/-/blob/v0.1.0/"
    objects = deploy_check.render("default", {"observability": {"prometheusRule": {"runbookBaseUrl": base}}})
    rule = next(m.obj for m in _observability(objects) if m.kind == "PrometheusRule")
    urls = {
        r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r
    }
    assert urls and all(u.startswith(base + "docs/alerts.md#utilis") for u in urls)


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"observability": {"enabled": False}}, []),
        (
            {"observability": {"prometheusRule": {"enabled": False}}},
            ["ConfigMap"] * 6 + ["PodMonitor", "ServiceMonitor"],
        ),
        (
            {"observability": {"grafanaDashboards": {"enabled": False}}},
            ["PodMonitor", "PrometheusRule", "ServiceMonitor"],
        ),
        ({"observability": {"serviceMonitor": {"enabled": False}}}, ["ConfigMap"] * 6 + ["PrometheusRule"]),
    ],
)
def test_each_part_renders_only_when_enabled(deploy_check, values, expected) -> None:
    assert sorted(m.kind for m in _observability(deploy_check.render("default", values))) == expected


async def test_a_readiness_check_sets_the_dependency_gauge() -> None:
    from prometheus_client import REGISTRY

    from utilis_shared.health import HealthCheck, run_checks

    async def ok() -> None:
        return None

    async def down() -> None:
        raise ConnectionRefusedError

    ready, _ = await run_checks(
        [HealthCheck("database", ok), HealthCheck("test-redis", down, critical=False)]
    )
    assert ready
    assert REGISTRY.get_sample_value("utilis_dependency_up", {"dependency": "database"}) == 1
    assert REGISTRY.get_sample_value("utilis_dependency_up", {"dependency": "test-redis"}) == 0


def test_the_runbooks_name_only_alerts_that_exist(oc) -> None:
    alerts = {r["alert"] for r in oc.rules() if "alert" in r}
    for doc in ("docs/rollback.md", "README.md"):
        named = set(re.findall(r"\bUtilis[A-Z][A-Za-z]+\b", (oc.REPO / doc).read_text("utf-8")))
        assert named <= alerts, f"{doc} names alerts the rules do not have: {sorted(named - alerts)}"
