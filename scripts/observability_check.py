"""Checks of the platform's alert rules and Grafana dashboards (helm/utilis/files/{alerts,dashboards}).

    uv run python scripts/observability_check.py offline   promtool check + unit tests of the rules, every
                                                           PromQL expression parses, dashboards up to date
    uv run python scripts/observability_check.py scrape    every metric name the rules and dashboards use
                                                           is exported by a running process (the stack that
                                                           `make up` / `make test` start)
    uv run python scripts/observability_check.py names     the metric names used, one per line

tests/observability calls the same functions (make check-observability). Histogram series
(``_bucket``/``_sum``/``_count``) count as their base name's; recording rules' names count as defined;
``up`` comes from Prometheus itself (PROMETHEUS_SERIES).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "helm" / "utilis" / "files" / "alerts" / "utilis.rules.yaml"
RULE_TESTS = REPO / "tests" / "observability" / "alerts.test.yaml"
DASHBOARDS = REPO / "helm" / "utilis" / "files" / "dashboards"
ALERTS_DOC = REPO / "docs" / "alerts.md"

# Series Prometheus makes itself for every scrape target (not exported by a process).
PROMETHEUS_SERIES = frozenset({"up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's variables, replaced before parsing: its interval variables by a duration, any other by a value.
_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise RuntimeError("promtool is missing: `bash scripts/infra.sh install` (Debian package prometheus)")
    return path


def promtool_check_rules(path: Path = RULES) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)


def promtool_test_rules(path: Path = RULE_TESTS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True)


# --------------------------------------------------------------------------------------- the expressions


def rules(path: Path = RULES) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule_expressions(path: Path = RULES) -> dict[str, str]:
    """``<alert or record name> #<index>`` -> its PromQL."""
    return {f"{r.get('alert') or r.get('record')} #{i}": str(r["expr"]) for i, r in enumerate(rules(path))}


def recorded_names(path: Path = RULES) -> set[str]:
    return {r["record"] for r in rules(path) if "record" in r}


def dashboards(folder: Path = DASHBOARDS) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or ())


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with its Grafana variables replaced, so that a PromQL parser accepts it."""

    def value(match: re.Match[str]) -> str:
        return "5m" if match.group(1).startswith("__") else "x"

    return _GRAFANA_VARIABLE.sub(value, expr)


def dashboard_expressions(folder: Path = DASHBOARDS) -> dict[str, str]:
    """``<file>: <panel title> [<refId>]`` -> its PromQL (Grafana variables replaced), queries of the
    templating variables included."""
    found: dict[str, str] = {}
    for name, board in dashboards(folder).items():
        for panel in _panels(board.get("panels") or ()):
            for target in panel.get("targets") or ():
                if target.get("expr"):
                    found[f"{name}: {panel.get('title')} [{target.get('refId')}]"] = grafana_to_promql(
                        target["expr"]
                    )
        for variable in (board.get("templating") or {}).get("list") or ():
            query = variable.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            if variable.get("type") == "query" and query:
                # label_values(<metric>, <label>) is Grafana's, not PromQL: its metric is what matters.
                inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
                found[f"{name}: variable {variable['name']}"] = grafana_to_promql(
                    inner.group(1) if inner else query
                )
    return found


def all_expressions() -> dict[str, str]:
    return {**{f"rules: {k}": v for k, v in rule_expressions().items()}, **dashboard_expressions()}


def parse(expr: str) -> Any:
    import promql_parser

    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (``foo``, ``{__name__="foo"}``)."""
    import promql_parser as pp

    names: set[str] = set()

    def walk(node: Any) -> None:
        if node is None or isinstance(node, (int, float, str)):
            return
        if isinstance(node, pp.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__" and matcher.op == pp.MatchOp.Equal:
                    names.add(matcher.value)
            return
        if isinstance(node, pp.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, pp.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, pp.AggregateExpr):
            walk(node.expr)
            walk(node.param)
        elif isinstance(node, pp.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
            walk(node.expr)

    walk(parse(expr))
    return names


def used_names() -> dict[str, set[str]]:
    """Metric name -> the expressions (labels of all_expressions) that use it."""
    used: dict[str, set[str]] = {}
    for where, expr in all_expressions().items():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    return used


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


# ------------------------------------------------------------------------------------------ exported


def exported_names(exposition: str) -> set[str]:
    """The metric names a /metrics page exposes: its ``# TYPE`` lines (printed by prometheus_client even for
    a labelled metric not used yet) with their histogram/summary series, and every sample's name."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind in ("histogram", "gauge_histogram"):
                names.update(name + s for s in HISTOGRAM_SUFFIXES)
            elif kind == "summary":
                names.update((name + "_sum", name + "_count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def platform_targets() -> dict[str, str]:
    """``<service>-<kind>`` -> its /metrics URL, for every process of deploy/platform.yaml."""
    from utilis_shared import devstack

    platform = devstack.load_platform()
    return {
        f"{name}-{kind}": f"http://127.0.0.1:{port}/metrics"
        for name, spec in platform.services.items()
        for kind, port in spec.processes.items()
    }


async def scrape(targets: dict[str, str]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """``(process -> names it exports, process -> why it could not be scraped)``."""
    import httpx

    exported: dict[str, set[str]] = {}
    failed: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(process: str, url: str) -> None:
            try:
                response = await client.get(url)
                response.raise_for_status()
                exported[process] = exported_names(response.text)
            except httpx.HTTPError as exc:
                failed[process] = f"{url}: {type(exc).__name__} {exc}"

        await asyncio.gather(*(one(p, u) for p, u in targets.items()))
    return exported, failed


def missing_names(used: dict[str, set[str]], exported: Iterable[str]) -> dict[str, set[str]]:
    """The names used but exported by no process (nor recorded by a rule, nor made by Prometheus)."""
    known = set(exported) | recorded_names() | PROMETHEUS_SERIES
    return {name: where for name, where in used.items() if name not in known and base_name(name) not in known}


# ---------------------------------------------------------------------------------------------- CLI


def _offline() -> int:
    problems: list[str] = []
    for check in (promtool_check_rules, promtool_test_rules):
        done = check()
        print(done.stdout.strip() or done.stderr.strip())
        if done.returncode:
            problems.append(f"{check.__name__}: {done.stderr.strip()}")
    expressions = all_expressions()
    for where, expr in expressions.items():
        try:
            parse(expr)
        except Exception as exc:
            problems.append(f"{where}: {exc}")
    print(f"{len(expressions)} PromQL expressions parsed")
    sys.path.insert(0, str(REPO / "scripts"))
    import dashboards as generator

    stale = [n for n, text in generator.render().items() if (DASHBOARDS / n).read_text("utf-8") != text]
    if stale:
        problems.append(f"dashboards out of date (run scripts/dashboards.py): {stale}")
    for problem in problems:
        print("FAIL", problem)
    return 1 if problems else 0


def _scrape() -> int:
    exported, failed = asyncio.run(scrape(platform_targets()))
    for process, why in sorted(failed.items()):
        print(f"FAIL cannot scrape {process}: {why}")
    missing = missing_names(used_names(), set().union(*exported.values()) if exported else set())
    for name, where in sorted(missing.items()):
        print(f"FAIL {name} is exported by no process; used by {sorted(where)}")
    print(f"{len(exported)} processes scraped, {len(used_names())} metric names used, {len(missing)} missing")
    return 1 if failed or missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["offline", "scrape", "names"])
    args = parser.parse_args()
    if args.command == "names":
        for name, where in sorted(used_names().items()):
            print(f"{name}  ({len(where)} uses)")
        return 0
    return _offline() if args.command == "offline" else _scrape()


if __name__ == "__main__":
    sys.exit(main())
