"""Run a load test on the local stack and judge it: ``make loadtest`` (``full``) and the smoke test that
``make test`` runs (``smoke``).

    python -m loadtests.run full  [--users 150 --spawn-rate 15 --duration 180 --replicas 1 ...]
    python -m loadtests.run smoke [--out DIR]

``full`` expects the stack started with demo data (``make loadtest`` runs ``make up`` first). It restarts
the API processes with ``--replicas`` uvicorn workers each and the gateway's limits raised for one load
generator's worth of traffic (environment variables, below; the defaults stay as they are), prepares the
data (a billing run of a new cycle over the demo accounts), measures the bare-framework ceiling with the
same Locust, runs the scenarios headless, has the providers' ledger audited against the platform's
records, writes CSV, HTML and a summary into ``.local/loadtest/<when>-<mode>/`` (``.local/loadtest/last``
points at it), and restores the API processes as ``make up`` runs them. ``smoke`` runs on the stack as it
is (``make test``'s: no demo data): it opens its own accounts, runs a few users for ~20 s, audits.

Exit status: 0 when Locust saw no failed request and the audit found no mismatch; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform as platform_mod
import resource
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from loadtests import cpu
from loadtests.audit import AuditResult, audit, dead_letter_counts, read_ledger
from loadtests.prepare import prepare, write_pool
from utilis_shared import devstack

REPO = devstack.REPO_ROOT
PY = sys.executable
# The gateway's limits protect the platform from one client sending too much; a load generator is one
# machine playing 100,000 residents, the providers and a bank. Raised for the load-test stack only:
# residents' API calls and SMS codes come from addresses of their own anyway (loadtests/clients.py), but
# every provider notification comes from 127.0.0.1 (the callback allow-list), and each demo phone signs
# in more often in a day of repeated runs than a resident would.
LOAD_TEST_LIMITS = {
    "UTILIS_RATE_LIMIT_CALLBACK_IP_PER_MINUTE": "600000",
    "UTILIS_RATE_LIMIT_IP_PER_MINUTE": "600000",
    "UTILIS_SMS_IP_HOURLY_LIMIT": "1000000",
    "UTILIS_SMS_PHONE_DAILY_LIMIT": "1000",
}
SMOKE_KNOBS = {
    "LOADTEST_THINK_MIN": "0.2",
    "LOADTEST_THINK_MAX": "0.6",
    "LOADTEST_AGENT_THINK_MIN": "0.3",
    "LOADTEST_AGENT_THINK_MAX": "0.8",
    "LOADTEST_PAY_SHARE": "0.8",
    "LOADTEST_RENOTIFY_SHARE": "0.3",
    "LOADTEST_RESIDENT_WEIGHT": "4",
    "LOADTEST_AGENT_WEIGHT": "1",
    "LOADTEST_BANK_RATE": "1",
    "LOADTEST_SETTLE_TIMEOUT": "20",
    "LOADTEST_POLL_SECONDS": "0.5",
}
USER_CLASSES = ["Resident", "Agent", "BankStream"]


def say(msg: str) -> None:
    print(f"[loadtest] {msg}", flush=True)


def stack(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([PY, str(REPO / "scripts" / "stack.py"), *args], check=True, env=env, cwd=REPO)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def locust(
    out: Path, prefix: str, host: str, users: int, spawn_rate: float, seconds: int, classes: list[str], env
) -> tuple[int, float]:
    """Locust headless; its exit status and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        str(Path(PY).parent / "locust"),
        "-f",
        str(REPO / "loadtests" / "locustfile.py"),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{seconds}s",
        "--csv",
        str(out / prefix),
        "--html",
        str(out / f"{prefix}.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *classes,
    ]
    with (out / f"{prefix}.log").open("w") as log:
        rc = subprocess.run(
            command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return rc, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def stats(path: Path) -> dict[str, dict[str, Any]]:
    """Locust's ``*_stats.csv``: name (with its type for steps) -> row."""
    out = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            out[row["Name"]] = row
    return out


def num(row: dict[str, Any] | None, key: str) -> float:
    try:
        return float((row or {}).get(key) or 0)
    except ValueError:
        return 0.0


def bare_ceiling(out: Path, users: int, seconds: int, env: dict[str, str]) -> dict[str, float]:
    """A bare FastAPI GET on uvicorn (uvloop, httptools), driven by the same Locust."""
    port = free_port()
    server = subprocess.Popen(  # the server's CPU is measured from /proc while it runs
        [PY, "-m", "loadtests.bare", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the bare server did not start")
            time.sleep(0.1)
        server_cpu = cpu.snapshot({"bare": server.pid})
        rc, locust_cpu = locust(
            out, "bare", f"http://127.0.0.1:{port}", users, users, seconds, ["BareCeiling"], env
        )
        server_cpu = cpu.used(server_cpu, cpu.snapshot({"bare": server.pid}))["bare"]
    finally:
        server.terminate()
        server.wait(10)
    row = stats(out / "bare_stats.csv").get("Aggregated")
    return {
        "rps": num(row, "Requests/s"),
        "p50_ms": num(row, "50%"),
        "p99_ms": num(row, "99%"),
        "requests": num(row, "Request Count"),
        "failures": num(row, "Failure Count"),
        "server_cpu_s": server_cpu,
        "locust_cpu_s": locust_cpu,
        "seconds": seconds,
        "users": users,
        "exit": rc,
    }


def summarize(
    mode: str,
    args: argparse.Namespace,
    main_stats: dict[str, dict[str, Any]],
    result: AuditResult,
    cpu_used: dict[str, float],
    seconds: float,
    bare: dict[str, float] | None,
    locust_rc: int,
) -> dict[str, Any]:
    def row(name: str) -> dict[str, Any]:
        return main_stats.get(name) or {}

    def group(prefix: str) -> float:
        return sum(num(r, "Request Count") for n, r in main_stats.items() if n.startswith(prefix))

    total = row("Aggregated")
    lookups = [
        "/api/billing/v1/accounts/[no]/balance",
        "/api/billing/v1/accounts/[no]/bills",
        "/api/billing/v1/accounts/[no]/balance (after paying)",
        "/api/billing/v1/accounts/[no]/bills (after paying)",
        "/api/billing/v1/accounts/[no]/balance (bank)",
    ]
    requests = {
        "gateway-api": num(total, "Request Count") - group("SMS code") - group("payment seen"),
        "metering-and-billing-api": group("/api/billing"),
        "payment-api": group("/api/payment") + group("/callbacks"),
        "customer-api": group("/api/customer"),
    }
    routes = {
        n: {
            "requests": int(num(r, "Request Count")),
            "failures": int(num(r, "Failure Count")),
            "per_s": round(num(r, "Request Count") / seconds, 2),
            "p50_ms": num(r, "50%"),
            "p99_ms": num(r, "99%"),
        }
        for n, r in main_stats.items()
        if n != "Aggregated"
    }
    visits = num(row("/oauth/sms-codes"), "Request Count")  # every resident visit starts with one
    return {
        "mode": mode,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform_mod.node()} ({os.cpu_count()} cores)",
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "duration_s": round(seconds, 1),
        "replicas": args.replicas,
        "requests": int(num(total, "Request Count")),
        "failures": int(num(total, "Failure Count")),
        "requests_per_s": round(num(total, "Request Count") / seconds, 1),
        "payments": result.confirmed_payments,
        "payments_per_s": round(result.confirmed_payments / seconds, 2),
        "bill_lookups_per_s": round(sum(num(row(n), "Request Count") for n in lookups) / seconds, 1),
        "routes": routes,
        "cpu_seconds": {k: round(v, 2) for k, v in sorted(cpu_used.items())},
        "visits": int(visits),
        "visits_per_s": round(visits / seconds, 2),
        # CPU a resident visit costs each process at this mix (agents' and the bank's share included)
        "cpu_ms_per_visit": {k: round(1000 * v / visits, 2) for k, v in cpu_used.items() if visits},
        "requests_per_cpu_second": {
            k: round(v / cpu_used[k], 1) for k, v in requests.items() if cpu_used.get(k, 0) > 0.5
        },
        "bare": bare,
        "audit": result.to_dict(),
        "locust_exit": locust_rc,
        "ok": result.ok and num(total, "Failure Count") == 0 and locust_rc == 0,
    }


def markdown(s: dict[str, Any]) -> str:
    r = s["routes"]

    def line(name: str) -> str:
        x = r.get(name)
        if not x:
            return f"| {name} | – | – | – | – |"
        return f"| `{name}` | {x['per_s']:.1f} | {x['p50_ms']:.0f} | {x['p99_ms']:.0f} | {x['failures']} |"

    a = s["audit"]
    out = [
        f"{s['mode']} run, {s['when']}, {s['machine']}: {s['users']} users (spawn {s['spawn_rate']}/s), "
        f"{s['duration_s']:.0f} s, {s['replicas']} worker(s) per API",
        "",
        f"- requests: {s['requests']} ({s['requests_per_s']}/s), **failed: {s['failures']}**",
        f"- payments confirmed by the providers and settled: {s['payments']} (**{s['payments_per_s']}/s**)",
        f"- bill lookups: **{s['bill_lookups_per_s']}/s**",
        f"- audit: **{'OK' if a['ok'] else 'MISMATCH'}**: {a['confirmed_payments']} payments, "
        f"{a['confirmed_fen']} fen confirmed = {a['payment_succeeded_fen']} payment records = "
        f"{a['billing_allocated_fen']} allocated + {a['billing_prepaid_added_fen']} prepaid; settled twice "
        f"{a['settled_twice']}; dead letters {a['dead_letters']}; drained {a['drain_seconds']:.1f} s "
        "after the end",
    ]
    if s.get("bare"):
        b = s["bare"]
        out.append(
            f"- bare FastAPI GET, same Locust: **{b['rps']:.0f} req/s**, p50 {b['p50_ms']:.0f} ms, p99 "
            f"{b['p99_ms']:.0f} ms ({b['users']:.0f} users, {b['seconds']:.0f} s)"
        )
    out += ["", "| route | per s | p50 ms | p99 ms | failed |", "| --- | --- | --- | --- | --- |"]
    out += [line(n) for n in sorted(r)]
    out += [
        "",
        f"{s['visits']} resident visits ({s['visits_per_s']}/s).",
        "",
        "| process | CPU s | cores | CPU ms per visit | requests per CPU second |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, seconds in s["cpu_seconds"].items():
        per = s["requests_per_cpu_second"].get(name, "")
        visit = s["cpu_ms_per_visit"].get(name, 0)
        out.append(f"| {name} | {seconds:.1f} | {seconds / s['duration_s']:.2f} | {visit:.1f} | {per} |")
    return "\n".join(out) + "\n"


async def _prepare_and_snapshot(platform, args) -> tuple[Any, dict[str, int]]:
    before = await dead_letter_counts(platform)
    prepared = await prepare(
        platform, source=args.source, accounts=args.accounts, agents=args.agents, bank_share=args.bank_share
    )
    return prepared, before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["full", "smoke"])
    parser.add_argument("--users", type=int)
    parser.add_argument("--spawn-rate", type=float)
    parser.add_argument("--duration", type=int, help="seconds of load")
    parser.add_argument("--replicas", type=int, default=1, help="uvicorn workers per API process (full)")
    parser.add_argument(
        "--accounts", type=int, help="accounts to open (smoke) or demo accounts to use (full; 0: all)"
    )
    parser.add_argument("--agents", type=int, help="staff accounts for the agents")
    parser.add_argument(
        "--bank-share", type=float, default=0.05, help="share of accounts the bank stream pays"
    )
    parser.add_argument("--bare-seconds", type=int, help="bare-framework ceiling run (0: none)")
    parser.add_argument("--bare-users", type=int, default=100)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep-apis", action="store_true", help="full: leave the APIs as the test ran them")
    args = parser.parse_args(argv)
    smoke = args.mode == "smoke"
    defaults = (
        {"users": 6, "spawn_rate": 6, "duration": 20, "accounts": 30, "agents": 2, "bare_seconds": 0}
        if smoke
        else {
            "users": 150,
            "spawn_rate": 15,
            "duration": 180,
            "accounts": 0,
            "agents": 20,
            "bare_seconds": 30,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.source = "create" if smoke else "demo"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or devstack.LOCAL_DIR / "loadtest" / f"{stamp}-{args.mode}"
    out.mkdir(parents=True, exist_ok=True)
    if not args.out:
        last = devstack.LOCAL_DIR / "loadtest" / "last"
        if last.is_symlink() or last.exists():
            last.unlink() if last.is_symlink() else shutil.rmtree(last)
        last.symlink_to(out.name)
    platform = devstack.load_platform()
    gateway = devstack.gateway_url(platform)
    assert gateway
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "LOADTEST_OUT": str(out),
        "LOADTEST_POOL": str(out / "pool.json"),
        **(SMOKE_KNOBS if smoke else {}),
    }
    restarted = False
    try:
        if not smoke:
            say(f"restarting the API processes: {args.replicas} worker(s) each, load-test limits")
            stack("restart-apis", "--api-workers", str(args.replicas), env={**os.environ, **LOAD_TEST_LIMITS})
            restarted = True
        prepared, dead_letters = asyncio.run(_prepare_and_snapshot(platform, args))
        write_pool(prepared, out / "pool.json")
        say(
            f"prepared in {prepared.seconds:.1f}s: {len(prepared.pool['residents'])} residents, "
            f"{len(prepared.pool['bank_accounts'])} bank accounts, cycle {prepared.cycle}"
        )
        bare = None
        if args.bare_seconds:
            say(f"bare-framework ceiling: {args.bare_users} users, {args.bare_seconds}s")
            bare = bare_ceiling(out, args.bare_users, args.bare_seconds, env)
            say(f"bare: {bare['rps']:.0f} req/s, p99 {bare['p99_ms']:.0f} ms")
        since = datetime.now(UTC)
        pids = cpu.processes(platform)
        cpu_before = cpu.snapshot(pids)
        say(f"locust: {args.users} users, spawn {args.spawn_rate}/s, {args.duration}s")
        started = time.monotonic()
        rc, locust_cpu = locust(
            out, "main", gateway, args.users, args.spawn_rate, args.duration, USER_CLASSES, env
        )
        seconds = min(time.monotonic() - started, float(args.duration))
        cpu_used = cpu.used(cpu_before, cpu.snapshot(pids)) | {"locust": locust_cpu}
        ledger = out / "ledger.jsonl"
        confirmed = read_ledger(ledger) if ledger.exists() else []
        say(f"locust exited {rc}; {len(confirmed)} payments confirmed by the providers; auditing")
        result = asyncio.run(
            audit(
                platform,
                confirmed,
                accounts=prepared.accounts,
                since=since,
                dead_letters_before=dead_letters,
                drain_within=60 if smoke else 300,
            )
        )
        print("\n".join(result.lines()), flush=True)
        main_stats = stats(out / "main_stats.csv")
        summary = summarize(args.mode, args, main_stats, result, cpu_used, seconds, bare, rc)
        summary["since"] = since.isoformat()
        (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
        (out / "summary.md").write_text(markdown(summary))
        print(markdown(summary), flush=True)
        say(f"reports in {out}: main.html, main_stats.csv, summary.md")
        if not summary["ok"]:
            say(f"FAILED: {summary['failures']} failed requests, audit {'ok' if result.ok else 'mismatch'}")
        return 0 if summary["ok"] else 1
    finally:
        if restarted and not args.keep_apis:
            say("restoring the API processes as `make up` runs them")
            clean = {k: v for k, v in os.environ.items() if k not in LOAD_TEST_LIMITS}
            stack("restart-apis", "--api-workers", "1", env=clean)


if __name__ == "__main__":
    sys.exit(main())
