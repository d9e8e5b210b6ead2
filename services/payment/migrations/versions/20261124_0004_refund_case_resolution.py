"""refund case resolution: refund the money or apply it as a prepaid top-up

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000

Forward-only, expand-then-contract: only nullable columns and a wider status check are added, so the
previous release (which never writes ``refunding``) still runs against this schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refund_cases", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("refund_cases", sa.Column("refund_no", sa.String(length=32), nullable=True))
    op.add_column("refund_cases", sa.Column("applied_order_no", sa.String(length=32), nullable=True))
    op.add_column("refund_cases", sa.Column("resolved_by", sa.String(length=200), nullable=True))
    op.add_column("refund_cases", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "refund_cases", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.drop_constraint(op.f("ck_refund_cases_status"), "refund_cases", type_="check")
    op.create_check_constraint(
        op.f("ck_refund_cases_status"),
        "refund_cases",
        "status IN ('open', 'refunding', 'refunded', 'applied', 'dismissed')",
    )
    op.create_index("ix_refund_cases_status", "refund_cases", ["status", "id"], unique=False)
    # A refund of a refund case's money (not of a payment billing settled), and the top-up order made
    # from a case.
    op.add_column("refunds", sa.Column("refund_case_id", sa.UUID(), nullable=True))
    op.add_column("payment_orders", sa.Column("refund_case_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
