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
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Expand: nullable, filled by the consumer from the next customer event (billing runs select by it).
    op.add_column("billing_accounts", sa.Column("district", sa.String(length=50), nullable=True))
    op.create_index("ix_billing_accounts_district", "billing_accounts", ["district", "account_no"])
    op.create_table(
        "billing_runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("cycle", sa.String(length=12), nullable=False),
        sa.Column("tariff_plan_code", sa.String(length=80), nullable=False),
        sa.Column("utility", sa.String(length=20), nullable=False),
        sa.Column("customer_class", sa.String(length=20), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("selection", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cursor", sa.String(length=20), nullable=True),
        sa.Column("accounts_seen", sa.Integer(), nullable=False),
        sa.Column("bills_issued", sa.Integer(), nullable=False),
        sa.Column("billed_fen", sa.BigInteger(), nullable=False),
        sa.Column("skipped", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')", name=op.f("ck_billing_runs_status")
        ),
        sa.CheckConstraint("due_date >= issue_date", name=op.f("ck_billing_runs_due_after_issue")),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_billing_runs_period_ordered")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_runs")),
    )
    op.create_index("ix_billing_runs_cycle", "billing_runs", ["cycle", "created_at"], unique=False)
    op.create_index("ix_billing_runs_status", "billing_runs", ["status", "created_at"], unique=False)
    op.create_table(
        "bills",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("bill_no", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("cycle", sa.String(length=12), nullable=True),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("original_bill_no", sa.String(length=40), nullable=True),
        sa.Column("utility", sa.String(length=20), nullable=False),
        sa.Column("tariff_plan_code", sa.String(length=80), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("volume", sa.Numeric(precision=14, scale=3), nullable=True),
        sa.Column("year_to_date_before", sa.Numeric(precision=14, scale=3), nullable=True),
        sa.Column("year_to_date_after", sa.Numeric(precision=14, scale=3), nullable=True),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("late_fee_policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind <> 'bill' OR cycle IS NOT NULL", name=op.f("ck_bills_bill_has_cycle")),
        sa.CheckConstraint(
            "kind <> 'credit_note' OR original_bill_no IS NOT NULL",
            name=op.f("ck_bills_credit_note_has_original"),
        ),
        sa.CheckConstraint("kind IN ('bill', 'credit_note', 'debit_note')", name=op.f("ck_bills_kind")),
        sa.CheckConstraint("total_fen >= 0", name=op.f("ck_bills_total_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bills")),
        sa.UniqueConstraint("bill_no", name=op.f("uq_bills_bill_no")),
    )
    op.create_index("ix_bills_account_issued", "bills", ["account_no", "issue_date", "bill_no"], unique=False)
    op.create_index(
        "ix_bills_original",
        "bills",
        ["original_bill_no"],
        unique=False,
        postgresql_where=sa.text("original_bill_no IS NOT NULL"),
    )
    op.create_index(
        "uq_bills_account_cycle",
        "bills",
        ["account_no", "cycle"],
        unique=True,
        postgresql_where=sa.text("kind = 'bill'"),
    )
    op.create_table(
        "receivables",
        sa.Column("bill_no", sa.String(length=40), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("utility", sa.String(length=20), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("late_fee_credited_fen", sa.BigInteger(), nullable=False),
        sa.Column("late_fee_policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_posting_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('open', 'settled')", name=op.f("ck_receivables_status")),
        sa.CheckConstraint(
            "late_fee_credited_fen >= 0", name=op.f("ck_receivables_late_fee_credited_non_negative")
        ),
        sa.CheckConstraint("principal_fen >= 0", name=op.f("ck_receivables_principal_non_negative")),
        sa.CheckConstraint(
            "principal_paid_fen BETWEEN 0 AND principal_fen",
            name=op.f("ck_receivables_paid_within_principal"),
        ),
        sa.PrimaryKeyConstraint("bill_no", name=op.f("pk_receivables")),
    )
    # Full indexes, not partial ones on status = 'open': a prepared statement's generic plan binds the
    # status as a parameter and cannot use a partial index.
    op.create_index("ix_receivables_account_status", "receivables", ["account_no", "status", "due_at"])
    op.create_index("ix_receivables_status_due", "receivables", ["status", "due_at"])
    op.create_table(
        "postings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("bill_no", sa.String(length=40), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late_fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('payment', 'prepaid', 'waiver', 'credit')", name=op.f("ck_postings_kind")
        ),
        sa.CheckConstraint(
            "late_fee_fen >= 0 AND principal_fen >= 0", name=op.f("ck_postings_amounts_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
        sa.UniqueConstraint("bill_no", "ref", name="uq_postings_bill_ref"),
    )
    op.create_index("ix_postings_ref", "postings", ["ref"], unique=False)
    op.create_table(
        "account_balances",
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("prepaid_fen", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("prepaid_fen >= 0", name=op.f("ck_account_balances_prepaid_non_negative")),
        sa.PrimaryKeyConstraint("account_no", name=op.f("pk_account_balances")),
    )
    op.create_table(
        "settlements",
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("allocations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prepaid_before_fen", sa.BigInteger(), nullable=False),
        sa.Column("prepaid_added_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reversal", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('settled', 'reversed')", name=op.f("ck_settlements_status")),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_settlements_amount_positive")),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_settlements")),
    )
    op.create_index("ix_settlements_account", "settlements", ["account_no", "paid_at"], unique=False)
    op.create_table(
        "late_fee_waivers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("bill_no", sa.String(length=40), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("late_fee_before_fen", sa.BigInteger(), nullable=False),
        sa.Column("late_fee_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("approver_roles", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_late_fee_waivers_amount_positive")),
        sa.CheckConstraint("requested_by <> approved_by", name=op.f("ck_late_fee_waivers_four_eyes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_late_fee_waivers")),
    )
    op.create_index("ix_late_fee_waivers_account", "late_fee_waivers", ["account_no", "at"], unique=False)
    op.create_table(
        "reminders",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("bill_no", sa.String(length=40), nullable=False),
        sa.Column("step_code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_message_id", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('sent', 'skipped', 'failed')", name=op.f("ck_reminders_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
        sa.UniqueConstraint("bill_no", "step_code", name="uq_reminders_bill_step"),
    )
    op.create_index("ix_reminders_account", "reminders", ["account_no", "created_at"], unique=False)
    # An issued bill (or note) is immutable: corrections are new credit/debit notes, never edits.
    op.execute(
        """
        CREATE FUNCTION bills_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'bills are immutable: issue a credit or debit note (bill %)', OLD.bill_no
                USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'bills_immutable';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER bills_immutable BEFORE UPDATE OR DELETE ON bills "
        "FOR EACH ROW EXECUTE FUNCTION bills_immutable()"
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
