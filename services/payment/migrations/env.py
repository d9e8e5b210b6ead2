"""Alembic environment of the payment database (run by ``payment migrate``)."""

from payment.adapters import orm_withholding  # noqa: F401  (its tables are on Base.metadata)
from payment.adapters.orm import Base
from utilis_shared.db import platform_metadata
from utilis_shared.migrations import run_async_migrations

run_async_migrations([Base.metadata, platform_metadata])
