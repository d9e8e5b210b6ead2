"""Alembic environment of the metering_and_billing database (run by ``metering-and-billing migrate``)."""

from billing.adapters.orm import Base
from utilis_shared.db import platform_metadata
from utilis_shared.migrations import run_async_migrations

run_async_migrations([Base.metadata, platform_metadata])
