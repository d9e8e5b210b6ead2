"""bills and receivables: billing runs, bills, receivables, postings, prepaid balances, settlements,
waivers, reminders; district on billing accounts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:40:00.000000

Forward-only, expand-then-contract: the previous release must still run against this schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Expand: nullable, filled by the consumer from the next customer event (billing runs select by it).
    op.add_column("billing_accounts", sa.Column("district", sa.String(length=50), nullable=True))
    op.create_index("ix_billing_accounts_district", "billing_accounts", ["district", "account_no"])


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
