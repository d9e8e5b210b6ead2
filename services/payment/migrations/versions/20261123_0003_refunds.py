"""refunds and e-invoice requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:40:00.000000

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
    # Refund numbers: R + the order number's digits + a 2-digit sequence per order.
    op.create_table(
        "refunds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("refund_no", sa.String(length=32), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('requested', 'submitted', 'succeeded', 'rejected', 'failed')",
            name=op.f("ck_refunds_status"),
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint(
            "approved_by IS NULL OR approved_by <> requested_by", name=op.f("ck_refunds_four_eyes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("refund_no", name="uq_refunds_refund_no"),
    )
    op.create_index("ix_refunds_order", "refunds", ["order_no", "created_at"], unique=False)
    op.create_table(
        "invoice_requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("title_kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("tax_no", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('requested', 'issued', 'failed')", name=op.f("ck_invoice_requests_status")
        ),
        sa.CheckConstraint(
            "title_kind = 'personal' OR tax_no IS NOT NULL",
            name=op.f("ck_invoice_requests_company_has_tax_no"),
        ),
        sa.CheckConstraint(
            "title_kind IN ('personal', 'company')", name=op.f("ck_invoice_requests_title_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_requests")),
        sa.UniqueConstraint("order_no", name="uq_invoice_requests_order_no"),
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
