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


def test_the_cli_fetches_a_statement_from_the_provider_and_reconciles(
    monkeypatch, settings, simulator, tmp_path
) -> None:
    """``payment fetch-statement``: the day's statement from the provider's API (the simulator served over
    real HTTP), verified and imported; a day the provider has not made yet exits 1 and stores nothing."""
    import socket
    import threading
    import time

    import uvicorn

    day = a_day()
    simulator.register_order("bank:icbc", "P209901010000000555", 555)
    simulator.callback("bank:icbc", "P209901010000000555", 555, paid_at=at(day, 9))
    providers = tmp_path / "providers.json"
    providers.write_text(simulator.merchant_config().to_json(), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(simulator.asgi_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setenv("UTILIS_PROVIDERS_FILE", str(providers))
    monkeypatch.setenv(
        "UTILIS_PROVIDER_QUERY_URLS", json.dumps({"bank:icbc": f"http://127.0.0.1:{port}/bank/icbc"})
    )
    try:
        args = ["fetch-statement", "--provider", "bank:icbc", "--day", day.isoformat(), "--by", "ops-wang"]
        fetched = invoke(monkeypatch, settings, *args)
        assert fetched.exit_code == 0, fetched.output
        run = json.loads(fetched.output)
        assert (run["provider"], run["day"], run["run_by"], run["lines_count"]) == (
            "bank:icbc",
            day.isoformat(),
            "cli:ops-wang",
            1,
        )
        assert run["cases_count"] == 1  # the bank's payment is unknown here: missing_here
        later = a_day()
        simulator.statements_not_ready.add(("bank:icbc", later))
        waiting = invoke(
            monkeypatch, settings, "fetch-statement", "--provider", "bank:icbc", "--day", str(later)
        )
        assert waiting.exit_code == 1 and "not ready" in waiting.output
        unknown = invoke(
            monkeypatch, settings, "fetch-statement", "--provider", "wechat", "--day", str(later)
        )
        assert unknown.exit_code == 1 and "no_statement_source" in unknown.output
    finally:
        server.should_exit = True
        thread.join(timeout=10)
