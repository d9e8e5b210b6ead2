"""``payment reconcile --provider P --day D FILE``: the operator's path to the same use case."""

from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner

from payment.adapters.providers.simulator import StatementEntry
from payment.entrypoints.cli import app
from payment.settings import get_settings

from .test_reconciliation_api import a_day, at


def invoke(monkeypatch, settings, *args: str):
    monkeypatch.setenv("UTILIS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("UTILIS_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def test_the_cli_imports_a_statement_reconciles_and_is_idempotent(
    monkeypatch, settings, simulator, tmp_path
) -> None:
    day: date = a_day()
    line = StatementEntry("4200000000777", "P209901010000000777", 888, at(day, 9), fee_fen=0)
    path = tmp_path / "wechat.csv"
    path.write_bytes(simulator.statement_csv("wechat", day, [line]))

    first = invoke(
        monkeypatch, settings, "reconcile", "--provider", "wechat", "--day", day.isoformat(), str(path)
    )

    assert first.exit_code == 0, first.output
    run = json.loads(first.output)
    assert (run["provider"], run["day"], run["cases_count"], run["replayed"]) == (
        "wechat",
        day.isoformat(),
        1,
        False,
    )
    assert run["run_by"] == "cli:cli"
    again = invoke(
        monkeypatch, settings, "reconcile", "--provider", "wechat", "--day", day.isoformat(), str(path)
    )
    assert again.exit_code == 0 and json.loads(again.output)["id"] == run["id"]
    assert json.loads(again.output)["replayed"] is True


def test_the_cli_refuses_a_malformed_file_with_every_error(monkeypatch, settings, tmp_path) -> None:
    path = tmp_path / "bank.csv"
    path.write_text(
        "bank_serial_no,order_no,amount_fen,status,paid_at\nB1,P1,12x,SUCCESS,2026-01-01T10:00:00\n"
    )
    day = a_day()

    r = invoke(
        monkeypatch, settings, "reconcile", "--provider", "bank:icbc", "--day", day.isoformat(), str(path)
    )

    assert r.exit_code == 1
    problem = json.loads(r.stderr)
    assert problem["code"] == "statement_rejected"
    assert len(problem["errors"]) >= 3  # the amount, the naive time and the missing footer
