"""Alembic per service: each service keeps ``migrations/`` beside its package and its own version table.

``run_migrations`` is what a service's ``migrate`` command (and the Helm pre-upgrade Job) calls; the app
never migrates at start-up. ``run_async_migrations`` is what each service's ``migrations/env.py`` calls.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

log = logging.getLogger(__name__)


def alembic_config(script_location: Path, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


def run_migrations(script_location: Path, database_url: str, revision: str = "head") -> bool:
    """Upgrade to ``revision``; False (and nothing done) if the database is at a revision this code does
    not know: after ``helm rollback`` the older release's migration Job meets the newer schema, which the
    expand/contract rule keeps compatible with it (docs/migrations.md), so it must not fail the upgrade."""
    config = alembic_config(script_location, database_url)
    ScriptDirectory.from_config(config).get_revisions(revision)  # an unknown *target* fails loudly
    try:
        command.upgrade(config, revision)
    except CommandError as exc:
        if "Can't locate revision" not in str(exc):  # the database's revision is unknown here
            raise
        log.warning(
            "the database is at a revision newer than this release; nothing to migrate",
            extra={"detail": str(exc)[:300]},
        )
        return False
    return True


def run_async_migrations(target_metadata: list[MetaData]) -> None:
    """Body of a service's ``env.py``: online migrations over asyncpg, one transaction per run."""
    config = context.config

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
    else:  # called from inside a running loop (tests): run in a fresh thread's loop
        import threading

        error: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                error.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if error:
            raise error[0]
