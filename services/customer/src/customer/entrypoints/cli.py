"""``customer`` command: every process kind and operator task of the service, one image, one entry point.

customer api | relay | consumer      the three long-running processes
customer migrate                     Alembic upgrade to head (a Helm pre-upgrade Job in the cluster)
customer import FILE                 load a legacy archive (CSV/XLSX), re-runnable
customer demo-data --accounts N      generate and load a realistic customer base
customer events-schemas              write the JSON Schemas of the emitted events
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from customer.settings import Settings, get_settings

SERVICE_DIR = Path(__file__).resolve().parents[3]
MIGRATIONS = SERVICE_DIR / "migrations"

app = typer.Typer(help="The Utilis customer service.", no_args_is_help=True, add_completion=False)


@app.command()
def api(workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1) -> None:
    """Serve the HTTP API."""
    from utilis_shared.runner import run_api

    settings = get_settings()
    run_api(
        "customer.entrypoints.http:create", host=settings.http_host, port=settings.http_port, workers=workers
    )


@app.command()
def relay() -> None:
    """Publish the outbox to Kafka."""
    from customer.entrypoints.workers import run_relay
    from utilis_shared.runner import run

    run(lambda: run_relay(get_settings()))


@app.command()
def consumer() -> None:
    """Consume other services' events into the 360° projections."""
    from customer.entrypoints.workers import run_consumer
    from utilis_shared.runner import run

    run(lambda: run_consumer(get_settings()))


@app.command()
def migrate(revision: str = "head") -> None:
    """Upgrade the customer database schema."""
    from utilis_shared.migrations import run_migrations

    run_migrations(MIGRATIONS, get_settings().database_url, revision)
    typer.echo(f"customer database migrated to {revision}")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV (UTF-8 or GB18030) or XLSX")],
    reject_report: Annotated[Path | None, typer.Option(help="where to write rejected rows (CSV)")] = None,
    batch_size: int = 2000,
    actor: str = "import-cli",
    progress: bool = True,
) -> None:
    """Import a legacy customer archive: validate, report completeness and duplicates, load in batches."""
    from customer.service_layer.importer import import_archive
    from utilis_shared.db import engine_scope
    from utilis_shared.pii import PiiCipher

    settings = get_settings()
    report = reject_report or path.with_suffix(".rejects.csv")

    async def main() -> None:
        async with engine_scope(settings) as engine:
            summary = await import_archive(
                engine,
                settings,
                PiiCipher.from_settings(settings),
                path,
                actor=actor,
                reject_report_path=report,
                batch_size=batch_size,
                progress=progress and sys.stderr.isatty(),
            )
        for line in summary.to_lines():
            typer.echo(line)

    asyncio.run(main())


@app.command("demo-data")
def demo_data(
    accounts: Annotated[int, typer.Option(help="how many accounts to generate")] = 10_000,
    seed: int = 2026,
    out: Annotated[Path | None, typer.Option(help="keep the generated archive here")] = None,
    load: Annotated[bool, typer.Option(help="import it into the database")] = True,
) -> None:
    """Generate a realistic northern-city customer base (Harbin) and import it like a legacy archive."""
    import tempfile

    from customer.domain.demo import generate_rows, write_csv

    target = out or Path(tempfile.mkdtemp(prefix="utilis-demo-")) / f"demo-{accounts}.csv"
    write_csv(generate_rows(accounts, seed=seed), target)
    typer.echo(f"generated {accounts} accounts into {target}")
    if load:
        import_(
            target,
            reject_report=target.with_suffix(".rejects.csv"),
            batch_size=2000,
            actor="demo-data",
            progress=True,
        )


@app.command("events-schemas")
def events_schemas(folder: Path = SERVICE_DIR / "events") -> None:
    """Write the JSON Schema of every event this service emits."""
    from customer.events import catalog

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
