"""initial schema: platform tables, tariff plans, billing accounts

Revision ID: 0001
Revises:
Create Date: 2026-11-22 05:40:00.000000

Forward-only, expand-then-contract: the previous release must still run against this schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The no-overlap rule on tariff versions is an exclusion constraint on (code =, daterange &&), which
    # needs btree_gist for the equality on text. In a managed cluster the DBA enables the extension once
    # (it needs a privileged role); locally the app role owns the cluster.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "tariff_plans",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("utility", sa.String(length=20), nullable=False),
        sa.Column("customer_class", sa.String(length=20), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_tariff_plans_version_positive")),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from",
            name=op.f("ck_tariff_plans_effective_period_ordered"),
        ),
        sa.CheckConstraint(
            "utility IN ('heating', 'gas', 'electricity')", name=op.f("ck_tariff_plans_utility")
        ),
        sa.CheckConstraint(
            "customer_class IN ('residential', 'non_residential')",
            name=op.f("ck_tariff_plans_customer_class"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariff_plans")),
        sa.UniqueConstraint("code", "version", name="uq_tariff_plans_code_version"),
    )
    op.create_index(
        "ix_tariff_plans_class", "tariff_plans", ["utility", "customer_class", "effective_from"], unique=False
    )
    # Versions of one code never overlap (both ends included; an open end is infinity).
    op.execute(
        "ALTER TABLE tariff_plans ADD CONSTRAINT ex_tariff_plans_no_overlap EXCLUDE USING gist "
        "(code WITH =, daterange(effective_from, effective_to, '[]') WITH &&)"
    )
    op.create_table(
        "billing_accounts",
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("utility", sa.String(length=20), nullable=False),
        sa.Column("customer_class", sa.String(length=20), nullable=False),
        sa.Column("household_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("heated_area_m2", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'closed')", name=op.f("ck_billing_accounts_status")
        ),
        sa.CheckConstraint("household_size >= 1", name=op.f("ck_billing_accounts_household_size_positive")),
        sa.PrimaryKeyConstraint("account_no", name=op.f("pk_billing_accounts")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column(
            "scope", sa.String(length=200), nullable=False, comment="who used the key: subject + route"
        ),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox_messages")),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.UUID(), nullable=False, comment="the event id"),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False, comment="partition key: the aggregate id"),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False, comment="the serialised event envelope"),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "seq", sa.BigInteger(), sa.Identity(always=True), nullable=False, comment="publishing order"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(
        "ix_outbox_messages_pending",
        "outbox_messages",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_messages_sent_at",
        "outbox_messages",
        ["sent_at"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
