"""resident account binding: the gateway's copies of accounts and holders from customer.events, and the
phone blind index behind each resident subject

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:28:40

Additive only (three new tables, nothing existing changes): the previous release ignores them.
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
    op.create_table(
        "binding_accounts",
        sa.Column("account_no", sa.String(length=32), nullable=False),
        sa.Column(
            "customer_id", sa.UUID(), nullable=True, comment="the holder; null when only a closure was seen"
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "holder_since",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="event time of the holder assignment (opened/transferred/merged)",
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_binding_accounts_status")),
        sa.PrimaryKeyConstraint("account_no", name=op.f("pk_binding_accounts")),
    )
    op.create_index(
        op.f("ix_binding_accounts_customer_id"), "binding_accounts", ["customer_id"], unique=False
    )
    op.create_table(
        "binding_customers",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("name_bidx", sa.String(length=64), nullable=True, comment="blind index, field holder_name"),
        sa.Column("name_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "phone_bidxs",
            postgresql.ARRAY(sa.String(length=64)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
            comment="blind indexes, field phone",
        ),
        sa.Column("phones_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merged_into", sa.UUID(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_binding_customers")),
    )
    op.create_table(
        "resident_identities",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("phone_bidx", sa.String(length=64), nullable=False, comment="blind index, field phone"),
        sa.Column(
            "first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_resident_identities")),
        sa.UniqueConstraint("phone_bidx", name=op.f("uq_resident_identities_phone_bidx")),
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
