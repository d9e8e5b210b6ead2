"""``metering-and-billing`` command: every process kind and operator task of the service, one image, one
entry point.

metering-and-billing api | relay | consumer | scheduler   the long-running processes
metering-and-billing bill --cycle --plan ...    create a billing run and process it in the foreground
metering-and-billing migrate                    Alembic upgrade to head (a Helm pre-upgrade Job)
metering-and-billing seed-tariffs [FILES]       load the seed tariff plans (seeds/tariffs/*.json), re-runnable
metering-and-billing events-schemas             write the JSON Schemas of the emitted events
metering-and-billing settings                   print the effective settings, secrets hidden
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from billing.settings import Settings, get_settings

SERVICE_DIR = Path(__file__).resolve().parents[3]
MIGRATIONS = SERVICE_DIR / "migrations"
SEEDS = SERVICE_DIR / "seeds" / "tariffs"

app = typer.Typer(help="The Utilis metering and billing service.", no_args_is_help=True, add_completion=False)


@app.command()
def api(workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1) -> None:
    """Serve the HTTP API."""
    from utilis_shared.runner import run_api

    settings = get_settings()
    run_api(
        "billing.entrypoints.http:create", host=settings.http_host, port=settings.http_port, workers=workers
    )


@app.command()
def relay() -> None:
    """Publish the outbox to Kafka (billing.events)."""
    from billing.entrypoints.workers import run_relay
    from utilis_shared.runner import run

    run(lambda: run_relay(get_settings()))


@app.command()
def consumer() -> None:
    """Consume customer.events (and, later, payment.events) into billing's local tables."""
    from billing.entrypoints.workers import run_consumer
    from utilis_shared.runner import run

    run(lambda: run_consumer(get_settings()))


@app.command()
def scheduler() -> None:
    """Process billing runs and send due payment reminders."""
    from billing.entrypoints.workers import run_scheduler
    from utilis_shared.runner import run

    run(lambda: run_scheduler(get_settings()))


@app.command()
def bill(
    cycle: Annotated[str, typer.Option(help="e.g. 2026S (heating season) or 202611 (a month)")],
    plan: Annotated[str, typer.Option(help="tariff plan code")],
    period_start: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    period_end: Annotated[str, typer.Option(help="YYYY-MM-DD, excluded")],
    issue_date: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    due_date: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    district: Annotated[str | None, typer.Option(help="bill one district only")] = None,
) -> None:
    """Create a billing run and process it in the foreground, with a progress bar (a Kubernetes Job, or
    an operator's terminal); re-running the same cycle bills only accounts without a bill for it."""
    import datetime as dt

    from rich.progress import Progress

    from billing.adapters.cache import LookupCache
    from billing.service_layer import billing_runs
    from utilis_shared.db import UnitOfWork, create_session_factory, engine_scope

    settings = get_settings()
    request = billing_runs.RunRequest(
        cycle=cycle,
        tariff_plan_code=plan,
        period_start=dt.date.fromisoformat(period_start),
        period_end=dt.date.fromisoformat(period_end),
        issue_date=dt.date.fromisoformat(issue_date),
        due_date=dt.date.fromisoformat(due_date),
        selection={"kind": "district", "district": district} if district else {"kind": "all"},
    )

    async def main() -> None:
        cache = LookupCache.from_settings(settings)
        async with engine_scope(settings) as engine:
            factory = create_session_factory(engine)
            async with UnitOfWork(factory, settings) as uow:
                run = await billing_runs.create_run(uow, request=request, requested_by="cli")
                await uow.commit()
            with Progress(transient=True) as bar:
                task = bar.add_task(f"billing {cycle}", total=None)

                def progress(r) -> None:
                    bar.update(
                        task,
                        completed=r.accounts_seen,
                        description=f"billing {cycle}: {r.bills_issued} bills",
                    )

                run = await billing_runs.process_run(
                    factory, settings, run.id, invalidate=cache.invalidate, on_chunk=progress
                )
        await cache.close()
        typer.echo(
            f"run {run.id}: {run.status}, {run.bills_issued} bills, {run.billed_fen} fen, "
            f"skipped {run.skipped}"
        )

    asyncio.run(main())


@app.command()
def migrate(revision: str = "head") -> None:
    """Upgrade the metering_and_billing database schema."""
    from utilis_shared.migrations import run_migrations

    run_migrations(MIGRATIONS, get_settings().database_url, revision)
    typer.echo(f"metering_and_billing database migrated to {revision}")


@app.command("seed-tariffs")
def seed_tariffs(
    paths: Annotated[
        list[Path] | None, typer.Argument(exists=True, dir_okay=False, help="plan files (default: all seeds)")
    ] = None,
) -> None:
    """Publish the seed tariff plans; versions already stored are left alone (re-runnable)."""
    from billing.service_layer.seeds import load_seeds
    from utilis_shared.db import create_session_factory, engine_scope

    settings = get_settings()
    files = list(paths) if paths else sorted(SEEDS.glob("*.json"))

    async def main() -> None:
        async with engine_scope(settings) as engine:
            summary = await load_seeds(create_session_factory(engine), settings, files)
        for line in summary.to_lines():
            typer.echo(line)
        if summary.differing:
            raise typer.Exit(1)

    asyncio.run(main())


@app.command("events-schemas")
def events_schemas(folder: Path = SERVICE_DIR / "events") -> None:
    """Write the JSON Schema of every event this service emits."""
    from billing.events import catalog

    for path in catalog.write_schemas(folder):
        typer.echo(str(path))


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings with secrets hidden."""
    typer.echo(json.dumps(Settings().model_dump(mode="json"), indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
