"""``migrate`` after a ``helm rollback``: the older release meets a database migrated by a newer one. It
must do nothing and succeed (expand/contract keeps the newer schema compatible), not fail the upgrade; a
database behind the code is still upgraded."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from alembic.util.exc import CommandError

from customer.entrypoints.cli import MIGRATIONS
from utilis_shared import devstack
from utilis_shared.migrations import run_migrations


async def version(url: str) -> str:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()


async def set_version(url: str, rev: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("UPDATE alembic_version SET version_num = $1", rev)
    finally:
        await conn.close()


def in_thread(*args):
    import asyncio

    return asyncio.to_thread(run_migrations, *args)


async def test_migrate_on_a_newer_database_does_nothing_and_succeeds():
    async with devstack.throwaway_database(f"customer_mig_{uuid.uuid4().hex[:10]}", MIGRATIONS) as url:
        head = await version(url)
        await set_version(url, "99990101_future")  # what the newer release left behind
        assert await in_thread(MIGRATIONS, url) is False
        assert await version(url) == "99990101_future"

        await set_version(url, head)
        assert await in_thread(MIGRATIONS, url) is True
        assert await version(url) == head
        with pytest.raises(CommandError):  # an unknown target still fails loudly
            await in_thread(MIGRATIONS, url, "no-such-target")
