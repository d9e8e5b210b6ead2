"""withholding batches: when the scheduler handed the request file to the banks' transfer (written into
the exchange directory), so a file the transfer has taken away is never written again

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 08:10:00.000000

Additive: a nullable column. The previous release neither reads nor writes it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "withholding_batches", sa.Column("request_handed_over_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
