"""counter shift hand-overs (交班): one per cashier and shift, what the receipts say against the cash counted

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 08:00:00.000000

Additive: a new table. The previous release neither reads nor writes it (it does take receipts into a shift
handed over meanwhile: roll the API out before cashiers start handing over).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "counter_handovers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("shift_id", sa.String(length=40), nullable=False),
        sa.Column("cashier", sa.String(length=200), nullable=False),
        sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("receipts_count", sa.Integer(), nullable=False),
        sa.Column("cash_fen", sa.BigInteger(), nullable=False),
        sa.Column("pos_fen", sa.BigInteger(), nullable=False),
        sa.Column("unspecified_fen", sa.BigInteger(), nullable=False),
        sa.Column("counted_cash_fen", sa.BigInteger(), nullable=False),
        sa.Column("difference_fen", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "counted_cash_fen >= 0", name=op.f("ck_counter_handovers_counted_cash_non_negative")
        ),
        sa.CheckConstraint(
            "difference_fen = counted_cash_fen - cash_fen", name=op.f("ck_counter_handovers_difference")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counter_handovers")),
        sa.UniqueConstraint("shift_id", "cashier", name="uq_counter_handovers_shift_cashier"),
    )
    op.create_index("ix_counter_handovers_day", "counter_handovers", ["business_day"], unique=False)


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
