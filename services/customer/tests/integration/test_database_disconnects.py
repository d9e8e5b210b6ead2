"""Optimistic disconnect handling (no ping before each transaction): after the database drops every
connection (a restart, a failover), the first statement fails with an actionable 503 and invalidates the
pool; the next transaction reconnects and works."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.errors import database_problem


async def test_a_dropped_connection_costs_one_failed_statement_then_the_pool_reconnects(settings, engine):
    assert settings.db_pool_pre_ping is False
    name = "disconnect-test"
    own = create_engine(
        settings, pool_size=2, connect_args={"server_settings": {"application_name": name, "timezone": "UTC"}}
    )
    sessions = create_session_factory(own)
    try:
        async with sessions() as s:  # the pool now holds a live connection
            assert (await s.execute(text("SELECT 1"))).scalar_one() == 1
        async with engine.connect() as admin:
            killed = (
                await admin.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :n"
                    ),
                    {"n": name},
                )
            ).scalar_one()
        assert killed == 1
        async with sessions() as s:
            with pytest.raises(DBAPIError) as failed:
                await s.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        problem = database_problem(failed.value)
        assert problem is not None and problem.status == 503
        async with sessions() as s:
            assert (await s.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        await own.dispose()
