"""``payment`` command: every process kind and operator task of the service, one image, one entry point.

payment api | relay | consumer | scheduler   the long-running processes
payment migrate                    Alembic upgrade to head (a Helm pre-upgrade Job)
payment events-schemas             write the JSON Schemas of the emitted events
payment settings                   print the effective settings, secrets hidden
payment reconcile --provider P --day D FILE   import a statement file and reconcile the day
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from payment.settings import Settings, get_settings

SERVICE_DIR = Path(__file__).resolve().parents[3]
MIGRATIONS = SERVICE_DIR / "migrations"

app = typer.Typer(help="The Utilis payment service.", no_args_is_help=True, add_completion=False)


@app.command()
def api(workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1) -> None:
    """Serve the HTTP API and the providers' callbacks."""
    from utilis_shared.runner import run_api

    settings = get_settings()
    run_api(
        "payment.entrypoints.http:create", host=settings.http_host, port=settings.http_port, workers=workers
    )


@app.command()
def relay() -> None:
    """Publish the outbox to Kafka (payment.events)."""
    from payment.entrypoints.workers import run_relay
    from utilis_shared.runner import run

    run(lambda: run_relay(get_settings()))


@app.command()
def consumer() -> None:
    """Consume billing.events (what accounts owe) into the payment service's local tables."""
    from payment.entrypoints.workers import run_consumer
    from utilis_shared.runner import run

    run(lambda: run_consumer(get_settings()))


@app.command()
def scheduler() -> None:
    """Ask providers about pending orders past their expiry; settle or close them."""
    from payment.entrypoints.workers import run_scheduler
    from utilis_shared.runner import run

    run(lambda: run_scheduler(get_settings()))


@app.command()
def migrate(revision: str = "head") -> None:
    """Upgrade the payment database schema."""
    from utilis_shared.migrations import run_migrations

    run_migrations(MIGRATIONS, get_settings().database_url, revision)
    typer.echo(f"payment database migrated to {revision}")


@app.command("dev-keys")
def dev_keys(
    path: Annotated[Path | None, typer.Option(help="default: the provider_keys_file setting")] = None,
) -> None:
    """Write the provider simulator's key bundle (development only; kept if it exists), so the service and
    the simulator (tests, load tests) share the providers' and the merchant's keys."""
    from payment.adapters.providers.simulator import SimulatorKeys

    settings = get_settings()
    if not settings.is_development:
        raise typer.BadParameter("development keys are refused outside development and test")
    if path is None and not settings.provider_keys_file:
        raise typer.BadParameter("name the file: --path or UTILIS_PROVIDER_KEYS_FILE")
    target = Path(path or settings.provider_keys_file)
    if target.exists():
        typer.echo(f"{target}: kept")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(SimulatorKeys.generate({"icbc": "RSA2", "boc": "SM2"}).to_json(), encoding="utf-8")
    target.chmod(0o600)
    typer.echo(f"{target}: written")


@app.command("events-schemas")
def events_schemas(folder: Path = SERVICE_DIR / "events") -> None:
    """Write the JSON Schema of every event this service emits."""
    from payment.events import catalog

    for path in catalog.write_schemas(folder):
        typer.echo(str(path))


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings with secrets hidden."""
    typer.echo(json.dumps(Settings().model_dump(mode="json"), indent=2, ensure_ascii=False))


@app.command()
def reconcile(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the provider's statement file")],
    provider: Annotated[str, typer.Option(help="wechat, alipay or bank:<code>")],
    day: Annotated[str, typer.Option(help="the statement's business day, YYYY-MM-DD (Asia/Shanghai)")],
    by: Annotated[str, typer.Option(help="who imports it (the audit trail)")] = "cli",
) -> None:
    """Import a provider's daily statement file (对账单) and reconcile the day; print the run as JSON.
    Exit 1 when the file is refused (every error printed), 0 otherwise (cases or not)."""
    import asyncio
    from datetime import date

    from payment.api.reconciliation import run_read
    from payment.service_layer import reconciliation as rec
    from utilis_shared.db import UnitOfWork, create_session_factory, engine_scope
    from utilis_shared.errors import Problem

    try:
        business_day = date.fromisoformat(day)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date YYYY-MM-DD: {day!r}", param_hint="--day") from exc
    settings = get_settings()
    data = file.read_bytes()

    async def run() -> dict:
        async with engine_scope(settings) as engine:
            uow = UnitOfWork(create_session_factory(engine), settings)
            async with uow:
                result = await rec.import_statement(uow, provider, business_day, data, f"cli:{by}")
                run, imported = await rec.get_run(uow.session, result.run.id)
                counts = await rec.case_counts(uow.session, run.id)
                body = run_read(run, imported, counts, replayed=not result.created)
                await uow.commit()
                return body

    try:
        body = asyncio.run(run())
    except Problem as exc:
        typer.echo(json.dumps(exc.to_dict(), indent=2, ensure_ascii=False), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
