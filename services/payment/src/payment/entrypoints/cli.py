"""``payment`` command: every process kind and operator task of the service, one image, one entry point.

payment api | relay | consumer | scheduler   the long-running processes
payment migrate                    Alembic upgrade to head (a Helm pre-upgrade Job)
payment events-schemas             write the JSON Schemas of the emitted events
payment settings                   print the effective settings, secrets hidden
payment providers-check [FILE]     validate a providers file (keys parsed, adapters built); print ids and
                                   key fingerprints, never a key
payment reconcile --provider P --day D FILE   import a statement file and reconcile the day
payment fetch-statement --provider P --day D  fetch the day's statement from the provider, then the same
payment withholding-batch --bank B --day D    make (or find) a bank's withholding batch; write its file
payment withholding-result FILE               apply a bank's withholding result file to its batch
payment withholding-simulate FILE             the simulated bank's result file for a request file (dev)
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


@app.command("providers-check")
def providers_check(
    path: Annotated[Path | None, typer.Argument(help="default: the providers_file setting")] = None,
) -> None:
    """Validate a providers file as the service would load it at start-up: every key parsed and every
    adapter built. Prints what is configured with the keys' fingerprints (compare them with what each
    provider shows for our keys and theirs); exit 1 with the provider and field named when it cannot be
    used. Never prints a key."""
    from payment.adapters.providers import config

    settings = get_settings()
    target = path or (Path(settings.providers_file) if settings.providers_file else None)
    if target is None:
        raise typer.BadParameter("name the file, or set UTILIS_PROVIDERS_FILE")
    try:
        loaded, adapters = config.load(target)
    except config.ProvidersConfigError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(loaded.summary(), indent=2, ensure_ascii=False))
    typer.echo(f"{target}: {len(adapters)} provider(s): {', '.join(adapters) or 'none'}")


@app.command("dev-keys")
def dev_keys(
    path: Annotated[Path | None, typer.Option(help="default: the provider_keys_file setting")] = None,
    providers_file: Annotated[
        Path | None,
        typer.Option(help="also write its merchant side as a providers file; default: providers_file"),
    ] = None,
) -> None:
    """Write the provider simulator's key bundle (development only; kept if it exists), so the service and
    the simulator (tests, load tests) share the providers' and the merchant's keys. With
    ``--providers-file`` (or the providers_file setting), also writes the bundle's merchant side in the
    production format, so the local stack's services load their keys as a deployment does."""
    from payment.adapters.providers.simulator import ProviderSimulator, SimulatorKeys

    settings = get_settings()
    if not settings.is_development:
        raise typer.BadParameter("development keys are refused outside development and test")
    if path is None and not settings.provider_keys_file:
        raise typer.BadParameter("name the file: --path or UTILIS_PROVIDER_KEYS_FILE")
    target = Path(path or settings.provider_keys_file)
    if target.exists():
        typer.echo(f"{target}: kept")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(SimulatorKeys.generate({"icbc": "RSA2", "boc": "SM2"}).to_json(), encoding="utf-8")
        target.chmod(0o600)
        typer.echo(f"{target}: written")
    providers_file = providers_file or (Path(settings.providers_file) if settings.providers_file else None)
    if providers_file is not None:
        simulator = ProviderSimulator.from_keys(target.read_text(encoding="utf-8"))
        providers_file.parent.mkdir(parents=True, exist_ok=True)
        providers_file.write_text(simulator.merchant_config().to_json(), encoding="utf-8")
        providers_file.chmod(0o600)
        typer.echo(f"{providers_file}: written (the merchant's side)")


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

    from payment.api.reconciliation import import_read
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
                body = await import_read(uow, result)
                await uow.commit()
                return body

    try:
        body = asyncio.run(run())
    except Problem as exc:
        typer.echo(json.dumps(exc.to_dict(), indent=2, ensure_ascii=False), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


@app.command("fetch-statement")
def fetch_statement(
    provider: Annotated[str, typer.Option(help="wechat, alipay or bank:<code>")],
    day: Annotated[str, typer.Option(help="the statement's business day, YYYY-MM-DD (Asia/Shanghai)")],
    by: Annotated[str, typer.Option(help="who fetches it (the audit trail)")] = "cli",
) -> None:
    """Fetch a provider's daily statement from its API (provider_query_urls), verify it, import it and
    reconcile the day, as the scheduler does each morning; print the run as JSON. Exit 1 when the provider
    has not made the file yet, or the answer, the file or the import is refused."""
    import asyncio
    from datetime import date

    import httpx

    from payment.adapters.providers.base import CallbackRejected
    from payment.api.callbacks import channels_from_settings
    from payment.api.reconciliation import import_read
    from payment.service_layer.statement_fetch import fetch_and_import
    from utilis_shared.db import UnitOfWork, create_session_factory, engine_scope
    from utilis_shared.errors import Problem
    from utilis_shared.timeutil import utcnow

    try:
        business_day = date.fromisoformat(day)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date YYYY-MM-DD: {day!r}", param_hint="--day") from exc
    settings = get_settings()

    async def run() -> dict | None:
        async with engine_scope(settings) as engine, httpx.AsyncClient(timeout=30.0) as http:
            factory = create_session_factory(engine)
            channels = channels_from_settings(settings)
            result = await fetch_and_import(
                factory, settings, channels, http, provider, business_day, now=utcnow(), by=f"cli:{by}"
            )
            if result is None:
                return None
            async with UnitOfWork(factory, settings) as uow:
                return await import_read(uow, result)

    try:
        body = asyncio.run(run())
    except Problem as exc:
        typer.echo(json.dumps(exc.to_dict(), indent=2, ensure_ascii=False), err=True)
        raise typer.Exit(1) from exc
    except (CallbackRejected, httpx.HTTPError) as exc:
        typer.echo(f"refused: {provider} {day}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if body is None:
        typer.echo(f"not ready: {provider} has not made its statement of {day} yet", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _run_cli(work) -> dict:
    """Run ``work(uow)`` in one committed unit of work against the configured database; its answer, or
    the problem printed as JSON and exit 1."""
    import asyncio

    from utilis_shared.db import UnitOfWork, create_session_factory, engine_scope
    from utilis_shared.errors import Problem

    settings = get_settings()

    async def run() -> dict:
        async with engine_scope(settings) as engine:
            uow = UnitOfWork(create_session_factory(engine), settings)
            async with uow:
                body = await work(uow, settings)
                await uow.commit()
                return body

    try:
        return asyncio.run(run())
    except Problem as exc:
        typer.echo(json.dumps(exc.to_dict(), indent=2, ensure_ascii=False), err=True)
        raise typer.Exit(1) from exc


@app.command("withholding-batch")
def withholding_batch(
    bank: Annotated[str, typer.Option(help="the bank's code, e.g. icbc")],
    day: Annotated[str, typer.Option(help="the business day the bank debits, YYYY-MM-DD (Asia/Shanghai)")],
    out: Annotated[
        Path | None, typer.Option(help="where to write the request file (default <batch_no>.csv)")
    ] = None,
    by: Annotated[str, typer.Option(help="who runs it (the audit trail)")] = "cli",
) -> None:
    """Make the withholding batch (代扣) of a bank for a business day, or find the one made before (the same
    bank and day give the same batch); write its request file and print the batch as JSON."""
    from datetime import date, timedelta

    from payment.api.withholding import batch_read
    from payment.service_layer import withholding
    from utilis_shared.timeutil import utcnow

    try:
        business_day = date.fromisoformat(day)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date YYYY-MM-DD: {day!r}", param_hint="--day") from exc
    files: dict[str, bytes] = {}

    async def work(uow, settings) -> dict:
        result = await withholding.create_batch(
            uow,
            banks=settings.withholding_banks,
            bank_code=bank,
            day=business_day,
            by=f"cli:{by}",
            now=utcnow(),
            result_ttl=timedelta(days=settings.withholding_result_days),
        )
        files["request"] = result.batch.request_file
        return batch_read(result.batch, created=result.created)

    body = _run_cli(work)
    target = out or Path(f"{body['batch_no']}.csv")
    target.write_bytes(files["request"])
    typer.echo(json.dumps({**body, "request_file": str(target)}, indent=2, ensure_ascii=False))


@app.command("withholding-result")
def withholding_result(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the bank's result file")],
    batch: Annotated[str | None, typer.Option(help="the batch number (default: the file's header)")] = None,
    by: Annotated[str, typer.Option(help="who applies it (the audit trail)")] = "cli",
) -> None:
    """Apply a bank's withholding result file to its batch: each success settled once, each failure closed
    with the bank's reason; the same file again changes nothing. Exit 1 when the file is refused (every
    line's error printed, nothing applied)."""
    from payment.adapters.providers.withholding import batch_no_of
    from payment.api.withholding import batch_read
    from payment.service_layer import withholding
    from utilis_shared.timeutil import utcnow

    data = file.read_bytes()
    batch = batch or batch_no_of(data)
    if batch is None:
        raise typer.BadParameter("the file has no header naming its batch: pass --batch")

    async def work(uow, settings) -> dict:
        result = await withholding.apply_result(uow, batch_no=batch, data=data, by=f"cli:{by}", now=utcnow())
        return {
            "batch": batch_read(result.batch),
            "replayed": not result.applied,
            "outcomes": result.outcomes,
        }

    typer.echo(json.dumps(_run_cli(work), indent=2, ensure_ascii=False))


@app.command("withholding-simulate")
def withholding_simulate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a withholding request file")],
    out: Annotated[Path, typer.Option(help="where to write the simulated bank's result file")],
    fail: Annotated[
        list[str] | None,
        typer.Option(help="ACCOUNT_OR_ORDER=REASON, e.g. 31000000017=INSUFFICIENT_FUNDS (repeatable)"),
    ] = None,
) -> None:
    """Development: the result file the simulated bank sends back for a request file (every line debited
    but those named by --fail, with the reason code given)."""
    from payment.adapters.providers.simulator import ProviderSimulator

    settings = get_settings()
    if not settings.is_development:
        raise typer.BadParameter("the simulator is refused outside development and test")
    failures = {}
    for item in fail or []:
        key, sep, reason = item.partition("=")
        if not sep or not key or not reason:
            raise typer.BadParameter(f"not ACCOUNT_OR_ORDER=REASON: {item!r}", param_hint="--fail")
        failures[key] = reason
    out.write_bytes(ProviderSimulator(banks={}).withholding_result(file.read_bytes(), failures=failures))
    typer.echo(str(out))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
