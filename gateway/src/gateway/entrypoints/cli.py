"""``gateway`` command: the API process and the operator tasks, one image, one entry point.

gateway api                              the HTTP API (authorization server; routing comes next)
gateway consumer                         keeps residents' account bindings from customer.events
gateway migrate                          Alembic upgrade to head (a Helm pre-upgrade Job in the cluster)
gateway rotate-keys                      new active signing key; the old one stays published a while
gateway add-staff USERNAME --role R      a staff account (password generated, printed once, if not given)
gateway add-client CLIENT_ID --scope S   a partner client (secret generated, printed once, if not given)
gateway seed-demo                        demo staff and partner clients (refused outside development)
gateway bind-phone PHONE ACCOUNT_NO...   bind accounts to a resident's phone (development; events later)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gateway.domain.channels import Channel
from gateway.settings import Settings, get_settings

SERVICE_DIR = Path(__file__).resolve().parents[3]
MIGRATIONS = SERVICE_DIR / "migrations"
T = TypeVar("T")

app = typer.Typer(
    help="The Utilis gateway (OAuth2 authorization server).", no_args_is_help=True, add_completion=False
)


def _in_transaction(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    """Run ``work(uow)`` in one committed transaction against the gateway database."""
    from utilis_shared.db import UnitOfWork, create_session_factory, engine_scope

    async def main() -> T:
        async with engine_scope(settings, pool_size=1, max_overflow=0) as engine:
            uow = UnitOfWork(create_session_factory(engine), settings)
            async with uow:
                result = await work(uow)
                await uow.commit()
                return result

    return asyncio.run(main())


def _admin_call(work: Callable[..., Awaitable[T]]) -> T:
    from gateway.service_layer.admin import AdminError

    try:
        return _in_transaction(get_settings(), work)
    except AdminError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def api(workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1) -> None:
    """Serve the HTTP API."""
    from utilis_shared.runner import run_api

    settings = get_settings()
    run_api(
        "gateway.entrypoints.http:create", host=settings.http_host, port=settings.http_port, workers=workers
    )


@app.command()
def consumer() -> None:
    """Consume the customer service's events into residents' account bindings."""
    from gateway.entrypoints.workers import run_consumer
    from utilis_shared.runner import run

    run(lambda: run_consumer(get_settings()))


@app.command()
def migrate(revision: str = "head") -> None:
    """Upgrade the gateway database schema."""
    from utilis_shared.migrations import run_migrations

    run_migrations(MIGRATIONS, get_settings().database_url, revision)
    typer.echo(f"gateway database migrated to {revision}")


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Make a new ES256 signing key active; retired keys stay in the JWKS until their tokens expire."""
    from gateway.service_layer.keys import publication_window, rotate_keys
    from utilis_shared.pii import PiiCipher

    settings = get_settings()
    cipher = PiiCipher.from_settings(settings)

    async def work(uow):
        return (await rotate_keys(uow.session, cipher)).kid

    kid = _in_transaction(settings, work)
    typer.echo(
        f"active signing key: {kid} (API processes switch within {settings.signing_key_cache_seconds:g} s; "
        f"the previous key stays published for {publication_window(settings).total_seconds():g} s)"
    )


@app.command("add-staff")
def add_staff(
    username: str,
    role: Annotated[
        list[str],
        typer.Option(
            help="agent, dispatcher, technician, inspector, billing_clerk, billing_supervisor, analyst, "
            "admin (repeat)"
        ),
    ],
    password: Annotated[str | None, typer.Option(help="at least 10 characters; generated if omitted")] = None,
    name: Annotated[str, typer.Option(help="display name")] = "",
) -> None:
    """Register a staff account (argon2id password hash)."""
    from gateway.adapters.crypto import SecretHasher
    from gateway.service_layer.admin import add_staff as add

    created = _admin_call(
        lambda uow: add(
            uow, SecretHasher(), username=username, roles=role, password=password, display_name=name
        )
    )
    typer.echo(f"staff {created.name} added")
    if created.secret:
        typer.echo(f"password (shown once): {created.secret}")


@app.command("add-client")
def add_client(
    client_id: str,
    scope: Annotated[list[str] | None, typer.Option(help="allowed scope (repeat)")] = None,
    secret: Annotated[str | None, typer.Option(help="generated if omitted")] = None,
    name: str = "",
    channel: Annotated[
        Channel, typer.Option(help="the channel its tokens are attributed to (gateway.domain.channels)")
    ] = Channel.BANK,
    grant: Annotated[list[str] | None, typer.Option(help="grant types (default: client_credentials)")] = None,
    public: Annotated[bool, typer.Option(help="a public first-party client (no secret)")] = False,
) -> None:
    """Register an OAuth client: by default a confidential partner client using client_credentials."""
    from gateway.adapters.crypto import SecretHasher
    from gateway.service_layer.admin import add_client as add

    created = _admin_call(
        lambda uow: add(
            uow,
            SecretHasher(),
            client_id=client_id,
            scopes=scope or [],
            secret=secret,
            name=name,
            channel=channel.value,
            grant_types=grant,
            public=public,
        )
    )
    typer.echo(f"client {created.name} added")
    if created.secret:
        typer.echo(f"client secret (shown once): {created.secret}")


@app.command("seed-demo")
def seed_demo() -> None:
    """Load the demo staff accounts and partner clients (development only; idempotent)."""
    from gateway.adapters.crypto import SecretHasher
    from gateway.service_layer.admin import DEMO_PASSWORD, seed_demo

    settings = get_settings()
    if settings.environment != "development":
        raise typer.BadParameter(f"demo accounts are refused in environment {settings.environment!r}")
    added = _in_transaction(settings, lambda uow: seed_demo(uow, SecretHasher()))
    for line in added:
        typer.echo(f"added {line}")
    typer.echo(
        f"demo staff password: {DEMO_PASSWORD} (see README, Gateway)" if added else "demo data already there"
    )


@app.command("bind-phone")
def bind_phone(phone: str, account_no: list[str]) -> None:
    """Bind accounts to a resident's phone number (its blind index is stored, never the phone)."""
    from gateway.service_layer.residents import bind_accounts
    from gateway.service_layer.sms_codes import InvalidPhone
    from utilis_shared.pii import mask_phone

    try:
        added = _in_transaction(get_settings(), lambda uow: bind_accounts(uow, phone, account_no))
    except InvalidPhone as exc:
        raise typer.BadParameter(str(exc.detail)) from exc
    typer.echo(f"{mask_phone(phone)}: bound {', '.join(added) if added else 'nothing new'}")


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings with secrets hidden."""
    typer.echo(json.dumps(Settings().model_dump(mode="json"), indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
