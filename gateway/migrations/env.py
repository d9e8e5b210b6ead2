"""Alembic environment of the gateway database (run by ``gateway migrate``, never by the app)."""

from gateway.adapters.orm import Base
from utilis_shared.db import platform_metadata
from utilis_shared.migrations import run_async_migrations

run_async_migrations([Base.metadata, platform_metadata])
