"""bank withholding (代扣): mandates, batches and their lines; the counter's receipts (shift report)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 14:00:00.000000

Forward-only, expand-then-contract: new tables only; the previous release ignores them. Counter payments
already taken are copied into ``counter_receipts`` (method unknown: NULL) so the shift report sees them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "withholding_mandates",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("bank_code", sa.String(length=20), nullable=False),
        sa.Column("bank_account_enc", sa.Text(), nullable=False),
        sa.Column("bank_account_bidx", sa.String(length=64), nullable=False),
        sa.Column("bank_account_masked", sa.String(length=40), nullable=False),
        sa.Column("agreement_no", sa.String(length=40), nullable=True),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_withholding_mandates_status")),
        sa.CheckConstraint(
            "(status = 'revoked') = (revoked_at IS NOT NULL)", name=op.f("ck_withholding_mandates_revoked_at")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withholding_mandates")),
    )
    op.create_index(
        "uq_withholding_mandates_active_account",
        "withholding_mandates",
        ["account_no"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_withholding_mandates_bank_active", "withholding_mandates", ["bank_code", "account_no"]
    )
    op.create_index(
        "ix_withholding_mandates_bank_account_bidx", "withholding_mandates", ["bank_account_bidx"]
    )
    op.create_table(
        "withholding_batches",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("batch_no", sa.String(length=32), nullable=False),
        sa.Column("bank_code", sa.String(length=20), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("merchant_no", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("request_file", sa.LargeBinary(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("result_sha256", sa.String(length=64), nullable=True),
        sa.Column("result_file", sa.LargeBinary(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_applied_by", sa.String(length=200), nullable=True),
        sa.Column("succeeded_count", sa.Integer(), nullable=False),
        sa.Column("succeeded_fen", sa.BigInteger(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("failed_fen", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('requested', 'completed')", name=op.f("ck_withholding_batches_status")
        ),
        sa.CheckConstraint("item_count > 0 AND total_fen > 0", name=op.f("ck_withholding_batches_not_empty")),
        sa.CheckConstraint(
            "(status = 'completed') = (result_sha256 IS NOT NULL)", name=op.f("ck_withholding_batches_result")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withholding_batches")),
        sa.UniqueConstraint("batch_no", name="uq_withholding_batches_batch_no"),
        sa.UniqueConstraint("bank_code", "business_day", name="uq_withholding_batches_bank_day"),
    )
    op.create_table(
        "withholding_items",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("mandate_id", sa.UUID(), nullable=False),
        sa.Column("bank_account_masked", sa.String(length=40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("bank_serial_no", sa.String(length=64), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("result_line", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_withholding_items_status")
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_withholding_items_amount_positive")),
        sa.CheckConstraint(
            "status <> 'failed' OR failure_code IS NOT NULL",
            name=op.f("ck_withholding_items_failure_has_code"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["withholding_batches.id"],
            name=op.f("fk_withholding_items_batch_id_withholding_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"],
            ["withholding_mandates.id"],
            name=op.f("fk_withholding_items_mandate_id_withholding_mandates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withholding_items")),
        sa.UniqueConstraint("order_no", name="uq_withholding_items_order_no"),
        sa.UniqueConstraint("batch_id", "seq", name="uq_withholding_items_batch_seq"),
    )
    op.create_index("ix_withholding_items_account", "withholding_items", ["account_no"])
    op.create_table(
        "counter_receipts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=True),
        sa.Column("pos_reference", sa.String(length=64), nullable=True),
        sa.Column("cashier", sa.String(length=200), nullable=False),
        sa.Column("shift_id", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "method IS NULL OR method IN ('cash', 'pos')", name=op.f("ck_counter_receipts_method")
        ),
        sa.CheckConstraint(
            "method IS DISTINCT FROM 'pos' OR pos_reference IS NOT NULL",
            name=op.f("ck_counter_receipts_pos_reference"),
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_counter_receipts_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counter_receipts")),
        sa.UniqueConstraint("order_no", name="uq_counter_receipts_order_no"),
    )
    op.create_index("ix_counter_receipts_shift", "counter_receipts", ["shift_id", "cashier"])
    op.create_index("ix_counter_receipts_day", "counter_receipts", ["business_day", "cashier"])
    # Counter payments taken before receipts were recorded (the cashier's method was not kept).
    op.execute(
        """
        INSERT INTO counter_receipts (id, order_no, account_no, amount_fen, method, pos_reference, cashier,
                                      shift_id, received_at, business_day)
        SELECT gen_random_uuid(), order_no, account_no, amount_fen, NULL, NULL, cashier->>'cashier',
               cashier->>'shift_id', paid_at, (paid_at AT TIME ZONE 'Asia/Shanghai')::date
        FROM payment_orders
        WHERE channel = 'counter' AND cashier IS NOT NULL AND paid_at IS NOT NULL
        ON CONFLICT (order_no) DO NOTHING
        """
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
