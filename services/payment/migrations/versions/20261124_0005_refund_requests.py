"""refund requests sent to the providers: when the provider accepted one, the attempts, why it failed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00.000000

Forward-only, expand-then-contract: nullable columns and one with a default; the previous release ignores
them (its approved refunds stay ``submitted`` until the provider's notice, as before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "refunds", sa.Column("send_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("refunds", sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("refunds", sa.Column("last_error", sa.String(length=200), nullable=True))
    op.add_column("refunds", sa.Column("failure_code", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_refunds_to_send",
        "refunds",
        ["last_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'submitted' AND sent_at IS NULL"),
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
