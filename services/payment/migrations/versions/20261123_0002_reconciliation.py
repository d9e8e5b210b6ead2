"""reconciliation: statement imports, reconciliation runs, cases and their resolution, billing's settlements

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:35:00.000000

Forward-only, expand-then-contract: the previous release must still run against this schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    # What billing reported settling (billing.settlement.recorded / .reversed): one row per recorded event.
    op.create_table(
        "billing_settlements",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.String(length=32), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reapplied_fen", sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("amount_fen >= 0", name=op.f("ck_billing_settlements_amount_not_negative")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_billing_settlements")),
    )
    op.create_index("ix_billing_settlements_payment", "billing_settlements", ["payment_id"], unique=False)
    op.create_index("ix_billing_settlements_paid_at", "billing_settlements", ["paid_at"], unique=False)

    op.create_table(
        "statement_imports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("imported_by", sa.String(length=200), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_imports")),
        sa.UniqueConstraint("provider", "day", "sha256", name="uq_statement_imports_file"),
    )

    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("superseded_by", sa.UUID(), nullable=True),
        sa.Column("carried_from", sa.UUID(), nullable=True),  # the previous day's run carried over
        sa.Column("cutover_seconds", sa.Integer(), nullable=False),
        sa.Column("lines_count", sa.Integer(), nullable=False),
        sa.Column("matched_count", sa.Integer(), nullable=False),
        sa.Column("cases_count", sa.Integer(), nullable=False),
        sa.Column("statement_payments_count", sa.Integer(), nullable=False),
        sa.Column("statement_payments_fen", sa.BigInteger(), nullable=False),
        sa.Column("statement_refunds_count", sa.Integer(), nullable=False),
        sa.Column("statement_refunds_fen", sa.BigInteger(), nullable=False),
        sa.Column("statement_fees_fen", sa.BigInteger(), nullable=False),
        sa.Column("recorded_payments_count", sa.Integer(), nullable=False),
        sa.Column("recorded_payments_fen", sa.BigInteger(), nullable=False),
        sa.Column("recorded_refunds_count", sa.Integer(), nullable=False),
        sa.Column("recorded_refunds_fen", sa.BigInteger(), nullable=False),
        # What the next day's run is handed: pending cut-over payments and refunds, those matched ahead.
        sa.Column("carry", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("run_by", sa.String(length=200), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("status IN ('current', 'superseded')", name=op.f("ck_reconciliation_runs_status")),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["statement_imports.id"],
            name=op.f("fk_reconciliation_runs_import_id_statement_imports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint("import_id", name="uq_reconciliation_runs_import"),
    )
    op.create_index(
        "uq_reconciliation_runs_current",
        "reconciliation_runs",
        ["provider", "day"],
        unique=True,
        postgresql_where=sa.text("status = 'current'"),
    )
    op.create_index("ix_reconciliation_runs_day", "reconciliation_runs", ["day", "provider"], unique=False)

    op.create_table(
        "reconciliation_cases",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("against", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=10), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("provider_txn_id", sa.String(length=64), nullable=True),
        sa.Column("refund_no", sa.String(length=64), nullable=True),
        sa.Column("expected_fen", sa.BigInteger(), nullable=True),
        sa.Column("actual_fen", sa.BigInteger(), nullable=True),
        sa.Column("raw_line_no", sa.Integer(), nullable=True),
        sa.Column("detail_zh", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "kind IN ('missing_here', 'missing_at_provider', 'amount_differs', 'settled_twice', "
            "'not_settled', 'status_differs')",
            name=op.f("ck_reconciliation_cases_kind"),
        ),
        sa.CheckConstraint(
            "against IN ('provider', 'billing')", name=op.f("ck_reconciliation_cases_against")
        ),
        sa.CheckConstraint("subject IN ('payment', 'refund')", name=op.f("ck_reconciliation_cases_subject")),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'dismissed')", name=op.f("ck_reconciliation_cases_status")
        ),
        sa.CheckConstraint(
            "(status = 'open') = (resolved_at IS NULL)", name=op.f("ck_reconciliation_cases_resolved_at")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_cases_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_cases")),
    )
    op.create_index("ix_reconciliation_cases_run", "reconciliation_cases", ["run_id"], unique=False)
    op.create_index("ix_reconciliation_cases_status", "reconciliation_cases", ["status", "id"], unique=False)
    op.create_index("ix_reconciliation_cases_order", "reconciliation_cases", ["order_no"], unique=False)


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
