"""Issue 6's smoke load test on the running stack (``make test``'s: no demo data): ``python -m
loadtests.run smoke`` opens its own accounts, bills them, runs a few Locust users for ~20 s (residents
signing in by SMS code, looking up and paying by WeChat or Alipay with the providers' signed
notifications, an agent searching the archive, the bank stream) and audits the providers' ledger against
the payment service's and billing's records. It must see no failed request and no mismatch.

Then the audit is shown not to be vacuous: the same run's ledger with one amount changed by a fen, or one
payment left out, is a mismatch."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import time
from datetime import datetime

from utilis_shared import devstack


def _audit_module():
    """loadtests/audit.py (the repository's root is not on the test session's path)."""
    spec = importlib.util.spec_from_file_location(
        "loadtests_audit", devstack.REPO_ROOT / "loadtests" / "audit.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def test_smoke_load_test_has_no_failed_request_and_the_audit_balances(tmp_path, platform):
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "smoke", "--out", str(tmp_path)],
        cwd=devstack.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    took = time.monotonic() - started
    report = run.stdout[-6000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    summary = json.loads((tmp_path / "summary.json").read_text())
    routes = summary["routes"]
    assert summary["ok"] and summary["failures"] == 0 and summary["audit"]["ok"], report
    # It did what it is for: residents signed in and paid through both providers and saw it settled, an
    # agent searched and opened 360° views, the bank collected.
    assert routes["/oauth/token (resident, SMS code)"]["requests"] >= 5, report
    assert routes["payment seen settled by the resident"]["requests"] >= 3, report
    assert (
        routes.get("/callbacks/wechat", {}).get("requests", 0)
        + routes.get("/callbacks/alipay", {}).get("requests", 0)
        >= 3
    ), report
    assert routes["/api/customer/v1/customers/[id]/view"]["requests"] >= 1, report
    assert routes["/callbacks/bank/[code]"]["requests"] >= 3, report
    assert summary["payments"] >= 6 and summary["audit"]["settled_twice"] == 0, report
    assert took < 90, f"the smoke load test took {took:.0f}s"


async def test_the_audit_finds_a_fen_off_and_a_payment_missing_from_the_ledger(platform, tmp_path_factory):
    """Runs after the smoke test, on its output (the newest smoke run of this session)."""
    outs = sorted(tmp_path_factory.getbasetemp().glob("test_smoke_load_test*/summary.json"))
    assert outs, "the smoke load test did not run first"
    folder = outs[-1].parent
    summary = json.loads((folder / "summary.json").read_text())
    pool = json.loads((folder / "pool.json").read_text())
    accounts = [r["account_no"] for r in pool["residents"]] + pool["bank_accounts"]
    lt = _audit_module()
    confirmed = lt.read_ledger(folder / "ledger.jsonl")
    since = datetime.fromisoformat(summary["since"])

    async def judge(ledger):
        return await lt.audit(platform, ledger, accounts=accounts, since=since, drain_within=30)

    honest = await judge(confirmed)
    assert honest.ok, honest.lines()
    off = [dataclasses.replace(confirmed[0], amount_fen=confirmed[0].amount_fen + 1), *confirmed[1:]]
    found = await judge(off)
    assert not found.ok and any(confirmed[0].order_no in m for m in found.mismatches), found.lines()
    found = await judge(confirmed[1:])
    assert not found.ok, found.lines()
    assert any(
        f"{confirmed[0].order_no}: succeeded at the payment service without" in m for m in found.mismatches
    )
    assert any(f"{confirmed[0].order_no}: settled by billing without" in m for m in found.mismatches)
